package injector_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// A hostile review is one built to cost the webhook more than its size.
// Each shape grows one part of a pod with n; at every n the pod stays a
// pod the API server would pass to the webhook (under its 3 MiB body
// limit at the largest n used here).
type shape struct {
	name string
	op   admissionv1.Operation
	pod  func(n int) *corev1.Pod
}

func injectPod(ann map[string]string) *corev1.Pod {
	a := map[string]string{"blinkchamber.io/inject": "true", "blinkchamber.io/secret-db": "secret/data/a/db"}
	for k, v := range ann {
		a[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hostile", Namespace: "shop", Annotations: a},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}},
	}
}

func keys(n int, prefix string, value string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("%sunknown-%06d", prefix, i)] = value
	}
	return m
}

var shapes = []shape{
	{"unknown-keys", admissionv1.Create, func(n int) *corev1.Pod {
		return injectPod(keys(n, "blinkchamber.io/", "x"))
	}},
	{"vault-unknown-keys", admissionv1.Create, func(n int) *corev1.Pod {
		ann := keys(n, "vault.hashicorp.com/", "x")
		ann["vault.hashicorp.com/agent-inject"] = "true"
		ann["vault.hashicorp.com/agent-inject-secret-db"] = "secret/data/a/db"
		p := injectPod(nil)
		p.Annotations = ann
		return p
	}},
	{"mixed-prefixes", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(keys(n, "blinkchamber.io/", "x"))
		p.Annotations["vault.hashicorp.com/agent-inject"] = "true"
		return p
	}},
	{"huge-values", admissionv1.Create, func(n int) *corev1.Pod {
		// Few keys, each with a value far over anything echoed.
		return injectPod(keys(max(1, n/100), "blinkchamber.io/", strings.Repeat("v", 2000)))
	}},
	{"bad-values", admissionv1.Create, func(n int) *corev1.Pod {
		ann := map[string]string{}
		for i := range n {
			ann[fmt.Sprintf("blinkchamber.io/perms-s%06d", i)] = "999"
			ann[fmt.Sprintf("blinkchamber.io/secret-s%06d", i)] = "/abs"
		}
		return injectPod(ann)
	}},
	{"containers-annotation", admissionv1.Create, func(n int) *corev1.Pod {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("missing-%06d", i)
		}
		return injectPod(map[string]string{"blinkchamber.io/containers": strings.Join(names, ",")})
	}},
	{"many-containers", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(nil)
		p.Spec.Containers = nil
		for i := range n {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%06d", i), Image: "i"})
		}
		return p
	}},
	{"many-init-containers", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(nil)
		for i := range n {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: fmt.Sprintf("i%06d", i), Image: "i"})
		}
		return p
	}},
	{"many-agent-mounts", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(nil)
		for i := range n {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
				corev1.VolumeMount{Name: "blinkchamber-token", MountPath: fmt.Sprintf("/t/%06d", i)})
		}
		return p
	}},
	{"many-volumes", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(nil)
		for i := range n {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("v%06d", i),
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}
		return p
	}},
	{"many-env", admissionv1.Create, func(n int) *corev1.Pod {
		p := injectPod(nil)
		for i := range n {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: fmt.Sprintf("E%06d", i), Value: "v"})
		}
		return p
	}},
	{"many-secrets", admissionv1.Create, func(n int) *corev1.Pod {
		ann := map[string]string{}
		for i := range max(1, n/4) {
			ann[fmt.Sprintf("blinkchamber.io/secret-s%06d", i)] = fmt.Sprintf("secret/data/a/s%06d", i)
		}
		return injectPod(ann)
	}},
	{"long-template", admissionv1.Create, func(n int) *corev1.Pod {
		t := `{{ with secret "secret/data/a/db" }}` + strings.Repeat(`{{ .Data.data.k }}`, max(1, n/4)) + `{{ end }}`
		return injectPod(map[string]string{"blinkchamber.io/template-db": t})
	}},
	{"update-with-old-object", admissionv1.Update, func(n int) *corev1.Pod {
		return injectPod(keys(n, "blinkchamber.io/", "x"))
	}},
}

