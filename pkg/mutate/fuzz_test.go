package mutate

import (
	"errors"
	"strings"
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
		checkRefusal(t, err)
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

// checkRefusal holds every refusal of a pod to the webhook's contract:
// with the injector's own settings valid (goldenOptions), whatever the
// pod holds is refused as invalid input (a 422), never as an internal
// fault (a 500), and each problem names an annotation or a part of the
// spec, within the listed and echoed bounds.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrAgentConfig) {
		t.Fatalf("the injector's settings are valid, yet: %v", err)
	}
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("refusal is not an InvalidError (it would be a 500): %T %v", err, err)
	}
	if len(inv.Errs) == 0 || len(inv.Errs) > MaxListedErrors || inv.Total < len(inv.Errs) {
		t.Fatalf("%d errors listed of %d", len(inv.Errs), inv.Total)
	}
	for _, e := range inv.Errs {
		if !strings.HasPrefix(e.Field, "metadata.annotations") && !strings.HasPrefix(e.Field, "spec.") {
			t.Fatalf("error names neither an annotation nor the spec: %v", e)
		}
		if len(e.Field) > MaxEcho+40 || len(e.Detail) > MaxEcho+40 {
			t.Fatalf("error echoes more than %d bytes: %d, %d", MaxEcho, len(e.Field), len(e.Detail))
		}
	}
}

// FuzzPodSpec feeds pods whose containers, mounts and names vary with the
// annotations: every refusal is invalid input naming the annotation or
// the spec (checkRefusal), never an internal fault.
func FuzzPodSpec(f *testing.F) {
	f.Add("secret-a", "secret/data/x/a", "app", "blinkchamber-token", "/t", false, "sidecar", "")
	f.Add("file-a", "b", "app", "blinkchamber-secrets", "/s", false, "native", "secret-b")
	f.Add("file-a", "A", "blinkchamber-agent", "blinkchamber-state", "/s", true, "init-only", "file-b")
	f.Add("mount-path", "/var/run/secrets/kubernetes.io/serviceaccount", "app", "other", "/var/run/secrets/kubernetes.io/serviceaccount", true, "native", "")
	f.Add("role", "", "app", "blinkchamber-secrets", "/blinkchamber/secrets", true, "sidecar", "containers")
	f.Fuzz(func(t *testing.T, k1, v1, container, volume, mountPath string, readOnly bool, mode, k2 string) {
		for _, vault := range []bool{false, true} {
			ann := map[string]string{AnnotationInject: "true", PrefixSecret + "a": "secret/data/x/a", Prefix + k1: v1,
				AnnotationMode: mode, Prefix + k2: v1}
			if vault {
				ann = map[string]string{VaultInject: "true", VaultPrefixSecret + "a": "secret/data/x/a", VaultPrefix + k1: v1,
					VaultPrefix + k2: v1}
			}
			pod := annotatedPod(ann)
			pod.Spec.ServiceAccountName = v1
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: container, Image: "i",
				VolumeMounts: []corev1.VolumeMount{{Name: volume, MountPath: mountPath, ReadOnly: readOnly}}})
			fuzzMutate(t, pod)
		}
	})
}
