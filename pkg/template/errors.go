package template

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	gotemplate "text/template"
)

// funcError is the error of one of this package's template functions. Its
// text names the function and the reason, never an argument's value: the
// argument may be a secret, or a value computed from one (`toUpper`,
// `base64Decode`), which redacting Vault's raw values cannot catch. The
// agent logs render errors.
type funcError struct {
	fn, reason string
	// cause is a sentinel (strconv.ErrSyntax, ErrLimit), never an error
	// whose text quotes the argument.
	cause error
}

func (e *funcError) Error() string { return e.fn + ": " + e.reason }

func (e *funcError) Unwrap() error { return e.cause }

func failf(fn, format string, args ...any) error {
	return &funcError{fn: fn, reason: fmt.Sprintf(format, args...)}
}

// withheld replaces the message of an error from code that is not this
// package's (sprig, json.Number's methods, a recovered panic): such
// messages often quote the argument.
const withheld = "failed (its message is not shown: it may quote a secret value)"

// valueQuoting are the starts of text/template's own messages that print
// the value a range, if or with was given (exec.go's "range can't iterate
// over %v", "if/with can't use %v", "can't use %v to iterate over more
// than one variable", "range over send-only channel %v"); what follows is
// cut off. The others name template fields, keys and types.
var valueQuoting = []string{"range can't iterate over ", "can't use ", "range over send-only channel "}

// safeMessage is the text of a render error that may be logged.
// text/template's ExecError carries the template position and the
// function's name, then the function's own error: that error's text is
// kept only when it is a funcError, and replaced by withheld otherwise.
// text/template's own messages (a missing map key, a wrong type) are kept
// but for the values valueQuoting prints; the caller still redacts
// Vault's raw values. A call site's function name (bindSites) reads as
// the function the template calls.
func safeMessage(err error) string {
	msg := siteName.ReplaceAllString(safeText(err), "$1")
	return guardCall.ReplaceAllString(msg, ":")
}

// guardCall is how text/template names a measuring step guardTree added
// (" at <_measurePrinted>: error calling _measurePrinted:"): a function the
// template author never wrote, so the message keeps only what it measured.
var guardCall = regexp.MustCompile(` at <(` + printGuard + `|` + rangeGuard + `)>: error calling (` + printGuard + `|` + rangeGuard + `):`)

func safeText(err error) string {
	var ee gotemplate.ExecError
	if !errors.As(err, &ee) {
		var fe *funcError
		if errors.As(err, &fe) {
			return fe.Error()
		}
		return withheld
	}
	inner := errors.Unwrap(ee.Err)
	if inner == nil {
		return cutValue(ee.Err.Error())
	}
	// text/template appends the function's error to its position and
	// the function's name ("error calling parseInt: "): cut it off.
	prefix, ok := strings.CutSuffix(ee.Err.Error(), inner.Error())
	if !ok {
		return "template: " + ee.Name + ": a function " + withheld
	}
	return prefix + safeText(inner)
}

// cutValue cuts msg after the first valueQuoting start it holds. The first
// is the earliest: one in the template text before it (the position's
// context) cuts more, never less.
func cutValue(msg string) string {
	cut := len(msg)
	for _, q := range valueQuoting {
		if i := strings.Index(msg, q); i >= 0 && i+len(q) < cut {
			cut = i + len(q)
		}
	}
	if cut == len(msg) {
		return msg
	}
	return msg[:cut] + "a value (not shown: it may be a secret)"
}
