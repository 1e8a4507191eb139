package injector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// testHandler is the webhook as Run serves it, except that a panic is not
// turned into a 500 answer: tests and the fuzzer must see it.
func testHandler(t testing.TB) http.Handler {
	t.Helper()
	o := mutate.DefaultOptions()
	o.AgentImage = "ghcr.io/blinkchamber/agent:v0.1.0"
	o.VaultAddr = "https://vault.vault.svc:8200"
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &podWebhook{opts: o, metrics: m, log: logr.Discard()}
}

// post sends body as the API server would and decodes the answer, which
// must always be an HTTP 200 carrying an AdmissionReview response.
func post(t testing.TB, h http.Handler, body []byte) (admissionv1.AdmissionReview, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview response (%v): %s", err, rec.Body)
	}
	return out, rec.Body.String()
}

const annotatedPod = `{"metadata":{"name":"p","annotations":{"blinkchamber.io/inject":"true","blinkchamber.io/secret-db":"secret/data/a/b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`

func review(apiVersion, kind, request string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"` + kind + `","request":` + request + `}`
}

func request(op, object string) string {
	return `{"uid":"u1","kind":{"version":"v1","kind":"Pod"},"resource":{"version":"v1","resource":"pods"},"operation":"` + op + `","namespace":"a","object":` + object + `}`
}

// TestReviewEnvelopes: every review gets a clear answer. Versions other
// than v1 and v1beta1, other kinds, reviews without a request and unknown
// operations are refused with 400 and a message naming the field.
func TestReviewEnvelopes(t *testing.T) {
	v1, v1beta1 := "admission.k8s.io/v1", "admission.k8s.io/v1beta1"
	cases := []struct {
		name    string
		body    string
		allowed bool
		patch   bool
		echo    string // apiVersion of the answer
		message string // part of the refusal's message
	}{
		{"v1 CREATE", review(v1, "AdmissionReview", request("CREATE", annotatedPod)), true, true, v1, ""},
		{"v1beta1 CREATE is answered in v1beta1", review(v1beta1, "AdmissionReview", request("CREATE", annotatedPod)), true, true, v1beta1, ""},
		{"v1 DELETE", review(v1, "AdmissionReview", request("DELETE", "null")), true, false, v1, ""},
		{"v1 CONNECT", review(v1, "AdmissionReview", request("CONNECT", "null")), true, false, v1, ""},
		{"unknown version", review("admission.k8s.io/v2", "AdmissionReview", request("CREATE", annotatedPod)), false, false, v1, `apiVersion "admission.k8s.io/v2"`},
		{"no version", `{"kind":"AdmissionReview","request":` + request("CREATE", annotatedPod) + `}`, false, false, v1, `apiVersion ""`},
		{"other kind", review(v1, "AdmissionRequest", request("CREATE", annotatedPod)), false, false, v1, `kind "AdmissionRequest"`},
		{"JSON null", `null`, false, false, v1, `apiVersion ""`},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, false, false, v1, "request.uid is empty"},
		{"unknown operation", review(v1, "AdmissionReview", request("PATCH", annotatedPod)), false, false, v1, `request.operation "PATCH"`},
		{"malformed JSON", `{"apiVersion":`, false, false, "", "unexpected end of JSON input"},
		{"request of the wrong type", review(v1, "AdmissionReview", `[1,2]`), false, false, "", "cannot unmarshal array"},
		{"object that is not a pod", review(v1, "AdmissionReview", request("CREATE", `"pod"`)), false, false, v1, "request.object is not a pod"},
		{"no object", review(v1, "AdmissionReview", request("CREATE", `null`)), false, false, v1, "request.object is empty"},
	}
	h := testHandler(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, raw := post(t, h, []byte(tc.body))
			r := out.Response
			if r.Allowed != tc.allowed || (len(r.Patch) > 0) != tc.patch {
				t.Fatalf("allowed=%v patch=%d bytes, want allowed=%v patch=%v: %s", r.Allowed, len(r.Patch), tc.allowed, tc.patch, raw)
			}
			if tc.echo != "" && out.APIVersion != tc.echo {
				t.Errorf("answered as %q, want %q", out.APIVersion, tc.echo)
			}
			if tc.allowed {
				return
			}
			if r.Result == nil || r.Result.Code != http.StatusBadRequest || !strings.Contains(r.Result.Message, tc.message) {
				t.Errorf("refusal = %+v, want 400 with %q", r.Result, tc.message)
			}
		})
	}
}

// FuzzAdmissionReview feeds arbitrary bytes to the webhook as the body of
// an admission call: never a panic, always an AdmissionReview answer, and
// every refusal carries a code and a message. Seeds: testdata/fuzz.
func FuzzAdmissionReview(f *testing.F) {
	f.Add([]byte(review("admission.k8s.io/v1", "AdmissionReview", request("CREATE", annotatedPod))))
	f.Add([]byte(review("admission.k8s.io/v1beta1", "AdmissionReview", request("UPDATE", annotatedPod))))
	f.Add([]byte(review("admission.k8s.io/v1", "AdmissionReview", request("DELETE", "null"))))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1"`))
	h := testHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, raw := post(t, h, body)
		r := out.Response
		if !r.Allowed && (r.Result == nil || r.Result.Code < 400 || r.Result.Message == "") {
			t.Fatalf("a refusal without a code and message: %s", raw)
		}
		if len(r.Patch) > 0 {
			var ops []map[string]any
			if err := json.Unmarshal(r.Patch, &ops); err != nil || len(ops) == 0 {
				t.Fatalf("patch is not a JSON patch (%v): %s", err, r.Patch)
			}
		}
	})
}

