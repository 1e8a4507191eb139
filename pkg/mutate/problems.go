package mutate

// The problems found in one pod, kept within a fixed size whatever the pod
// holds: a pod with thousands of bad annotations costs its own size to
// parse, and its refusal stays a few kilobytes.

import (
	"fmt"
	"strings"
	"unicode/utf8"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxListedErrors is how many problems a refusal lists; it also says how
// many there are in all.
const MaxListedErrors = 10

// MaxEcho is the most bytes of a field path, value or reason that an error
// repeats. The longest valid annotation key (317 bytes) fits whole.
const MaxEcho = 400

// MaxAnnotationBytes is the API server's limit on a pod's annotations (keys
// and values together). It refuses larger pods after admission anyway; the
// injector refuses them before parsing anything.
const MaxAnnotationBytes = apivalidation.TotalAnnotationSizeLimitB

// problems collects field errors: the first MaxListedErrors, each bounded,
// and the count of all.
type problems struct {
	list  field.ErrorList
	total int
}

func (p *problems) add(e *field.Error) {
	p.total++
	if len(p.list) < MaxListedErrors {
		p.list = append(p.list, bounded(e))
	}
}

func (p *problems) addAll(errs field.ErrorList) {
	for _, e := range errs {
		p.add(e)
	}
}

// full reports whether a new error would only be counted, so callers can
// skip building it.
func (p *problems) full() bool { return len(p.list) >= MaxListedErrors }

// count records a problem without building its error.
func (p *problems) count() { p.total++ }

func (p *problems) err() error {
	if p.total == 0 {
		return nil
	}
	return &InvalidError{Errs: p.list, Total: p.total}
}

// invalid is an InvalidError holding errs, capped.
func invalid(errs ...*field.Error) *InvalidError {
	var p problems
	for _, e := range errs {
		p.add(e)
	}
	return &InvalidError{Errs: p.list, Total: p.total}
}

// bounded is a copy of e whose path, value and reason are at most MaxEcho
// bytes each.
func bounded(e *field.Error) *field.Error {
	c := *e
	c.Field = Truncate(c.Field)
	c.Detail = Truncate(c.Detail)
	switch v := c.BadValue.(type) {
	case nil, bool, int, int32, int64, field.OmitValueType:
	case string:
		c.BadValue = Truncate(v)
	default:
		c.BadValue = Truncate(fmt.Sprint(v))
	}
	return &c
}

// Truncate shortens s to MaxEcho bytes (on a character boundary) and says
// how long it was.
func Truncate(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	n := MaxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

// Summary is the text of a refusal: the problems listed, and how many
// there are when not all of them are.
func Summary(errs field.ErrorList, total int) string {
	var b strings.Builder
	if total > len(errs) {
		fmt.Fprintf(&b, "%d problems, the first %d: ", total, len(errs))
	}
	if len(errs) != 1 {
		b.WriteByte('[')
	}
	for i, e := range errs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Error())
	}
	if len(errs) != 1 {
		b.WriteByte(']')
	}
	return b.String()
}

// annotationsTooLarge refuses a pod whose annotations the API server would
// refuse, before anything is sorted or parsed.
func annotationsTooLarge(annotations map[string]string) *field.Error {
	total := 0
	for k, v := range annotations {
		total += len(k) + len(v)
	}
	if total <= MaxAnnotationBytes {
		return nil
	}
	return field.TooLong(annotationsPath, fmt.Sprintf("<%d bytes>", total), MaxAnnotationBytes)
}
