package mutate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestInjectedPodAppInitContainersChecked: in an already injected pod (a
// re-invocation, or a pod made from a template that copied the status), an
// init container that is not the agent's may not mount the agent's volumes.
func TestInjectedPodAppInitContainersChecked(t *testing.T) {
	pod := annotatedPod(withInject())
	if _, err := Mutate(pod, goldenOptions()); err != nil {
		t.Fatal(err)
	}
	pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: "late-init", Image: "i",
		VolumeMounts: []corev1.VolumeMount{{Name: TokenVolume, MountPath: "/t", ReadOnly: true}}})
	_, err := Mutate(pod, goldenOptions())
	var inv *InvalidError
	want := fmt.Sprintf("spec.initContainers[%d].volumeMounts[0]", len(pod.Spec.InitContainers)-1)
	if !errors.As(err, &inv) || inv.Errs[0].Field != want {
		t.Fatalf("Mutate = %v, want %s refused", err, want)
	}
}

// TestAddedContainersCheckedWithoutStatus: a debug container added to an
// injected pod whose status annotation was removed after admission is
// still checked: the agent's volumes say the pod is injected.
func TestAddedContainersCheckedWithoutStatus(t *testing.T) {
	pod := annotatedPod(withInject(AnnotationMode, "sidecar"))
	if _, err := Mutate(pod, goldenOptions()); err != nil {
		t.Fatal(err)
	}
	delete(pod.Annotations, AnnotationStatus)
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", VolumeMounts: []corev1.VolumeMount{{Name: StateVolume, MountPath: "/s", ReadOnly: true}}}}}
	if err := CheckAddedContainers(pod); err == nil {
		t.Fatal("a debug container mounting the state volume was admitted")
	}
}

// TestCommandFromTheVolumesRefused: a command may not run a file of the
// agent's volumes (a template can render any bytes there), by any
// spelling, under either prefix.
func TestCommandFromTheVolumesRefused(t *testing.T) {
	for _, tc := range []struct {
		ann   map[string]string
		field string
	}{
		{withInject(PrefixCommand+"db", "/blinkchamber/secrets/db"), PrefixCommand + "db"},
		{withInject(PrefixCommand+"db", `["/blinkchamber//secrets/./db"]`), PrefixCommand + "db"},
		{withInject(PrefixCommand+"db", "/blinkchamber/state/state.json"), PrefixCommand + "db"},
		{withInject(PrefixCommand+"db", "blinkchamber/secrets/db"), PrefixCommand + "db"},
		{map[string]string{VaultInject: "true", VaultRole: "app", VaultPrefixSecret + "db": "secret/data/ns/app/db",
			VaultPrefixCommand + "db": "/blinkchamber/secrets/db"}, VaultPrefixCommand + "db"},
	} {
		_, err := Mutate(annotatedPod(tc.ann), goldenOptions())
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Errs[0].Field != "metadata.annotations["+tc.field+"]" {
			t.Errorf("%v: Mutate = %v, want %s refused", tc.ann, err, tc.field)
		}
	}
	if _, err := Mutate(annotatedPod(withInject(PrefixCommand+"db", "/usr/local/bin/reload --graceful")), goldenOptions()); err != nil {
		t.Errorf("a program of the image: %v", err)
	}
}

// TestWarningsCapped: thousands of accepted keys that each warn give the
// first MaxListedErrors warnings, each cut to MaxEcho, and a count.
func TestWarningsCapped(t *testing.T) {
	ann := map[string]string{VaultInject: "true", VaultRole: "app", VaultPrefixSecret + "db": "secret/data/ns/app/db"}
	for i := range 2000 {
		ann[fmt.Sprintf("%sagent-telemetry-%d%s", VaultPrefix, i, strings.Repeat("x", 20))] = "v"
	}
	out, err := Mutate(annotatedPod(ann), goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) != MaxListedErrors+1 || !strings.Contains(out.Warnings[MaxListedErrors], fmt.Sprintf("and %d more", 2000-MaxListedErrors)) {
		t.Fatalf("%d warnings, last %q; want %d and a count", len(out.Warnings), out.Warnings[len(out.Warnings)-1], MaxListedErrors+1)
	}
	for _, w := range out.Warnings {
		if len(w) > MaxEcho+64 {
			t.Errorf("a warning of %d bytes", len(w))
		}
	}
}
