package mutate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// FuzzParse feeds arbitrary annotation keys and values through Parse and
// Mutate, under both prefixes (blinkchamber.io/ and vault.hashicorp.com/):
// never a panic, and whatever is injected decodes and validates as the
// agent's config.
func FuzzParse(f *testing.F) {
	f.Add("secret-db", "secret/data/a/b", "template-db", `{{ with secret "x" }}{{ .Data.data.k }}{{ end }}`)
	f.Add("perms-db", "0440", "file-db", "db.env")
	f.Add("mode", "sidecar", "containers", "app")
	f.Add("agent-memory-limit", "1Gi", "render-interval", "1s")
	f.Add("command-db", `["/bin/kill","-HUP","1"]`, "file-db", "../x")
	f.Add("agent-inject-template-db", `{{ with secret "x" }}{{ range $k, $v := .Data }}{{ $k }}{{ end }}{{ end }}`, "agent-inject-perms-db", "0440")
	f.Add("agent-inject-file-DB", "sub/dir", "preserve-secret-case-DB", "true")
	f.Add("agent-pre-populate-only", "true", "secret-volume-path", "/etc/secrets")
	f.Add("agent-configmap", "cm", "agent-image", "vault:1.21")
	f.Add("agent-inject-command-db", "kill -HUP $(pidof app)", "error-on-missing-key-db", "false")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		fuzzMutate(t, annotatedPod(map[string]string{
			AnnotationInject: "true", PrefixSecret + "db": "secret/data/ns/app/db",
			Prefix + k1: v1, Prefix + k2: v2,
		}))
		fuzzMutate(t, annotatedPod(map[string]string{
			VaultInject: "true", VaultPrefixSecret + "db": "secret/data/ns/app/db",
			VaultPrefix + k1: v1, VaultPrefix + k2: v2,
		}))
	})
}

func fuzzMutate(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	before := pod.DeepCopy()
	out, err := Mutate(pod, goldenOptions())
	if err != nil {
		if pod.String() != before.String() {
			t.Fatalf("refused pod was changed")
		}
		return
	}
	if !out.Injected {
		return
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name == agent.ConfigEnv {
				if _, err := agent.Decode([]byte(e.Value)); err != nil {
					t.Fatalf("injected config does not decode: %v", err)
				}
			}
		}
	}
}