// hostileReview is an AdmissionReview for pod; UPDATE carries the pod as
// its old object too.
func hostileReview(t testing.TB, op admissionv1.Operation, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID: "0b9f8a52-0000-4000-8000-00000000h051", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: op,
		Namespace: pod.Namespace, Name: pod.Name, Object: kruntime.RawExtension{Raw: raw},
	}
	if op == admissionv1.Update {
		req.OldObject = kruntime.RawExtension{Raw: raw}
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkHostileReviews answers each hostile shape at growing sizes.
// ns/byte (and cpu-ns/byte) should stay flat as n grows: the cost is
// linear in the review. The sizes reach the API server's 3 MiB body limit
// for the shapes whose bytes per n are smallest.
func BenchmarkHostileReviews(b *testing.B) {
	crlog.SetLogger(logr.Discard())
	for _, s := range shapes {
		for _, n := range []int{1000, 8000} {
			b.Run(fmt.Sprintf("%s/n=%d", s.name, n), func(b *testing.B) {
				wh := benchWebhook(b)
				body := hostileReview(b, s.op, s.pod(n))
				if rec := serve(wh, body); rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					serve(wh, body)
				}
				cpu := float64(processCPU(b) - cpu0)
				b.ReportMetric(cpu/float64(b.N), "cpu-ns/op")
				b.ReportMetric(cpu/float64(b.N)/float64(len(body)), "cpu-ns/byte")
			})
		}
	}
}

// work is what one answer cost in bytes allocated and mallocs, and the
// size of the answer: all deterministic for a given review.
type work struct {
	body, alloc, mallocs, answer uint64
}

func measure(t *testing.T, wh http.Handler, body []byte) work {
	t.Helper()
	serve(wh, body) // warm up lazily built state
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := serve(wh, body)
	runtime.ReadMemStats(&after)
	return work{body: uint64(len(body)), alloc: after.TotalAlloc - before.TotalAlloc,
		mallocs: after.Mallocs - before.Mallocs, answer: uint64(rec.Body.Len())}
}

// TestHostileReviewsLinear: for every hostile shape, a review 8 times
// larger costs at most about 8 times the memory allocated and the
// allocations (a quadratic path costs 64 times), and a refusal's answer
// stays within a fixed size however many problems the pod has. Counting
// allocations, not time, keeps the test deterministic on a busy machine.
func TestHostileReviewsLinear(t *testing.T) {
	crlog.SetLogger(logr.Discard())
	const n, factor = 500, 8
	// maxRefusal bounds a refusal's whole answer: 10 problems of at most
	// 3 x 400 echoed bytes, plus the envelope.
	const maxRefusal = 16 << 10
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			wh := benchWebhook(t)
			small := measure(t, wh, hostileReview(t, s.op, s.pod(n)))
			large := measure(t, wh, hostileReview(t, s.op, s.pod(n*factor)))
			grow := float64(large.body) / float64(small.body)
			t.Logf("body %d -> %d bytes (x%.1f); allocated %d -> %d bytes (x%.1f); mallocs %d -> %d (x%.1f); answer %d -> %d bytes",
				small.body, large.body, grow, small.alloc, large.alloc, float64(large.alloc)/float64(small.alloc),
				small.mallocs, large.mallocs, float64(large.mallocs)/float64(small.mallocs), small.answer, large.answer)
			// Twice the body's growth leaves room for map and slice
			// doubling; a square would be grow x grow.
			if r := float64(large.alloc) / float64(small.alloc); r > 2*grow {
				t.Errorf("allocated bytes grew x%.1f for a body x%.1f larger: superlinear", r, grow)
			}
			if r := float64(large.mallocs) / float64(small.mallocs); r > 2*grow {
				t.Errorf("allocations grew x%.1f for a body x%.1f larger: superlinear", r, grow)
			}
			for _, w := range []work{small, large} {
				if refused(t, wh, s, n) && w.answer > maxRefusal {
					t.Errorf("refusal answer is %d bytes, over %d", w.answer, maxRefusal)
				}
			}
		})
	}
}

// refused reports whether the shape's review is refused.
func refused(t *testing.T, wh http.Handler, s shape, n int) bool {
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(serve(wh, hostileReview(t, s.op, s.pod(n))).Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return !out.Response.Allowed
}
