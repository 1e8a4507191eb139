package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// invalidCauses asserts err is the webhook's 422 refusal and returns its
// message and the fields its causes name.
func invalidCauses(t *testing.T, err error) (string, []string) {
	t.Helper()
	if err == nil {
		t.Fatal("the pod was admitted")
	}
	var se *apierrors.StatusError
	if !apierrors.IsInvalid(err) || !errors.As(err, &se) {
		t.Fatalf("want a 422 Invalid refusal, got %T: %.2000s", err, err.Error())
	}
	var fields []string
	if d := se.ErrStatus.Details; d != nil {
		for _, c := range d.Causes {
			fields = append(fields, c.Field)
		}
	}
	return se.ErrStatus.Message, fields
}

// TestHostilePodRefusedQuickly: a pod with 8,000 unknown blinkchamber.io/
// keys (240 kB of annotations, under the API server's 256 KiB limit) is
// refused through the real API server with a message that counts the
// problems, lists the first ones and stays a few kilobytes. Before the
// cap the injector built a quadratic message and ran past the API
// server's 10 s webhook timeout.
func TestHostilePodRefusedQuickly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startCertDirInjector(t, ctx)
	if err := kube.Namespace(ctx, "hostile-keys", true, "app"); err != nil {
		t.Fatal(err)
	}
	// listed is mutate.MaxListedErrors, spelled out so that the test also
	// builds against the code before the cap.
	const n, listed = 8000, 10
	ann := map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/hostile/app/db"}
	for i := range n {
		ann[fmt.Sprintf("%sunknown-%05d", mutate.Prefix, i)] = "x"
	}
	pod := appPod("many-keys", ann)
	pod.Namespace = "hostile-keys"
	start := time.Now()
	err := kube.Client.Create(ctx, pod)
	took := time.Since(start)
	msg, fields := invalidCauses(t, err)
	t.Logf("refused in %s with a %d-byte message, %d causes", took, len(msg), len(fields))
	if len(msg) > 16<<10 {
		t.Errorf("message is %d bytes, want at most 16 KiB", len(msg))
	}
	for _, want := range []string{fmt.Sprintf("%d problems, the first %d", n, listed),
		"metadata.annotations[blinkchamber.io/unknown-00000]", "metadata.annotations[blinkchamber.io/unknown-00009]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %.600s", want, msg)
		}
	}
	if len(fields) != listed {
		t.Errorf("%d causes, want the first %d", len(fields), listed)
	}
}

