package mutate

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

// restrictedViolations evaluates pod against the Kubernetes "restricted"
// Pod Security Standard with the same checks the API server's PodSecurity
// admission runs, one "reason: detail" line per failed check.
func restrictedViolations(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	var out []string
	for _, r := range ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
		if !r.Allowed {
			out = append(out, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	slices.Sort(out)
	return out
}

// TestGoldenPodsRestricted: the injected parts never add a violation of the
// restricted Pod Security Standard. Each golden output is compared with its
// input (an app container that already violates a check must not hide the
// agent violating it too: the detail names the containers, so it changes),
// and a copy of the input whose app containers are made compliant must come
// out of Mutate with no violation at all.
func TestGoldenPodsRestricted(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			before := restrictedViolations(t, readPod(t, in))
			golden := readPod(t, strings.TrimSuffix(in, ".yaml")+".golden")
			for _, v := range restrictedViolations(t, golden) {
				if !slices.Contains(before, v) {
					t.Errorf("mutation added a restricted violation: %s", v)
				}
			}
			pod := readPod(t, in)
			makeRestricted(pod)
			if v := restrictedViolations(t, pod); len(v) > 0 {
				t.Fatalf("the compliant input is not compliant: %v", v)
			}
			opts := goldenOptions()
			if strings.HasPrefix(name, "default-mode-sidecar") {
				opts.Mode = ModeSidecar
			}
			if _, err := Mutate(pod, opts); err != nil {
				t.Fatalf("Mutate: %v", err)
			}
			if v := restrictedViolations(t, pod); len(v) > 0 {
				t.Errorf("a restricted-compliant pod is no longer compliant after injection: %v", v)
			}
		})
	}
}

// makeRestricted gives the app's own containers (not ours: the test is that
// ours comply by themselves) the settings the restricted level asks for,
// leaving every field the input already sets alone.
func makeRestricted(pod *corev1.Pod) {
	if pod.Spec.SecurityContext == nil {
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	psc := pod.Spec.SecurityContext
	if psc.SeccompProfile == nil {
		psc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	if psc.RunAsNonRoot == nil {
		psc.RunAsNonRoot = ptr.To(true)
	}
	harden := func(cs []corev1.Container) {
		for i := range cs {
			if cs[i].Name == AgentContainer || cs[i].Name == InitContainer {
				continue
			}
			if cs[i].SecurityContext == nil {
				cs[i].SecurityContext = &corev1.SecurityContext{}
			}
			sc := cs[i].SecurityContext
			if sc.AllowPrivilegeEscalation == nil {
				sc.AllowPrivilegeEscalation = ptr.To(false)
			}
			if sc.Capabilities == nil {
				sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				sc.RunAsUser = ptr.To[int64](1000)
			}
		}
	}
	harden(pod.Spec.InitContainers)
	harden(pod.Spec.Containers)
}
