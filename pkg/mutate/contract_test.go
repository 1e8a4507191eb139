package mutate

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestAgentVolumesRefused: every way for a container other than the
// agent's to reach an agent-only volume, or to write to the secrets
// volume, is refused with the container's field path, in every mode and
// for vault.hashicorp.com/ pods; a read-only secrets mount is fine.
func TestAgentVolumesRefused(t *testing.T) {
	mount := func(name string, ro bool) []corev1.VolumeMount {
		return []corev1.VolumeMount{{Name: name, MountPath: "/x", ReadOnly: ro}}
	}
	cases := []struct {
		name   string
		ann    map[string]string
		modify func(*corev1.Pod)
		field  string // "" when admitted
	}{
		{"token in an app container", withInject(), func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(TokenVolume, true) },
			"spec.containers[0].volumeMounts[0]"},
		{"state in sidecar mode", withInject(AnnotationMode, "sidecar"), func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(StateVolume, true) },
			"spec.containers[0].volumeMounts[0]"},
		{"state in native mode", withInject(), func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(StateVolume, true) },
			"spec.containers[0].volumeMounts[0]"},
		{"token by subPath in an init container", withInject(AnnotationMode, "init-only"), func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "i",
				VolumeMounts: []corev1.VolumeMount{{Name: TokenVolume, MountPath: "/t", SubPath: "token", ReadOnly: true}}}}
		}, "spec.initContainers[0].volumeMounts[0]"},
		{"token in an ephemeral container", withInject(), func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", VolumeMounts: mount(TokenVolume, true)}}}
		}, "spec.ephemeralContainers[0].volumeMounts[0]"},
		{"secrets read-write", withInject(), func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(SecretsVolume, false) },
			"spec.containers[0].volumeMounts[0].readOnly"},
		{"secrets read-only", withInject(), func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(SecretsVolume, true) }, ""},
		{"secrets as a block device", withInject(), func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: SecretsVolume, DevicePath: "/dev/x"}}
		}, "spec.containers[0].volumeDevices[0]"},
		{"own hostPath volume named like the secrets volume", withInject(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: SecretsVolume, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
			p.Spec.Containers[0].VolumeMounts = mount(SecretsVolume, false)
		}, "spec.volumes[0].name"},
		{"own volume named like the token volume", withInject(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: TokenVolume}}
		}, "spec.volumes[0].name"},
		{"container posing as the agent", withInject(), func(p *corev1.Pod) { p.Spec.Containers[0].Name = AgentContainer },
			"spec.containers[0].name"},
		{"vault-k8s pod mounts the token", map[string]string{VaultInject: "true", VaultPrefixSecret + "db": "secret/data/a/db"},
			func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = mount(TokenVolume, true) }, "spec.containers[0].volumeMounts[0]"},
		{"re-invoked: a container added after injection mounts the token", withInject(AnnotationStatus, StatusInjected), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: SecretsVolume}, {Name: TokenVolume}}
			p.Spec.InitContainers = []corev1.Container{{Name: AgentContainer, VolumeMounts: mount(TokenVolume, true)}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "late", VolumeMounts: mount(TokenVolume, true)})
		}, "spec.containers[1].volumeMounts[0]"},
		{"re-invoked: the agent's own mounts", withInject(AnnotationStatus, StatusInjected), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: SecretsVolume}, {Name: TokenVolume}, {Name: StateVolume}}
			p.Spec.InitContainers = []corev1.Container{{Name: InitContainer, VolumeMounts: mount(StateVolume, false)}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: AgentContainer, VolumeMounts: mount(SecretsVolume, false)})
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.ann)
			tc.modify(pod)
			_, err := Mutate(pod, goldenOptions())
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("want an InvalidError, got %v", err)
			}
			if inv.Errs[0].Field != tc.field {
				t.Errorf("first error names %s, want %s: %v", inv.Errs[0].Field, tc.field, inv)
			}
		})
	}
}