// TestAgentVolumesRefused: an app container that mounts a volume the
// agent keeps its credentials in, or mounts the secrets volume read-write,
// is refused with 422 naming the container's mount, in every mode and for
// vault.hashicorp.com/ pods too; so is a debug (ephemeral) container
// added to an injected pod that mounts the token volume. Before the check,
// the injector added the volumes and the API server admitted the mounts.
func TestAgentVolumesRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startCertDirInjector(t, ctx)
	const ns = "hostile-mounts"
	if err := kube.Namespace(ctx, ns, true, "app"); err != nil {
		t.Fatal(err)
	}
	annotations := func(mode string) map[string]string {
		return map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/hostile/app/db",
			mutate.AnnotationMode: mode}
	}
	vault := map[string]string{mutate.VaultInject: "true", mutate.VaultPrefixSecret + "db": "secret/data/hostile/app/db"}
	cases := []struct {
		name  string
		ann   map[string]string
		mount corev1.VolumeMount
		field string
	}{
		{"sidecar app mounts the state volume", annotations("sidecar"),
			corev1.VolumeMount{Name: mutate.StateVolume, MountPath: "/steal"}, "spec.containers[1].volumeMounts[0]"},
		{"app mounts the token volume", annotations("native"),
			corev1.VolumeMount{Name: mutate.TokenVolume, MountPath: "/steal"}, "spec.containers[1].volumeMounts[0]"},
		{"app mounts the token volume by subPath", annotations("init-only"),
			corev1.VolumeMount{Name: mutate.TokenVolume, MountPath: "/steal/token", SubPath: "token"}, "spec.containers[1].volumeMounts[0]"},
		{"app mounts the secrets volume read-write", annotations("native"),
			corev1.VolumeMount{Name: mutate.SecretsVolume, MountPath: "/rw"}, "spec.containers[1].volumeMounts[0].readOnly"},
		{"vault-k8s pod mounts the token volume", vault,
			corev1.VolumeMount{Name: mutate.TokenVolume, MountPath: "/steal"}, "spec.containers[1].volumeMounts[0]"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := appPod(fmt.Sprintf("mounts-%d", i), tc.ann)
			pod.Namespace = ns
			pod.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{tc.mount}
			msg, fields := invalidCauses(t, kube.Client.Create(ctx, pod))
			if len(fields) == 0 || fields[0] != tc.field {
				t.Errorf("causes name %v, want %s", fields, tc.field)
			}
			if !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.mount.Name) {
				t.Errorf("message does not name %s and %s: %s", tc.field, tc.mount.Name, msg)
			}
		})
	}

	t.Run("debug container mounts the token volume of an injected pod", func(t *testing.T) {
		pod := appPod("debugged", annotations("native"))
		pod.Namespace = ns
		if err := kube.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: "busybox", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy: corev1.PullIfNotPresent,
			VolumeMounts:    []corev1.VolumeMount{{Name: mutate.TokenVolume, MountPath: "/steal"}},
		}}}
		_, fields := invalidCauses(t, kube.Client.SubResource("ephemeralcontainers").Update(ctx, pod))
		if len(fields) == 0 || fields[0] != "spec.ephemeralContainers[0].volumeMounts[0]" {
			t.Errorf("causes name %v, want spec.ephemeralContainers[0].volumeMounts[0]", fields)
		}
		// A debug container without the agent's volumes is let through.
		fresh := &corev1.Pod{}
		if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err != nil {
			t.Fatal(err)
		}
		fresh.Spec.EphemeralContainers = pod.Spec.EphemeralContainers
		fresh.Spec.EphemeralContainers[0].VolumeMounts = []corev1.VolumeMount{{Name: mutate.SecretsVolume, MountPath: "/s", ReadOnly: true}}
		if err := kube.Client.SubResource("ephemeralcontainers").Update(ctx, fresh); err != nil {
			t.Errorf("a debug container reading the secrets was refused: %v", err)
		}
	})
}

// TestInputRefusalsNameTheAnnotation: refusals caused by the pod's input
// are 422 and name the annotations, never a 500. Two secrets rendered to
// the same file came back as HTTP 500 "Internal error ... secrets[1].file:
// Duplicate value" before.
func TestInputRefusalsNameTheAnnotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startCertDirInjector(t, ctx)
	const ns = "hostile-input"
	if err := kube.Namespace(ctx, ns, true, "app"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ann  map[string]string
		want []string
	}{
		{"two secrets render to one file", map[string]string{mutate.AnnotationInject: "true",
			mutate.PrefixSecret + "a": "secret/data/x/a", mutate.PrefixFile + "a": "b",
			mutate.PrefixSecret + "b": "secret/data/x/b"},
			[]string{"metadata.annotations[blinkchamber.io/secret-b]", "blinkchamber.io/file-a"}},
		{"vault-k8s names differing only by case", map[string]string{mutate.VaultInject: "true",
			mutate.VaultPrefixSecret + "DB": "secret/data/x/a", mutate.VaultPrefixFile + "DB": "one",
			mutate.VaultPrefixSecret + "db": "secret/data/x/b", mutate.VaultPrefixFile + "db": "two"},
			[]string{"metadata.annotations[vault.hashicorp.com/agent-inject-secret-db]", "DB"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := appPod(fmt.Sprintf("input-%d", i), tc.ann)
			pod.Namespace = ns
			msg, _ := invalidCauses(t, kube.Client.Create(ctx, pod))
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
}
