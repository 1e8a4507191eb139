package nodee2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// TestVaultK8sAnnotations is the drop-in promise: a pod annotated the way
// the Vault Agent Injector's documentation shows, against the in-cluster
// Vault with a KV v1 mount beside the chart's KV v2, gets the files that
// documentation describes, with the same content and modes, at
// /vault/secrets/<name>; ignored annotations come back as admission
// warnings and impossible ones are refused, naming the annotation.
func TestVaultK8sAnnotations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "docs"
	vc, err := st.Vault(ctx)
	must(t, err)
	must(t, vc.Sys().MountWithContext(ctx, "kv", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}))
	kv2 := stack.KVSecretPath(app, "db")
	must(t, vc.Sys().PutPolicyWithContext(ctx, app, fmt.Sprintf(`path "kv/%s/*" { capabilities = ["read"] }
path %q { capabilities = ["read"] }`, app, kv2)))
	_, err = vc.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+app, map[string]any{
		"bound_service_account_names": app, "bound_service_account_namespaces": appsNS,
		"audience": "vault", "token_policies": app, "token_ttl": "1h",
	})
	must(t, err)
	must(t, st.ServiceAccount(ctx, app))
	kv1pw, kv2pw, payKey := randomSecret("kv1"), randomSecret("kv2"), randomSecret("pay")
	_, err = vc.Logical().WriteWithContext(ctx, "kv/"+app+"/config", map[string]any{"username": app, "password": kv1pw})
	must(t, err)
	put(t, ctx, vc, app, "db", map[string]any{"username": app, "password": kv2pw, "payments_api_key": payKey})

	tmpl := vaultDocsTemplate(app, kv2)
	t.Run("ignored annotations come back as admission warnings", func(t *testing.T) {
		want := "metadata.annotations[vault.hashicorp.com/agent-image]: ignored"
		warned := createDryRun(t, ctx, tmpl)
		for _, w := range warned {
			if strings.HasPrefix(w, want) {
				return
			}
		}
		t.Errorf("no warning starting %q among %q", want, warned)
	})
	pod := deploy(t, ctx, app, tmpl)

	t.Run("app containers mount the files at /vault/secrets", func(t *testing.T) {
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			if m.Name == mutate.SecretsVolume && m.MountPath == "/vault/secrets" && m.ReadOnly {
				return
			}
		}
		t.Errorf("container %s mounts %v", pod.Spec.Containers[0].Name, pod.Spec.Containers[0].VolumeMounts)
	})

	raw, err := vc.Logical().ReadWithContext(ctx, kv2)
	must(t, err)
	created := raw.Data["metadata"].(map[string]any)["created_time"]
	kv1Default := "password: " + kv1pw + "\nusername: " + app + "\n"
	kv2Default := fmt.Sprintf("data: map[password:%s payments_api_key:%s username:%s]\n", kv2pw, payKey, app) +
		fmt.Sprintf("metadata: map[created_time:%s custom_metadata:<nil> deletion_time: destroyed:false version:1]\n", created)
	for _, f := range []struct{ what, file, content, mode string }{
		{"KV v1, default template", "config", kv1Default, "0644"},
		{"KV v2, default template", "db", kv2Default, "0644"},
		// The same secret named without data/: the agent finds the mount
		// is KV v2 and reads .../data/..., as Vault Agent does.
		{"KV v2 without data/", "short", kv2Default, "0644"},
		{"KV v2, the documentation's environment template", "payments", "export api_key=\"" + payKey + "\"\n", "0644"},
		{"KV v1 template, file name and perms", "db.txt", app + ":" + kv1pw, "0400"},
		{"names are lower-cased", "upper", kv1Default, "0644"},
		{"unless preserved", "KeepCase", kv1Default, "0644"},
	} {
		t.Run(f.what, func(t *testing.T) {
			e := fileEvent(t, ctx, pod.Name, "app", "/vault/secrets/"+f.file, func(stack.Event) bool { return true })
			if e.SHA256 != digest(f.content) || e.Mode != f.mode {
				t.Errorf("%s: mode %s, digest %s (error %q); want mode %s and the digest of the documented content", f.file, e.Mode, e.SHA256, e.Error, f.mode)
			}
		})
	}

	t.Run("no secret value in the agent's log", func(t *testing.T) {
		scan := harness.NewLeakScan(nil)
		for label, v := range map[string]string{"kv1 password": kv1pw, "kv2 password": kv2pw, "payments key": payKey} {
			scan.Secret(label, v)
		}
		log, err := st.ContainerLog(ctx, pod.Name, mutate.AgentContainer)
		must(t, err)
		if !strings.Contains(string(log), `"msg":"rendered"`) {
			t.Errorf("the agent's log has no render lines: the scan would see nothing")
		}
		scan.Source("agent log", func(context.Context) ([]byte, error) { return log, nil })
		if err := scan.Check(ctx); err != nil {
			t.Error(err)
		}
	})

	t.Run("refusals name the annotation", func(t *testing.T) {
		for key, val := range map[string]string{
			"vault.hashicorp.com/agent-configmap": "my-agent-config",
			"vault.hashicorp.com/tls-skip-verify": "true",
			"blinkchamber.io/render-interval":     "1s",
		} {
			p := vaultDocsTemplate(app, kv2)
			p.Annotations[key] = val
			pod := &corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
			pod.Name, pod.Namespace = "refused", appsNS
			_, err := st.Node.Clientset.CoreV1().Pods(appsNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil {
				t.Errorf("pod with %s was admitted", key)
				continue
			}
			if !strings.Contains(err.Error(), "metadata.annotations["+key+"]") {
				t.Errorf("refusal does not name %s: %v", key, err)
			}
		}
	})
}

