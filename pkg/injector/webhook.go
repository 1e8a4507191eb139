package injector

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// Path is where the webhook serves pod mutations.
const Path = "/mutate-v1-pod"

// Outcome labels for metrics and logs.
const (
	OutcomeInjected = "injected"
	OutcomeSkipped  = "skipped"
	OutcomeDenied   = "denied"
	OutcomeError    = "error"
)

// reasonInvalidReview labels refusals of the HTTP request or envelope.
const reasonInvalidReview = "invalid-review"

var podGVK = corev1.SchemeGroupVersion.WithKind("Pod")

// podWebhook answers pod AdmissionReviews. It decodes the body once into the
// typed review and the typed pod, mutates the pod, and lets
// controller-runtime compute the JSON patch (see podPatch). It is an
// http.Handler of its own, not controller-runtime's admission.Webhook
// wrapping a Defaulter, because that path parses each body five times
// (envelope, review, pod, and both documents of the patch diff) and
// re-marshals the whole pod: most of an admission's CPU.
type podWebhook struct {
	opts    mutate.Options
	metrics *Metrics
	log     logr.Logger
	// recoverPanic answers a panic with a 500 review instead of dropping
	// the connection; tests and the fuzzer turn it off to see the panic.
	recoverPanic bool
}

// NewWebhook builds the admission webhook for pods.
func NewWebhook(opts mutate.Options, m *Metrics, log logr.Logger) http.Handler {
	return &podWebhook{opts: opts, metrics: m, log: log, recoverPanic: true}
}

func (h *podWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	review, err := readReview(r)
	if err != nil {
		var re *reviewError
		code := int32(http.StatusBadRequest)
		if errors.As(err, &re) {
			code = re.code
		}
		h.metrics.observe("", OutcomeError, reasonInvalidReview, time.Since(start))
		h.log.Info("admission refused", "reason", reasonInvalidReview, "message", err.Error())
		h.write(w, schema.GroupVersionKind{}, admission.Errored(code, err))
		return
	}
	req := admission.Request{AdmissionRequest: review.Request.AdmissionRequest}
	rec := &record{pod: req.Name}
	resp := h.admit(req, review.Request, rec)
	resp.Warnings = append(resp.Warnings, rec.outcome.Warnings...)
	h.report(req, rec, resp, time.Since(start))
	if err := resp.Complete(req); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, err)
		resp.UID = req.UID
	}
	h.write(w, review.TypeMeta.GroupVersionKind(), resp)
}

func (h *podWebhook) write(w http.ResponseWriter, gvk schema.GroupVersionKind, resp admission.Response) {
	if err := writeReview(w, gvk, &resp.AdmissionResponse); err != nil {
		// The connection is gone or the answer cannot be encoded; the API
		// server applies the webhook's failurePolicy.
		h.log.Error(err, "writing the admission answer")
	}
}

// record is what one admission learned, for metrics and logs.
type record struct {
	pod     string
	outcome mutate.Outcome
}

// admit checks the request, mutates the pod, and answers.
func (h *podWebhook) admit(req admission.Request, object *podRequest, rec *record) (resp admission.Response) {
	if h.recoverPanic {
		defer func() {
			if p := recover(); p != nil {
				h.log.Error(fmt.Errorf("panic: %v", p), "admission panicked", "stack", string(debug.Stack()))
				resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic while mutating the pod: %v", p))
			}
		}()
	}
	if resp, done := checkRequest(req); done {
		return resp
	}
	if object.podErr != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("request.object is not a pod: %w", object.podErr))
	}
	pod := object.Pod
	if pod == nil {
		return admission.Errored(http.StatusBadRequest, errors.New("request.object is empty: there is no pod to mutate"))
	}
	rec.pod = podName(pod)
	before := pod.DeepCopy()
	out, err := mutate.Mutate(pod, h.opts)
	rec.outcome = out
	if err != nil {
		return refusal(rec.pod, err)
	}
	return podPatch(before, pod)
}

// checkRequest answers what needs no pod: a missing uid, operations that
// carry no pod, and kinds other than v1 Pod. done is false when the pod
// is to be mutated.
func checkRequest(req admission.Request) (resp admission.Response, done bool) {
	if req.UID == "" {
		// Every review an API server sends has a uid, which the answer
		// must echo; without one (no request at all) there is nothing to
		// answer to.
		return admission.Errored(http.StatusBadRequest, errors.New("request.uid is empty: the AdmissionReview carries no request")), true
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete, admissionv1.Connect:
		return admission.Allowed("nothing to mutate for " + string(req.Operation)), true
	default:
		return admission.Errored(http.StatusBadRequest,
			fmt.Errorf("request.operation %q is not an admission operation (CREATE, UPDATE, DELETE, CONNECT)", req.Operation)), true
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	if gvk != podGVK {
		return admission.Errored(http.StatusBadRequest,
			fmt.Errorf("this webhook mutates v1 Pods; the request is for %s", gvk.String())), true
	}
	return admission.Response{}, false
}

// refusal turns a mutation error into the answer: 422 naming the
// annotations for an invalid pod, 500 for anything else.
func refusal(pod string, err error) admission.Response {
	var inv *mutate.InvalidError
	var status metav1.Status
	if errors.As(err, &inv) {
		status = apierrors.NewInvalid(podGVK.GroupKind(), pod, inv.Errs).Status()
	} else {
		status = apierrors.NewInternalError(err).Status()
	}
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// podName is the name, or generateName followed by "*" for pods whose name
// the API server has yet to choose.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	if pod.GenerateName != "" {
		return pod.GenerateName + "*"
	}
	return ""
}

// report counts the admission and logs refusals and errors.
func (h *podWebhook) report(req admission.Request, rec *record, resp admission.Response, took time.Duration) {
	outcome := classify(resp, rec)
	reason := string(rec.outcome.Reason)
	if reason == "" {
		reason = outcome
	}
	h.metrics.observe(req.Namespace, outcome, reason, took)
	switch outcome {
	case OutcomeError:
		h.requestLog(req, rec).Error(errors.New(resultMessage(resp)), "admission failed")
	case OutcomeDenied:
		// The message names annotations and reasons; values echoed there are
		// annotation values, never rendered secrets.
		h.requestLog(req, rec).Info("admission denied", "reason", reason, "message", resultMessage(resp))
	default:
		if log := h.log.V(1); log.Enabled() {
			h.requestLog(req, rec).V(1).Info("admission handled", "outcome", outcome, "reason", reason, "why", rec.outcome.Reason.Text())
		}
	}
}

func (h *podWebhook) requestLog(req admission.Request, rec *record) logr.Logger {
	return h.log.WithValues("namespace", req.Namespace, "pod", rec.pod, "uid", req.UID, "operation", req.Operation)
}

func classify(resp admission.Response, rec *record) string {
	switch {
	case resp.Allowed && rec.outcome.Injected && len(resp.Patches) > 0:
		return OutcomeInjected
	case resp.Allowed:
		return OutcomeSkipped
	case resp.Result != nil && resp.Result.Code >= 500:
		return OutcomeError
	case rec.outcome.Reason == mutate.ReasonInvalid:
		return OutcomeDenied
	default:
		return OutcomeError
	}
}

func resultMessage(resp admission.Response) string {
	if resp.Result == nil {
		return ""
	}
	return resp.Result.Message
}
