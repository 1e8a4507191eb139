package injector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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

var podGVK = corev1.SchemeGroupVersion.WithKind("Pod")

// NewWebhook builds the admission webhook for pods: the typed defaulter
// wrapped by instrumentation (metrics, a per-request logger, kind checks),
// behind a guard that refuses reviews of an unknown apiVersion or kind.
func NewWebhook(opts mutate.Options, m *Metrics, log logr.Logger) http.Handler {
	return &reviewGuard{next: newAdmissionWebhook(opts, m, log), metrics: m, log: log}
}

func newAdmissionWebhook(opts mutate.Options, m *Metrics, log logr.Logger) *admission.Webhook {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme) // a fixed, known-good scheme cannot fail
	inner := admission.WithDefaulter[*corev1.Pod](scheme, &defaulter{opts: opts})
	wh := &admission.Webhook{Handler: &instrumented{inner: inner.Handler, metrics: m, log: log}}
	// The instrumented handler builds the request logger itself; this one
	// only serves framework messages, without duplicating fields.
	wh.LogConstructor = func(logr.Logger, *admission.Request) logr.Logger { return log }
	return wh
}

// record carries what the defaulter learned back to the instrumentation.
type record struct {
	pod     string
	outcome mutate.Outcome
}

type recordKey struct{}

// defaulter adapts mutate.Mutate to controller-runtime's typed Defaulter.
type defaulter struct{ opts mutate.Options }

func (d *defaulter) Default(ctx context.Context, pod *corev1.Pod) error {
	rec, _ := ctx.Value(recordKey{}).(*record)
	if rec == nil {
		rec = &record{}
	}
	rec.pod = podName(pod)
	out, err := mutate.Mutate(pod, d.opts)
	rec.outcome = out
	// The typed Defaulter cannot return warnings; Handle adds them to the
	// response.
	var inv *mutate.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return apierrors.NewInvalid(podGVK.GroupKind(), rec.pod, inv.Errs)
	default:
		return apierrors.NewInternalError(err)
	}
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

type instrumented struct {
	inner   admission.Handler
	metrics *Metrics
	log     logr.Logger
}

func (h *instrumented) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	rec := &record{pod: req.Name}
	resp := h.handle(context.WithValue(ctx, recordKey{}, rec), req)
	resp.Warnings = append(resp.Warnings, rec.outcome.Warnings...)
	outcome := classify(resp, rec)
	reason := string(rec.outcome.Reason)
	if reason == "" {
		reason = outcome
	}
	h.metrics.observe(req.Namespace, outcome, reason, time.Since(start))
	log := h.log.WithValues("namespace", req.Namespace, "pod", rec.pod, "uid", req.UID, "operation", req.Operation)
	switch outcome {
	case OutcomeError:
		log.Error(errors.New(resultMessage(resp)), "admission failed")
	case OutcomeDenied:
		// The message names annotations and reasons; values echoed there are
		// annotation values, never rendered secrets.
		log.Info("admission denied", "reason", reason, "message", resultMessage(resp))
	default:
		log.V(1).Info("admission handled", "outcome", outcome, "reason", reason, "why", rec.outcome.Reason.Text())
	}
	return resp
}

func (h *instrumented) handle(ctx context.Context, req admission.Request) admission.Response {
	if req.UID == "" {
		// Every review an API server sends has a uid, which the answer
		// must echo; without one (no request at all) there is nothing to
		// answer to.
		return admission.Errored(http.StatusBadRequest, errors.New("request.uid is empty: the AdmissionReview carries no request"))
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete, admissionv1.Connect:
		// They carry no pod to mutate.
		return admission.Allowed("nothing to mutate for " + string(req.Operation))
	default:
		return admission.Errored(http.StatusBadRequest,
			fmt.Errorf("request.operation %q is not an admission operation (CREATE, UPDATE, DELETE, CONNECT)", req.Operation))
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	if gvk != podGVK {
		return admission.Errored(http.StatusBadRequest,
			fmt.Errorf("this webhook mutates v1 Pods; the request is for %s", gvk.String()))
	}
	return h.inner.Handle(ctx, req)
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
