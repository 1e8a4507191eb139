package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

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

// TestVaultK8sAnnotations is the drop-in promise: pods annotated the way the
// Vault Agent Injector's documentation shows, created through the real
// webhook and run by the kubelet shim against a Vault dev server with KV v1
// and KV v2 mounts, get the files that documentation describes, with the
// same content, at /vault/secrets/<name>.
func TestVaultK8sAnnotations(t *testing.T) {
	e := agentEnv(t) // for the agent binary
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := harness.StartVaultDev(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	if err := v.ConfigureKubernetesAuth(ctx, kube); err != nil {
		t.Fatal(err)
	}
	if err := v.Client().Sys().MountWithContext(ctx, "kv", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	startInjector(t, ctx, v.Addr(), "blinkchamber-e2e-vaultk8s", nil)
	const ns, sa = "vaultk8s", "web"
	if err := kube.Namespace(ctx, ns, true, sa); err != nil {
		t.Fatal(err)
	}
	policy := `path "kv/web/*" { capabilities = ["read"] }
path "secret/data/web/*" { capabilities = ["read"] }`
	if err := v.AppRole(ctx, "web", ns, sa, policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := v.Client().KVv1("kv").Put(ctx, "web/config", map[string]any{"username": "web", "password": "kv1-s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Client().KVv2("secret").Put(ctx, "web/db", map[string]any{"username": "web", "password": "kv2-s3cr3t", "payments_api_key": "pay-abc123"}); err != nil {
		t.Fatal(err)
	}

	warned := &warnings{}
	pod := vaultDocsPod(ns, sa)
	createWithWarnings(t, ctx, warned, pod)
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, ns, pod.Name, e.shim(out))
	dir := run.VolumeDir(mutate.SecretsVolume)

	t.Run("app containers mount the files at /vault/secrets", func(t *testing.T) {
		got := run.Pod()
		for _, m := range got.Spec.Containers[0].VolumeMounts {
			if m.Name == mutate.SecretsVolume && m.MountPath == "/vault/secrets" && m.ReadOnly {
				return
			}
		}
		t.Errorf("container %s mounts %v", got.Spec.Containers[0].Name, got.Spec.Containers[0].VolumeMounts)
	})

	t.Run("KV v1, default template", func(t *testing.T) {
		waitFile(t, filepath.Join(dir, "config"), "password: kv1-s3cr3t\nusername: web\n", 20*time.Second)
		checkMode(t, filepath.Join(dir, "config"), 0o644)
	})

	t.Run("KV v2, default template", func(t *testing.T) {
		raw, err := v.Client().Logical().ReadWithContext(ctx, "secret/data/web/db")
		if err != nil {
			t.Fatal(err)
		}
		created := raw.Data["metadata"].(map[string]any)["created_time"]
		want := "data: map[password:kv2-s3cr3t payments_api_key:pay-abc123 username:web]\n" +
			fmt.Sprintf("metadata: map[created_time:%s custom_metadata:<nil> deletion_time: destroyed:false version:1]\n", created)
		waitFile(t, filepath.Join(dir, "db"), want, 20*time.Second)
		// The same secret named without data/: the agent finds the mount
		// is KV v2 and reads secret/data/web/db, as Vault Agent does.
		waitFile(t, filepath.Join(dir, "short"), want, 20*time.Second)
	})

	t.Run("KV v2, the documentation's environment template", func(t *testing.T) {
		waitFile(t, filepath.Join(dir, "payments"), "export api_key=\"pay-abc123\"\n", 20*time.Second)
	})

	t.Run("KV v1 template, file name and perms", func(t *testing.T) {
		waitFile(t, filepath.Join(dir, "db.txt"), "web:kv1-s3cr3t", 20*time.Second)
		checkMode(t, filepath.Join(dir, "db.txt"), 0o400)
	})

	t.Run("names are lower-cased unless preserved", func(t *testing.T) {
		waitFile(t, filepath.Join(dir, "upper"), "password: kv1-s3cr3t\nusername: web\n", 20*time.Second)
		waitFile(t, filepath.Join(dir, "KeepCase"), "password: kv1-s3cr3t\nusername: web\n", 20*time.Second)
	})

	t.Run("ignored annotations come back as admission warnings", func(t *testing.T) {
		want := "metadata.annotations[vault.hashicorp.com/agent-image]: ignored"
		for _, w := range warned.all() {
			if strings.HasPrefix(w, want) {
				return
			}
		}
		t.Errorf("no warning starting %q among %q", want, warned.all())
	})

	t.Run("no secret value in the agent's output", func(t *testing.T) {
		assertNoLeak(t, out.String(), "kv1-s3cr3t", "kv2-s3cr3t", "pay-abc123")
		if !strings.Contains(out.String(), `"msg":"rendered"`) {
			t.Errorf("the scanned output has no render log lines: the scan saw nothing")
		}
	})

	t.Run("refusals name the annotation", func(t *testing.T) {
		for key, ann := range map[string]map[string]string{
			"vault.hashicorp.com/agent-configmap": {"vault.hashicorp.com/agent-configmap": "my-agent-config"},
			"vault.hashicorp.com/tls-skip-verify": {"vault.hashicorp.com/tls-skip-verify": "true"},
			"blinkchamber.io/render-interval":     {"blinkchamber.io/render-interval": "1s"},
		} {
			p := vaultDocsPod(ns, sa)
			p.Name = "refused"
			for k, val := range ann {
				p.Annotations[k] = val
			}
			err := kube.Client.Create(ctx, p)
			if err == nil {
				_ = kube.Client.Delete(ctx, p)
				t.Errorf("pod with %s was admitted", key)
				continue
			}
			if !strings.Contains(err.Error(), "metadata.annotations["+key+"]") {
				t.Errorf("refusal does not name %s: %v", key, err)
			}
		}
	})
}

// vaultDocsPod is annotated as the Vault Agent Injector's documentation
// shows: default templates for KV v1 and v2, a custom template, file and
// perms, and an annotation that makes no sense for blinkchamber's agent.
func vaultDocsPod(ns, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns, Annotations: map[string]string{
			"vault.hashicorp.com/agent-inject":                 "true",
			"vault.hashicorp.com/role":                         "web",
			"vault.hashicorp.com/agent-image":                  "hashicorp/vault:1.21.1",
			"vault.hashicorp.com/agent-inject-secret-config":   "kv/web/config",
			"vault.hashicorp.com/agent-inject-secret-db":       "secret/data/web/db",
			"vault.hashicorp.com/agent-inject-secret-payments": "secret/data/web/db",
			// KV v2 as Vault Agent users often write it, without data/.
			"vault.hashicorp.com/agent-inject-secret-short": "secret/web/db",
			"vault.hashicorp.com/agent-inject-template-payments": `{{ with secret "secret/data/web/db" -}}
  export api_key="{{ .Data.data.payments_api_key }}"
{{- end }}
`,
			"vault.hashicorp.com/agent-inject-secret-creds":              "kv/web/config",
			"vault.hashicorp.com/agent-inject-template-creds":            `{{ with secret "kv/web/config" }}{{ .Data.username }}:{{ .Data.password }}{{ end }}`,
			"vault.hashicorp.com/agent-inject-file-creds":                "db.txt",
			"vault.hashicorp.com/agent-inject-perms-creds":               "0400",
			"vault.hashicorp.com/agent-inject-secret-UPPER":              "kv/web/config",
			"vault.hashicorp.com/agent-inject-secret-KeepCase":           "kv/web/config",
			"vault.hashicorp.com/preserve-secret-case-KeepCase":          "true",
			"vault.hashicorp.com/template-static-secret-render-interval": "2s",
		}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "example/app:1.0"}},
		},
	}
}

// createWithWarnings creates obj with a client that keeps the warnings.
func createWithWarnings(t *testing.T, ctx context.Context, w *warnings, obj client.Object) {
	t.Helper()
	cfg := rest.CopyConfig(kube.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), st.Mode().Perm(), want)
	}
}