// TestInputRefusalsNameAnnotations: pod input the agent's configuration
// check would refuse is refused first, naming the annotation or the spec
// field, as invalid input (never ErrAgentConfig, a 500).
func TestInputRefusalsNameAnnotations(t *testing.T) {
	// Three templates each under the 64 KiB template limit, 170 kB in all.
	tmpl := func(n int) string {
		return `{{ with secret "secret/data/a/db" }}` + strings.Repeat(`{{ .Data.data.k }}`, n) + `{{ end }}`
	}
	cases := []struct {
		name   string
		ann    map[string]string
		sa     string
		field  string
		detail string
	}{
		{"file named by another secret's file annotation", withInject(PrefixSecret+"a", "secret/data/x", PrefixFile+"a", "db"), "app",
			"metadata.annotations[blinkchamber.io/secret-db]", "blinkchamber.io/file-a"},
		{"two file annotations", withInject(PrefixTemplate+"a", `x`, PrefixFile+"a", "f", PrefixFile+"db", "f"), "app",
			"metadata.annotations[blinkchamber.io/file-db]", "blinkchamber.io/file-a"},
		{"template-only secret named like another's file", withInject(PrefixTemplate+"x", `x`, PrefixFile+"db", "x"), "app",
			"metadata.annotations[blinkchamber.io/template-x]", "blinkchamber.io/file-db"},
		{"vault-k8s names differing by case", map[string]string{VaultInject: "true", VaultPrefixSecret + "DB": "secret/data/a",
			VaultPrefixFile + "DB": "one", VaultPrefixSecret + "db": "secret/data/b", VaultPrefixFile + "db": "two"}, "app",
			"metadata.annotations[vault.hashicorp.com/agent-inject-secret-db]", `"DB"`},
		{"vault-k8s files colliding", map[string]string{VaultInject: "true", VaultPrefixSecret + "a": "secret/data/a",
			VaultPrefixFile + "a": "f", VaultPrefixSecret + "b": "secret/data/b", VaultPrefixFile + "b": "f"}, "app",
			"metadata.annotations[vault.hashicorp.com/agent-inject-file-b]", "vault.hashicorp.com/agent-inject-file-a"},
		{"secret declared by a token endpoint's path", withInject(PrefixSecret+"x", "auth/token/lookup-self"), "app",
			"metadata.annotations[blinkchamber.io/secret-x]", "answers with a token"},
		{"vault-k8s secret declared by a token endpoint's path", map[string]string{VaultInject: "true",
			VaultPrefixSecret + "x": "sys/wrapping/unwrap"}, "app",
			"metadata.annotations[vault.hashicorp.com/agent-inject-secret-x]", "answers with a token"},
		{"role from a ServiceAccount name the role check refuses", withInject(), "app:x",
			"spec.serviceAccountName", AnnotationRole},
		{"config too large for its environment variable", withInject(PrefixTemplate+"a", tmpl(3000), PrefixTemplate+"b", tmpl(3000),
			PrefixTemplate+"db", tmpl(3300)), "app",
			"metadata.annotations[blinkchamber.io/template-db]", "environment variable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.ann)
			pod.Spec.ServiceAccountName = tc.sa
			_, err := Mutate(pod, goldenOptions())
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("want an InvalidError, got %v", err)
			}
			e := inv.Errs[0]
			if e.Field != tc.field || !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("got %s: %s; want %s saying %q", e.Field, e.Detail, tc.field, tc.detail)
			}
		})
	}
}

// TestMountPathTaken: a mount path an app container already uses is
// refused naming the mount-path annotation (the API server would refuse
// the duplicate mount after injection, naming no annotation).
func TestMountPathTaken(t *testing.T) {
	pod := annotatedPod(withInject(AnnotationMountPath, "/etc/app"))
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/app"}}
	_, err := Mutate(pod, goldenOptions())
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Errs[0].Field != "metadata.annotations[blinkchamber.io/mount-path]" {
		t.Fatalf("want a refusal naming the mount-path annotation, got %v", err)
	}
}

// TestProblemsCapped: thousands of problems are counted, the first
// MaxListedErrors listed, and no echo is longer than MaxEcho and a note.
func TestProblemsCapped(t *testing.T) {
	ann := withInject()
	for i := range 5000 {
		ann[Prefix+"unknown-"+strings.Repeat("k", i%50)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("v", 10000)
	}
	_, err := Mutate(annotatedPod(ann), goldenOptions())
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want an InvalidError, got %v", err)
	}
	if inv.Errs[0].Field != "metadata.annotations" || inv.Total != 1 {
		t.Errorf("annotations over the API server's limit: got %v", inv)
	}

	ann = withInject()
	for i := range 3000 {
		ann[Prefix+"unknown-"+strconv.Itoa(i)] = "v"
	}
	ann[PrefixPerms+"db"] = strings.Repeat("9", 100000)
	_, err = Mutate(annotatedPod(ann), goldenOptions())
	if !errors.As(err, &inv) {
		t.Fatalf("want an InvalidError, got %v", err)
	}
	if len(inv.Errs) != MaxListedErrors || inv.Total != 3001 {
		t.Errorf("listed %d of %d, want %d of 3001", len(inv.Errs), inv.Total, MaxListedErrors)
	}
	msg := inv.Error()
	if !strings.HasPrefix(msg, "3001 problems, the first 10: [") || len(msg) > MaxListedErrors*(3*MaxEcho+100) {
		t.Errorf("message (%d bytes) does not count or is not bounded: %.300s", len(msg), msg)
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate("short"); got != "short" {
		t.Errorf("Truncate(short) = %q", got)
	}
	long := strings.Repeat("é", MaxEcho) // two bytes each: the cut falls mid-character
	got := Truncate(long)
	if !strings.HasSuffix(got, "... (800 bytes)") || len(got) > MaxEcho+20 || !strings.HasPrefix(got, "éé") {
		t.Errorf("Truncate = %q", got)
	}
	if cut := strings.TrimSuffix(got, "... (800 bytes)"); !strings.HasSuffix(cut, "é") {
		t.Errorf("cut mid-character: %q", cut[len(cut)-4:])
	}
}
