package injector

import (
	"context"
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
	// OutcomeAbandoned counts requests whose client went away before the
	// answer was ready; they get no answer.
	OutcomeAbandoned = "abandoned"
)

// ephemeralContainers is the pod subresource through which containers are
// added to a running pod.
const ephemeralContainers = "ephemeralcontainers"

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
	// stageHook, when set (tests only), runs at each point where the
	// handler checks that its client is still there.
	stageHook func(ctx context.Context, stage string)
}

// NewWebhook builds the admission webhook for pods.
func NewWebhook(opts mutate.Options, m *Metrics, log logr.Logger) http.Handler {
	return &podWebhook{opts: opts, metrics: m, log: log, recoverPanic: true}
}

func (h *podWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
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
	rec := &record{pod: mutate.Truncate(req.Name), start: start}
	if h.gone(ctx, "decoded", req, rec) {
		return
	}
	resp := h.admit(ctx, req, review.Request, rec)
	if h.gone(ctx, "answered", req, rec) {
		return
	}
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

// gone reports whether the client has gone (the API server gave up
// after the webhook's timeout, or the connection dropped), after running
// the test hook for stage. Work for a request nobody waits for is
// abandoned between stages, each of which is linear in the request.
func (h *podWebhook) gone(ctx context.Context, stage string, req admission.Request, rec *record) bool {
	if h.stageHook != nil {
		h.stageHook(ctx, stage)
	}
	if ctx.Err() == nil {
		return false
	}
	if rec.abandoned {
		return true
	}
	rec.abandoned = true
	h.metrics.observe(req.Namespace, OutcomeAbandoned, OutcomeAbandoned, time.Since(rec.start))
	h.requestLog(req, rec).Info("admission abandoned: the client has gone", "stage", stage, "cause", context.Cause(ctx).Error())
	return true
}

// record is what one admission learned, for metrics and logs.
type record struct {
	pod       string
	start     time.Time
	outcome   mutate.Outcome
	abandoned bool
}

// admit checks the request, mutates the pod, and answers.
func (h *podWebhook) admit(ctx context.Context, req admission.Request, object *podRequest, rec *record) (resp admission.Response) {
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
	if req.SubResource == ephemeralContainers {
		// kubectl debug adds containers to a running pod this way
		// (UPDATE of pods/ephemeralcontainers): nothing to inject, but a
		// debug container must not reach the agent's volumes either.
		if err := mutate.CheckAddedContainers(pod); err != nil {
			rec.outcome.Reason = mutate.ReasonInvalid
			return refusal(rec.pod, err)
		}
		return admission.Allowed("ephemeral containers do not touch the agent's volumes")
	}
	before := pod.DeepCopy()
	out, err := mutate.Mutate(pod, h.opts)
	rec.outcome = out
	if err != nil {
		return refusal(rec.pod, err)
	}
	if h.gone(ctx, "mutated", req, rec) {
		// The diff is the costliest stage; nobody would read its answer.
		return admission.Errored(http.StatusServiceUnavailable, context.Cause(ctx))
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
			fmt.Errorf("request.operation %q is not an admission operation (CREATE, UPDATE, DELETE, CONNECT)", mutate.Truncate(string(req.Operation)))), true
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	if gvk != podGVK {
		return admission.Errored(http.StatusBadRequest,
			fmt.Errorf("this webhook mutates v1 Pods; the request is for %s", mutate.Truncate(gvk.String()))), true
	}
	return admission.Response{}, false
}

// refusal turns a mutation error into the answer: 422 naming the
// annotations or containers for an invalid pod, 500 for anything else.
// The message and causes are those of apierrors.NewInvalid, built here
// from the capped list: NewInvalid aggregates its errors with a quadratic
// join, and the count of all problems would be lost.
func refusal(pod string, err error) admission.Response {
	var inv *mutate.InvalidError
	var status metav1.Status
	if errors.As(err, &inv) {
		status = invalidStatus(pod, inv)
	} else {
		status = apierrors.NewInternalError(err).Status()
	}
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

func invalidStatus(pod string, inv *mutate.InvalidError) metav1.Status {
	causes := make([]metav1.StatusCause, 0, len(inv.Errs))
	for _, e := range inv.Errs {
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseType(e.Type), Message: e.ErrorBody(), Field: e.Field})
	}
	gk := podGVK.GroupKind()
	return metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnprocessableEntity,
		Reason:  metav1.StatusReasonInvalid,
		Message: fmt.Sprintf("%s %q is invalid: %s", gk.String(), pod, inv.Error()),
		Details: &metav1.StatusDetails{Group: gk.Group, Kind: gk.Kind, Name: pod, Causes: causes},
	}
}

// podName is the name, or generateName followed by "*" for pods whose name
// the API server has yet to choose, cut to mutate.MaxEcho: the API server
// validates names only after admission, so here one may be megabytes.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return mutate.Truncate(pod.Name)
	}
	if pod.GenerateName != "" {
		return mutate.Truncate(pod.GenerateName) + "*"
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

// requestLog names the request; every value is bounded, as anyone who can
// reach the webhook chooses them.
func (h *podWebhook) requestLog(req admission.Request, rec *record) logr.Logger {
	return h.log.WithValues("namespace", mutate.Truncate(req.Namespace), "pod", rec.pod,
		"uid", mutate.Truncate(string(req.UID)), "operation", mutate.Truncate(string(req.Operation)))
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
