package podreview_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/bench/podreview"
)

// TestCheck sends reviews to the real webhook handler: Check accepts the
// injection of the pod it asked about and nothing else.
func TestCheck(t *testing.T) {
	o := mutate.DefaultOptions()
	o.AgentImage, o.VaultAddr = "ghcr.io/blinkchamber/agent:v1", "https://vault:8200"
	m, err := injector.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var wh http.Handler = injector.NewWebhook(o, m, logr.Discard())
	const uid = types.UID("5d0c2f3e-0000-4000-8000-000000000004")
	cases := []struct {
		name    string
		edit    func(*corev1.Pod)
		askUID  types.UID // the uid Check expects
		wantErr bool
	}{
		{"injected", func(*corev1.Pod) {}, uid, false},
		{"answer to another review", func(*corev1.Pod) {}, "another", true},
		{"injection disabled", func(p *corev1.Pod) { p.Annotations[mutate.AnnotationInject] = "false" }, uid, true},
		{"denied", func(p *corev1.Pod) { p.Annotations[mutate.PrefixSecret+"bad"] = "/absolute" }, uid, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := podreview.Pod(3)
			tc.edit(pod)
			body, err := podreview.Review(pod, uid)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, injector.Path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			wh.ServeHTTP(rec, req)
			err = podreview.Check(rec.Body.Bytes(), pod, tc.askUID)
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, podreview.ErrNotInjected)) {
				t.Fatalf("Check = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

// TestPodIsWhatTheAPIServerSends pins the parts of the generated pod that
// make it a Deployment's pod at admission time.
func TestPodIsWhatTheAPIServerSends(t *testing.T) {
	pod := podreview.Pod(5)
	secrets := 0
	for k := range pod.Annotations {
		if strings.HasPrefix(k, mutate.PrefixSecret) {
			secrets++
		}
	}
	switch {
	case pod.Name != "" || pod.GenerateName == "":
		t.Errorf("name %q, generateName %q: a ReplicaSet's pod has only a generateName", pod.Name, pod.GenerateName)
	case len(pod.Spec.Containers) != 2:
		t.Errorf("%d containers, want 2", len(pod.Spec.Containers))
	case len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Projected == nil:
		t.Errorf("volumes %v, want the kube-api-access projected volume", pod.Spec.Volumes)
	case len(pod.ManagedFields) != 1 || pod.ManagedFields[0].FieldsV1 == nil:
		t.Errorf("managedFields %v, want kube-controller-manager's entry", pod.ManagedFields)
	case secrets != 5:
		t.Errorf("%d secret annotations, want 5", secrets)
	}
}
