package injector

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// checkPodPatch proves podPatch(before, after) right: it has the same
// operations as controller-runtime's diff of the two whole pods, and
// applied to before's JSON it gives after. It also checks that neither
// pod was changed by computing the patch.
func checkPodPatch(t *testing.T, before, after *corev1.Pod) {
	t.Helper()
	keepBefore, keepAfter := before.DeepCopy(), after.DeepCopy()
	rawBefore, rawAfter := marshal(t, before), marshal(t, after)

	got := podPatch(before, after)
	want := admission.PatchResponseFromRaw(rawBefore, rawAfter)
	if !got.Allowed || got.Result != nil && got.Result.Code >= 400 {
		t.Fatalf("podPatch refused: %+v", got.Result)
	}
	if g, w := opStrings(t, got), opStrings(t, want); !slices.Equal(g, w) {
		t.Fatalf("operations differ from the whole pods' diff\n got: %s\nwant: %s", strings.Join(g, "\n      "), strings.Join(w, "\n      "))
	}
	if !reflect.DeepEqual(before, keepBefore) || !reflect.DeepEqual(after, keepAfter) {
		t.Fatal("computing the patch changed a pod")
	}
	if len(got.Patches) == 0 {
		if !reflect.DeepEqual(before, after) {
			t.Fatal("no patch for pods that differ")
		}
		return
	}
	patch, err := jsonpatch.DecodePatch(marshal(t, got.Patches))
	if err != nil {
		t.Fatal(err)
	}
	applied, err := patch.Apply(rawBefore)
	if err != nil {
		t.Fatalf("applying the patch to the pod: %v", err)
	}
	var result corev1.Pod
	if err := json.Unmarshal(applied, &result); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&result, after) {
		t.Errorf("the patched pod differs from the mutated one:\n%s\nwant\n%s", marshal(t, &result), rawAfter)
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opStrings are the operations as sorted JSON lines (the diff walks maps,
// so its order is not fixed).
func opStrings(t *testing.T, r admission.Response) []string {
	t.Helper()
	var out []string
	for _, op := range r.Patches {
		out = append(out, string(marshal(t, op)))
	}
	slices.Sort(out)
	return out
}

// TestPodPatchGolden: for every pod of the mutation's golden cases, the
// patch of the injected pod is the whole pods' diff.
func TestPodPatchGolden(t *testing.T) {
	inputs, err := filepath.Glob("../mutate/testdata/*.yaml")
	if err != nil || len(inputs) < 15 {
		t.Fatalf("found %d golden pods (%v), want at least 15", len(inputs), err)
	}
	opts := mutate.DefaultOptions()
	opts.AgentImage = "ghcr.io/blinkchamber/agent:v0.1.0"
	opts.VaultAddr = "https://vault.vault.svc:8200"
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(b, &pod); err != nil {
				t.Fatal(err)
			}
			before := pod.DeepCopy()
			if _, err := mutate.Mutate(&pod, opts); err != nil {
				t.Skipf("refused by the mutation (%v): no patch to check", err)
			}
			checkPodPatch(t, before, &pod)
		})
	}
}

// TestPodPatchShapes covers what emptying equal fields could get wrong: a
// map with one member added or removed must not be replaced whole, array
// tails are added whole, and a change inside an element at a shared
// position is patched there.
func TestPodPatchShapes(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "a", Image: "i", Env: []corev1.EnvVar{{Name: "X", Value: "1"}}}},
			Volumes:    []corev1.Volume{{Name: "v"}},
		}}
	}
	withAnnotations := func(kv ...string) *corev1.Pod {
		p := base()
		p.Annotations = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
		return p
	}
	cases := []struct {
		name   string
		before *corev1.Pod
		change func(*corev1.Pod)
	}{
		{"nothing changes", base(), func(*corev1.Pod) {}},
		{"an annotation added to others", withAnnotations("a", "1", "b", "2"), func(p *corev1.Pod) { p.Annotations["c"] = "3" }},
		{"an annotation removed", withAnnotations("a", "1", "b", "2"), func(p *corev1.Pod) { delete(p.Annotations, "a") }},
		{"the first annotation", base(), func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "1"} }},
		{"a container appended", base(), func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b"}) }},
		{"an env var appended in a container", base(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "Y", Value: "2"})
		}},
		{"an env value changed", base(), func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "2" }},
		{"a container removed", base(), func(p *corev1.Pod) { p.Spec.Containers = nil }},
		{"a pointer set", base(), func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) }},
		{"a security context filled in", base(), func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
		}},
		{"volumes replaced and one added", base(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "w"}, {Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := tc.before.DeepCopy()
			tc.change(after)
			checkPodPatch(t, tc.before, after)
		})
	}
}

// Types on which emptying equal members would change the diff, were it
// done: an omitzero struct emptied in one copy vanishes from it, and a
// type with its own encoding need not write its fields as members.
type pair struct {
	A int `json:"a,omitempty"`
	B int `json:"b,omitempty"`
}

type nullWhenOff struct{ On, W int }

func (n nullWhenOff) MarshalJSON() ([]byte, error) {
	if n.On == 0 {
		return []byte("null"), nil
	}
	return json.Marshal(map[string]int{"w": n.W})
}

type shapes struct {
	Z pair          `json:"z,omitzero"`
	N nullWhenOff   `json:"n"`
	L []nullWhenOff `json:"l"`
	P pair          `json:"p"`
}

// TestEmptyEqualKeepsTheDiff: on those types emptyEqual leaves the diff of
// the two documents exactly as controller-runtime computes it from the
// whole ones.
func TestEmptyEqualKeepsTheDiff(t *testing.T) {
	base := shapes{Z: pair{1, 2}, N: nullWhenOff{1, 1}, L: []nullWhenOff{{1, 1}}, P: pair{1, 2}}
	cases := []struct {
		name   string
		change func(*shapes)
	}{
		{"omitzero member removed", func(s *shapes) { s.Z.B = 0 }},
		{"own encoding changed", func(s *shapes) { s.N.W = 2 }},
		{"own encoding in a list changed", func(s *shapes) { s.L = []nullWhenOff{{1, 2}} }},
		{"plain member removed", func(s *shapes) { s.P.B = 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, after := base, base
			before.L, after.L = slices.Clone(base.L), slices.Clone(base.L)
			tc.change(&after)
			want := admission.PatchResponseFromRaw(marshal(t, before), marshal(t, after))
			b, a := before, after
			emptyEqual(reflect.ValueOf(&b).Elem(), reflect.ValueOf(&a).Elem(), patchDepth)
			got := admission.PatchResponseFromRaw(marshal(t, b), marshal(t, a))
			if g, w := opStrings(t, got), opStrings(t, want); !slices.Equal(g, w) || len(w) == 0 {
				t.Errorf("operations %q, want %q (and some)", g, w)
			}
		})
	}
}
