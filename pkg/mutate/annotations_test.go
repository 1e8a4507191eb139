package mutate

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/template"
)

func annotatedPod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers:         []corev1.Container{{Name: "app", Image: "example/app:1"}},
		},
	}
}

func withInject(kv ...string) map[string]string {
	m := map[string]string{AnnotationInject: "true", PrefixSecret + "db": "secret/data/ns/app/db"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestRejected checks that each bad annotation is refused with an error whose
// field path names that annotation, and that the pod is left untouched.
func TestRejected(t *testing.T) {
	cases := []struct {
		name string
		ann  map[string]string
		key  string // the annotation the error must name
		typ  field.ErrorType
		is   error // an error the reason must wrap, when the check is typed
	}{
		{"unknown key", withInject(Prefix+"injct", "true"), Prefix + "injct", field.ErrorTypeNotSupported, nil},
		{"inject not a bool", map[string]string{AnnotationInject: "yes please"}, AnnotationInject, field.ErrorTypeInvalid, nil},
		{"file with dotdot", withInject(PrefixFile+"db", ".."), PrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"file with separator", withInject(PrefixFile+"db", "etc/passwd"), PrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"file absolute", withInject(PrefixFile+"db", "/etc/passwd"), PrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"file with NUL", withInject(PrefixFile+"db", "a\x00b"), PrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"file too long", withInject(PrefixFile+"db", strings.Repeat("a", 300)), PrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"template does not parse", withInject(PrefixTemplate+"db", "{{ with secret }"), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrSyntax},
		{"template plugin", withInject(PrefixTemplate+"db", `{{ plugin "/bin/sh" "-c" "id" }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template writeToFile", withInject(PrefixTemplate+"db", `{{ "x" | writeToFile "/tmp/x" "" "" "0644" }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template env", withInject(PrefixTemplate+"db", `{{ env "VAULT_TOKEN" }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template file", withInject(PrefixTemplate+"db", `{{ file "/etc/shadow" }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template denied inside if", withInject(PrefixTemplate+"db", `{{ if true }}{{ else }}{{ plugin "x" }}{{ end }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template unknown function", withInject(PrefixTemplate+"db", `{{ launchMissiles }}`), PrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"perms not octal", withInject(PrefixPerms+"db", "999"), PrefixPerms + "db", field.ErrorTypeInvalid, nil},
		{"perms setuid", withInject(PrefixPerms+"db", "4755"), PrefixPerms + "db", field.ErrorTypeInvalid, nil},
		{"perms owner cannot read", withInject(PrefixPerms+"db", "0040"), PrefixPerms + "db", field.ErrorTypeInvalid, nil},
		{"mode unknown", withInject(AnnotationMode, "daemon"), AnnotationMode, field.ErrorTypeInvalid, nil},
		{"bad quantity", withInject(AnnotationMemoryLimit, "lots"), AnnotationMemoryLimit, field.ErrorTypeInvalid, nil},
		{"negative quantity", withInject(AnnotationCPURequest, "-1"), AnnotationCPURequest, field.ErrorTypeInvalid, nil},
		{"limit below request", withInject(AnnotationMemoryRequest, "64Mi", AnnotationMemoryLimit, "32Mi"), AnnotationMemoryLimit, field.ErrorTypeInvalid, nil},
		{"render interval not a duration", withInject(AnnotationRenderInterval, "often"), AnnotationRenderInterval, field.ErrorTypeInvalid, nil},
		{"render interval too short", withInject(AnnotationRenderInterval, "10ms"), AnnotationRenderInterval, field.ErrorTypeInvalid, nil},
		{"vault addr not a URL", withInject(AnnotationVaultAddr, "vault:8200"), AnnotationVaultAddr, field.ErrorTypeInvalid, nil},
		{"vault addr with path", withInject(AnnotationVaultAddr, "https://vault/x"), AnnotationVaultAddr, field.ErrorTypeInvalid, nil},
		{"secret path with quote", withInject(PrefixSecret+"db", `secret/data/x" }}{{ plugin "sh`), PrefixSecret + "db", field.ErrorTypeInvalid, nil},
		{"secret path absolute", withInject(PrefixSecret+"db", "/secret/data/x"), PrefixSecret + "db", field.ErrorTypeInvalid, nil},
		{"secret path dotdot", withInject(PrefixSecret+"db", "secret/../sys/raw"), PrefixSecret + "db", field.ErrorTypeInvalid, nil},
		{"role with space", withInject(AnnotationRole, "a b"), AnnotationRole, field.ErrorTypeInvalid, nil},
		{"containers names unknown", withInject(AnnotationContainers, "app,ghost"), AnnotationContainers, field.ErrorTypeInvalid, nil},
		{"containers empty", withInject(AnnotationContainers, " , "), AnnotationContainers, field.ErrorTypeInvalid, nil},
		{"file without secret", withInject(PrefixFile+"orphan", "x"), PrefixFile + "orphan", field.ErrorTypeInvalid, nil},
		{"empty secret name", withInject(PrefixSecret, "secret/data/x"), PrefixSecret, field.ErrorTypeInvalid, nil},
		{"command empty", withInject(PrefixCommand+"db", "  "), PrefixCommand + "db", field.ErrorTypeInvalid, nil},
		{"command bad json", withInject(PrefixCommand+"db", `["a",`), PrefixCommand + "db", field.ErrorTypeInvalid, nil},
		{"status forged", withInject(AnnotationStatus, "skip"), AnnotationStatus, field.ErrorTypeInvalid, nil},
		{"run as root", withInject(AnnotationRunAsUser, "0"), AnnotationRunAsUser, field.ErrorTypeInvalid, nil},
		{"no secrets", map[string]string{AnnotationInject: "true"}, PrefixSecret + "<name>", field.ErrorTypeRequired, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.ann)
			before := pod.DeepCopy()
			_, err := Mutate(pod, goldenOptions())
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Mutate error = %v, want *InvalidError", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
			want := keyPath(tc.key).String()
			var found *field.Error
			for _, e := range inv.Errs {
				if e.Field == want {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no error names %s; got %v", want, inv.Errs)
			}
			if found.Type != tc.typ {
				t.Errorf("error type %s, want %s", found.Type, tc.typ)
			}
			if found.Detail == "" && found.Type == field.ErrorTypeInvalid {
				t.Errorf("error has no reason")
			}
			if tc.is != nil && !errors.Is(template.Validate(tc.ann[tc.key]), tc.is) {
				t.Errorf("template.Validate does not wrap %v", tc.is)
			}
			if !reflect.DeepEqual(pod, before) {
				t.Errorf("a refused pod was changed")
			}
		})
	}
}

// TestTemplateNotEchoed makes sure a refused template's text, which may hold
// a literal secret, never appears in the error.
func TestTemplateNotEchoed(t *testing.T) {
	const literal = "hunter2-literal-password"
	pod := annotatedPod(withInject(PrefixTemplate+"db", `{{ env "X" }}`+literal))
	_, err := Mutate(pod, goldenOptions())
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), literal) {
		t.Fatalf("error echoes the template text: %v", err)
	}
}

// TestInjectedConfigDecodes checks the env var the agent reads is exactly
// the validated typed config.
func TestInjectedConfigDecodes(t *testing.T) {
	for _, mode := range []Mode{ModeNative, ModeSidecar, ModeInitOnly} {
		pod := annotatedPod(withInject(AnnotationMode, string(mode), PrefixCommand+"db", `["/bin/kill","-HUP","1"]`))
		if _, err := Mutate(pod, goldenOptions()); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			for _, e := range c.Env {
				if e.Name != agent.ConfigEnv {
					continue
				}
				n++
				cfg, err := agent.Decode([]byte(e.Value))
				if err != nil {
					t.Fatalf("%s/%s: %v", mode, c.Name, err)
				}
				if cfg.Vault.Role != "app" || len(cfg.Secrets) != 1 || cfg.Secrets[0].Command[1] != "-HUP" {
					t.Errorf("%s/%s: unexpected config %+v", mode, c.Name, cfg)
				}
			}
		}
		want := map[Mode]int{ModeNative: 1, ModeSidecar: 2, ModeInitOnly: 1}[mode]
		if n != want {
			t.Errorf("%s: %d agent containers, want %d", mode, n, want)
		}
	}
}

func TestConflictingNames(t *testing.T) {
	pod := annotatedPod(withInject())
	pod.Spec.Volumes = []corev1.Volume{{Name: SecretsVolume}}
	_, err := Mutate(pod, goldenOptions())
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Errs[0].Field != "spec.volumes[0].name" {
		t.Fatalf("want a duplicate volume error, got %v", err)
	}
}

// TestInjectedMarkWithoutVolume: annotations copied from an injected pod
// onto a new one must not add a mount of a volume the pod does not have.
func TestInjectedMarkWithoutVolume(t *testing.T) {
	pod := annotatedPod(withInject(AnnotationStatus, StatusInjected))
	before := pod.DeepCopy()
	out, err := Mutate(pod, goldenOptions())
	if err != nil || out.Reason != ReasonAlreadyInjected {
		t.Fatalf("Mutate = %+v, %v", out, err)
	}
	if !reflect.DeepEqual(pod, before) {
		t.Fatal("the pod was changed")
	}
}