// vaultDocsTemplate is the test app, restricted as the apps namespace
// demands, annotated as the Vault Agent Injector's documentation shows:
// default templates for KV v1 and v2, a custom template, file and perms,
// and an annotation that makes no sense for blinkchamber's agent.
func vaultDocsTemplate(app, kv2 string) corev1.PodTemplateSpec {
	files := []string{"config", "db", "short", "payments", "db.txt", "upper", "KeepCase"}
	args := []string{"watch", "-interval", "500ms"}
	for _, f := range files {
		args = append(args, "/vault/secrets/"+f)
	}
	tmpl := st.AppTemplate(app, nil, args...)
	short := strings.Replace(kv2, "/data/", "/", 1)
	tmpl.Annotations = map[string]string{
		"vault.hashicorp.com/agent-inject":                 "true",
		"vault.hashicorp.com/role":                         app,
		"vault.hashicorp.com/agent-image":                  "hashicorp/vault:1.21.1",
		"vault.hashicorp.com/agent-inject-secret-config":   "kv/" + app + "/config",
		"vault.hashicorp.com/agent-inject-secret-db":       kv2,
		"vault.hashicorp.com/agent-inject-secret-payments": kv2,
		// KV v2 as Vault Agent users often write it, without data/.
		"vault.hashicorp.com/agent-inject-secret-short": short,
		"vault.hashicorp.com/agent-inject-template-payments": `{{ with secret "` + kv2 + `" -}}
  export api_key="{{ .Data.data.payments_api_key }}"
{{- end }}
`,
		"vault.hashicorp.com/agent-inject-secret-creds":              "kv/" + app + "/config",
		"vault.hashicorp.com/agent-inject-template-creds":            `{{ with secret "kv/` + app + `/config" }}{{ .Data.username }}:{{ .Data.password }}{{ end }}`,
		"vault.hashicorp.com/agent-inject-file-creds":                "db.txt",
		"vault.hashicorp.com/agent-inject-perms-creds":               "0400",
		"vault.hashicorp.com/agent-inject-secret-UPPER":              "kv/" + app + "/config",
		"vault.hashicorp.com/agent-inject-secret-KeepCase":           "kv/" + app + "/config",
		"vault.hashicorp.com/preserve-secret-case-KeepCase":          "true",
		"vault.hashicorp.com/template-static-secret-render-interval": "2s",
	}
	return tmpl
}

// createDryRun creates a pod of tmpl without persisting it and returns the
// warnings the API server relayed.
func createDryRun(t *testing.T, ctx context.Context, tmpl corev1.PodTemplateSpec) []string {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(st.Node.Config)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.GenerateName, pod.Namespace = "warned-", appsNS
	_, err = cs.CoreV1().Pods(appsNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	must(t, err)
	return w.all()
}

// warnings collects the admission warnings the API server relays.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}
