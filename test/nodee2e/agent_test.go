package nodee2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// TestAgentRefusals: a wrong role, another app's role, a denied path, a
// missing key and a key that is no variable name end the init agent
// non-zero within 30 s, so the pod fails; its log names the role, path or
// key and Vault's reason, and nothing was rendered or leaked.
func TestAgentRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // after the parallel subtests
	_, err := st.Onboard(ctx, "billing")
	must(t, err)
	// Another app, whose role and secrets the billing pod reaches for.
	_, err = st.Onboard(ctx, "payroll")
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	put(t, ctx, vc, "billing", "bad", map[string]any{"db-password": randomSecret("bad-key")})
	scanFor := func(scan *harness.LeakScan) {
		registerPassword(t, ctx, scan, "billing")
		registerPassword(t, ctx, scan, "payroll")
	}

	cases := []struct {
		name       string
		ann        map[string]string
		onlyItsOwn bool
		exitCode   int32
		want       []string
	}{
		{"wrong role", map[string]string{mutate.AnnotationRole: "no-such-role"},
			false, agent.ExitLoginRefused, []string{`role \"no-such-role\" at auth/kubernetes`, "invalid role name"}},
		{"denied path", map[string]string{mutate.PrefixSecret + "other": stack.KVPath("payroll")},
			false, agent.ExitAccess, []string{"vault refused access to the path", stack.KVPath("payroll"), "permission denied"}},
		{"another app's role", map[string]string{mutate.AnnotationRole: "payroll"},
			false, agent.ExitLoginRefused, []string{`role \"payroll\" at auth/kubernetes`, "service account name not authorized"}},
		{"missing key", map[string]string{mutate.PrefixTemplate + "x": `{{ with secret "` + stack.KVPath("billing") + `" }}{{ .Data.data.nope }}{{ end }}`},
			true, agent.ExitTemplate, []string{"template failed", "nope"}},
		{"a key that is no variable name", map[string]string{mutate.PrefixSecret + "bad": stack.KVSecretPath("billing", "bad"), mutate.PrefixFormat + "bad": "env"},
			true, agent.ExitTemplate, []string{"db-password", "not a valid environment variable name"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ann := map[string]string{mutate.AnnotationMode: string(mutate.ModeInitOnly)}
			tmpl := st.AppTemplate("billing", ann, "report", mutate.SecretsPath+"/db")
			if tc.onlyItsOwn {
				// The template's own secret would render before the
				// refused one does not: keep it out.
				delete(tmpl.Annotations, mutate.PrefixSecret+"db")
				delete(tmpl.Annotations, mutate.PrefixTemplate+"db")
			}
			for k, v := range tc.ann {
				tmpl.Annotations[k] = v
			}
			name := fmt.Sprintf("refused-%d", i)
			t.Cleanup(func() { deletePod(name) })
			start := time.Now()
			pod, err := st.FailedPod(ctx, name, tmpl)
			must(t, err)
			if elapsed := time.Since(start); elapsed > 30*time.Second {
				t.Errorf("took %s to fail, want under 30 s", elapsed)
			}
			term := stack.Terminated(pod, mutate.InitContainer)
			log, err := st.ContainerLog(ctx, name, mutate.InitContainer)
			must(t, err)
			if term == nil || term.ExitCode != tc.exitCode {
				t.Errorf("the init agent ended %+v, want exit code %d; log:\n%s", term, tc.exitCode, log)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(log), w) {
					t.Errorf("the log lacks %q:\n%s", w, log)
				}
			}
			if strings.Contains(string(log), `"msg":"rendered"`) {
				t.Errorf("a file was rendered:\n%s", log)
			}
			scan := harness.NewLeakScan(nil)
			scanFor(scan)
			scan.Source("init agent log", func(context.Context) ([]byte, error) { return log, nil })
			if err := scan.Check(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func deletePod(name string) {
	_ = st.Node.Clientset.CoreV1().Pods(appsNS).Delete(context.Background(), name, metav1.DeleteOptions{})
}

// TestAgentRevokesOnShutdown: with revoke-on-shutdown, the agent's Vault
// token stops working when the kubelet stops the pod (SIGTERM to the
// native sidecar, after the app has ended).
func TestAgentRevokesOnShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "revoke"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	pod := deploy(t, ctx, app, st.AppTemplate(app, map[string]string{mutate.AnnotationRevoke: "true"}, "sleep", "1h"))
	if n := len(tokensOfRole(t, ctx, vc, app)); n != 1 {
		t.Fatalf("%d live tokens for role %s, want the agent's one", n, app)
	}
	must(t, st.DeleteDeployment(ctx, app, true))
	if left := tokensOfRole(t, ctx, vc, app); len(left) != 0 {
		t.Fatalf("the agent's token is still valid after pod %s stopped", pod.Name)
	}
}

// tokensOfRole lists the accessors of live tokens issued to a kubernetes
// role.
func tokensOfRole(t *testing.T, ctx context.Context, c *vaultapi.Client, role string) []string {
	t.Helper()
	out, err := harness.TokensOfRole(ctx, c, role)
	must(t, err)
	return out
}

// waitMetric waits until the agent's /metrics on the pod's IP holds line.
func waitMetric(t *testing.T, ctx context.Context, pod *corev1.Pod, line string) {
	t.Helper()
	var body string
	for {
		_, body, _ = stack.PodGet(ctx, pod, agentMetricsPort, "/metrics")
		if strings.Contains(body, line+"\n") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the agent's /metrics never held %q:\n%s", line, body)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
