package injector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReview is the largest body the envelope is checked on; controller-runtime
// refuses anything larger (7 MiB) with 413 by itself.
const maxReview = 7 << 20

// ErrReviewVersion is wrapped when a body is not an AdmissionReview of a
// version this webhook speaks.
var ErrReviewVersion = errors.New("unsupported AdmissionReview")

// reviewGuard checks the envelope before controller-runtime decodes the
// body: it decodes whatever apiVersion the body names into the v1 type and
// would mutate, say, an admission.k8s.io/v2 review as if it were v1.
type reviewGuard struct {
	next    http.Handler
	metrics *Metrics
	log     logr.Logger
}

func (g *reviewGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		g.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
	if err == nil && len(body) <= maxReview {
		err = checkEnvelope(body)
		if errors.Is(err, ErrReviewVersion) {
			g.metrics.observe("", OutcomeError, "invalid-review", time.Since(start))
			g.log.Info("admission refused", "reason", err.Error())
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	// Anything else (unreadable, oversized, not JSON) is answered by the
	// webhook with its own clear error; it reads the bytes already taken.
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	g.next.ServeHTTP(w, r)
}

// checkEnvelope reads only the top-level apiVersion and kind. A body that
// is not a JSON object returns a plain error, left to the decoder to report.
func checkEnvelope(body []byte) error {
	var env struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		// Request is skipped, not stored: json.RawMessage would copy it.
		Request struct{} `json:"request"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	switch env.APIVersion {
	case admissionv1.SchemeGroupVersion.String(), admissionv1beta1.SchemeGroupVersion.String():
	default:
		return fmt.Errorf("%w: apiVersion %q; this webhook speaks %s and %s", ErrReviewVersion, env.APIVersion,
			admissionv1.SchemeGroupVersion, admissionv1beta1.SchemeGroupVersion)
	}
	if env.Kind != "AdmissionReview" {
		return fmt.Errorf("%w: kind %q, want AdmissionReview", ErrReviewVersion, env.Kind)
	}
	return nil
}

// writeError answers as controller-runtime does for a body it cannot
// decode: a v1 AdmissionReview whose status carries the code and message.
func writeError(w http.ResponseWriter, code int32, err error) {
	resp := admission.Errored(code, err)
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review) // a failed write leaves nothing to tell
}