// TestReviewRequests: what is wrong with the HTTP request itself is
// answered as a review too, with the code and a message saying what.
func TestReviewRequests(t *testing.T) {
	body := []byte(review("admission.k8s.io/v1", "AdmissionReview", request("CREATE", annotatedPod)))
	cases := []struct {
		name        string
		body        []byte
		contentType string
		code        int32
		message     string
	}{
		{"empty body", nil, "application/json", http.StatusBadRequest, "the request body is empty"},
		{"not JSON", body, "application/yaml", http.StatusBadRequest, `Content-Type "application/yaml"`},
		{"too large", append(body, bytes.Repeat([]byte(" "), maxReview)...), "application/json", http.StatusRequestEntityTooLarge, "larger than"},
	}
	h := testHandler(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("answer is not an AdmissionReview response (%v): %s", err, rec.Body)
			}
			r := out.Response
			if r.Allowed || r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.message) {
				t.Errorf("answer = %+v, want %d with %q", r.Result, tc.code, tc.message)
			}
		})
	}
}

// TestAbandonedWhenClientGoes: a real HTTP client sends a review and hangs
// up while the webhook works on it (as the API server does after the
// webhook's timeout). The webhook stops at its next stage: no mutation, no
// patch, counted as abandoned.
func TestAbandonedWhenClientGoes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := mutate.DefaultOptions()
	o.AgentImage, o.VaultAddr = "agent:1", "https://vault:8200"
	reached := make(chan struct{})
	var stages []string
	wh := &podWebhook{opts: o, metrics: m, log: logr.Discard()}
	wh.stageHook = func(ctx context.Context, stage string) {
		stages = append(stages, stage)
		if stage != "decoded" {
			return
		}
		close(reached)
		select {
		case <-ctx.Done(): // the client has gone
		case <-time.After(30 * time.Second):
			t.Error("the request context was not cancelled when the client hung up")
		}
	}
	srv := httptest.NewServer(wh)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+Path,
		strings.NewReader(review("admission.k8s.io/v1", "AdmissionReview", request("CREATE", annotatedPod))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-reached
	cancel() // hang up
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want it cancelled", err)
	}
	srv.Close() // waits for the handler to return
	if got := counted(t, reg, OutcomeAbandoned); got != 1 {
		t.Errorf("abandoned admissions = %v, want 1", got)
	}
	if len(stages) != 1 {
		t.Errorf("stages run: %v, want only %q: the work stops once the client is gone", stages, "decoded")
	}
}

// counted sums the admissions counter for outcome.
func counted(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "blinkchamber_injector_admissions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
