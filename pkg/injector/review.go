package injector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// maxReview is the largest body read. The API server accepts request
// bodies of up to 3 MiB (--max-request-bytes) and a review carries the
// object and, for UPDATE, the old object: 2 x 3 MiB, plus 1 MiB for the
// envelope and the fields defaulting adds. Anything larger is refused
// unread (413), so no request costs more than this much work.
const maxReview = 7 << 20

// ErrReviewVersion is wrapped when a body is not an AdmissionReview of a
// version this webhook speaks.
var ErrReviewVersion = errors.New("unsupported AdmissionReview")

// errBody is wrapped by every error about the HTTP request itself: no
// body, too large, not JSON, not a review.
var errBody = errors.New("bad admission request")

// reviewError is a refused envelope and the HTTP-like code to answer with.
type reviewError struct {
	code int32
	err  error
}

func (e *reviewError) Error() string { return e.err.Error() }
func (e *reviewError) Unwrap() error { return e.err }

var reviewV1 = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

// podReview is an AdmissionReview whose object is decoded straight into a
// typed pod, in the same pass as the envelope: the patch is computed from
// the typed pod (podPatch), so the raw bytes are never needed. v1beta1
// reviews have the same JSON.
type podReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *podRequest `json:"request,omitempty"`
}

// podRequest is the v1 request with its object field, shadowed here (the
// shallower field wins), read as a pod: nil when absent or null, as for
// DELETE.
type podRequest struct {
	admissionv1.AdmissionRequest `json:",inline"`
	Pod                          *corev1.Pod `json:"object,omitempty"`
	// podErr is why the object is not a pod, for admit to answer with.
	podErr error
}

// decodeReview decodes the body in one pass. A review whose object alone
// is not a pod must still be answered with its uid, so when that pass
// fails the body is decoded again with the object left raw.
func decodeReview(body []byte) (*podReview, error) {
	var review podReview
	err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review)
	if err == nil {
		return &review, nil
	}
	var raw admissionv1.AdmissionReview
	if rawErr := kjson.UnmarshalCaseSensitivePreserveInts(body, &raw); rawErr != nil {
		return nil, rawErr
	}
	review = podReview{TypeMeta: raw.TypeMeta}
	if raw.Request != nil {
		review.Request = &podRequest{AdmissionRequest: *raw.Request, podErr: err}
	}
	return &review, nil
}

// readReview reads and decodes the body once. Field names are matched
// case-sensitively, as the API server's own decoder does.
func readReview(r *http.Request) (*podReview, error) {
	if r.ContentLength > maxReview {
		return nil, &reviewError{http.StatusRequestEntityTooLarge, fmt.Errorf("%w: the body (%d bytes) is larger than %d bytes", errBody, r.ContentLength, maxReview)}
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxReview+1)); err != nil {
			return nil, &reviewError{http.StatusBadRequest, fmt.Errorf("%w: reading the body: %w", errBody, err)}
		}
	}
	if len(body) == 0 {
		return nil, &reviewError{http.StatusBadRequest, fmt.Errorf("%w: the request body is empty", errBody)}
	}
	if len(body) > maxReview {
		return nil, &reviewError{http.StatusRequestEntityTooLarge, fmt.Errorf("%w: the body is larger than %d bytes", errBody, maxReview)}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return nil, &reviewError{http.StatusBadRequest, fmt.Errorf("%w: Content-Type %q, want application/json", errBody, mutate.Truncate(ct))}
	}
	review, err := decodeReview(body)
	if err != nil {
		return nil, &reviewError{http.StatusBadRequest, fmt.Errorf("%w: %w", errBody, err)}
	}
	if err := checkEnvelope(review.TypeMeta); err != nil {
		return nil, &reviewError{http.StatusBadRequest, err}
	}
	if review.Request == nil {
		review.Request = &podRequest{}
	}
	return review, nil
}

// checkEnvelope refuses any apiVersion but v1 and v1beta1: decoded into
// the v1 type, an admission.k8s.io/v2 review would be mutated as if it
// were v1.
func checkEnvelope(tm metav1.TypeMeta) error {
	switch tm.APIVersion {
	case admissionv1.SchemeGroupVersion.String(), admissionv1beta1.SchemeGroupVersion.String():
	default:
		return fmt.Errorf("%w: apiVersion %q; this webhook speaks %s and %s", ErrReviewVersion, mutate.Truncate(tm.APIVersion),
			admissionv1.SchemeGroupVersion, admissionv1beta1.SchemeGroupVersion)
	}
	if tm.Kind != reviewV1.Kind {
		return fmt.Errorf("%w: kind %q, want AdmissionReview", ErrReviewVersion, mutate.Truncate(tm.Kind))
	}
	return nil
}

// writeReview answers in the review's own apiVersion (v1 when the
// request's could not be read), as the API server expects.
func writeReview(w http.ResponseWriter, gvk schema.GroupVersionKind, resp *admissionv1.AdmissionResponse) error {
	if gvk.Empty() {
		gvk = reviewV1
	}
	review := admissionv1.AdmissionReview{Response: resp}
	review.SetGroupVersionKind(gvk)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(review)
}
