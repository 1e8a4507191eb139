package mutate

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// agentConfigOf decodes the agent config the injector put in pod.
func agentConfigOf(t *testing.T, pod *corev1.Pod) *agent.Config {
	t.Helper()
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name == agent.ConfigEnv {
				cfg, err := agent.Decode([]byte(e.Value))
				if err != nil {
					t.Fatal(err)
				}
				return cfg
			}
		}
	}
	t.Fatal("no agent config in the pod")
	return nil
}

// TestAgentTokenFileOptIn: the agent's Vault token reaches the app only
// through the named opt-in (blinkchamber.io/agent-token-file, or
// vault-k8s's agent-inject-token), as a file no secret may also claim.
func TestAgentTokenFileOptIn(t *testing.T) {
	cases := []struct {
		name  string
		pod   *corev1.Pod
		file  string // the config's VaultTokenFile; "" when refused
		field string // the refused annotation
	}{
		{"no opt-in", annotatedPod(withInject()), "", ""},
		{"opt-in", annotatedPod(withInject(AnnotationAgentTokenFile, "vault-token")), "vault-token", ""},
		{"vault-k8s opt-in", vaultPod(VaultInjectToken, "true"), "token", ""},
		{"vault-k8s false", vaultPod(VaultInjectToken, "false"), "", ""},
		{"a file name that leaves the volume", annotatedPod(withInject(AnnotationAgentTokenFile, "../x")), "",
			"metadata.annotations[" + AnnotationAgentTokenFile + "]"},
		{"a secret's file", annotatedPod(withInject(AnnotationAgentTokenFile, "db")), "",
			"metadata.annotations[" + PrefixSecret + "db]"},
		{"a vault-k8s secret named token", vaultPod(VaultInjectToken, "true", VaultPrefixSecret+"token", "secret/data/ns/app/t"), "",
			"metadata.annotations[" + VaultPrefixSecret + "token]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Mutate(tc.pod, goldenOptions())
			if tc.field != "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Errs[0].Field != tc.field {
					t.Fatalf("want a refusal of %s, got %v", tc.field, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := agentConfigOf(t, tc.pod).VaultTokenFile; got != tc.file {
				t.Errorf("vaultTokenFile %q, want %q", got, tc.file)
			}
		})
	}
}

// TestVaultTokenFileValidated: the agent refuses a token file that leaves
// the volume or that a secret also renders to.
func TestVaultTokenFileValidated(t *testing.T) {
	for _, tc := range []struct{ file, want string }{{"../x", "vaultTokenFile"}, {"db", "is also the file of secrets[0]"}} {
		pod := annotatedPod(withInject())
		if _, err := Mutate(pod, goldenOptions()); err != nil {
			t.Fatal(err)
		}
		cfg := agentConfigOf(t, pod)
		cfg.VaultTokenFile = tc.file
		if errs := cfg.Validate(); !strings.Contains(errs.ToAggregate().Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.file, errs, tc.want)
		}
	}
}
