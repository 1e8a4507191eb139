package mutate

// Reason is why the injector did or did not inject, as a stable code for
// metric labels and logs, with readable text for people.
type Reason string

const (
	ReasonInjected        Reason = "injected"
	ReasonNotAnnotated    Reason = "not_annotated"
	ReasonDisabled        Reason = "disabled"
	ReasonAlreadyInjected Reason = "already_injected"
	ReasonInvalid         Reason = "invalid_annotations"
)

var reasonText = map[Reason]string{
	ReasonInjected:        "the agent was injected",
	ReasonNotAnnotated:    "the pod has no " + AnnotationInject + " annotation",
	ReasonDisabled:        "the pod's " + AnnotationInject + " annotation is false",
	ReasonAlreadyInjected: "the pod was injected before; only new containers got the secrets mount",
	ReasonInvalid:         "the pod's " + Prefix + " annotations are invalid",
}

// Text is the readable explanation of a reason.
func (r Reason) Text() string {
	if t, ok := reasonText[r]; ok {
		return t
	}
	return string(r)
}
