package template

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	gotemplate "text/template"
	"time"
)

// Bounds on one execution of a template. A template is code its pod's
// author wrote: these keep a mistaken (or hostile) one from stalling the
// agent or filling its memory, and say which bound it hit.
const (
	// MaxOutput bounds a rendered file: the secrets volume is small and in
	// memory, and nothing sensible is bigger.
	MaxOutput = 4 << 20
	// MaxIterations bounds the elements all `loop` calls of one execution
	// produce together, so nested loops are bounded by the product too.
	MaxIterations = 100_000
)

// RenderTimeout bounds one execution; a variable so that tests can shorten it.
var RenderTimeout = 5 * time.Second

// ErrLimit is wrapped when an execution exceeds one of the bounds above.
var ErrLimit = errors.New("template exceeds a render limit")

// loop replaces consul-template's `loop` (an unbounded channel fed by a
// goroutine that leaks when the range ends early): the same arguments,
// `loop stop` or `loop start stop`, but a slice charged to the execution's
// iteration budget.
func (r *recorder) loop(args ...any) ([]int64, error) {
	var start, stop int64
	var err error
	switch len(args) {
	case 1:
		stop, err = loopBound(args[0])
	case 2:
		if start, err = loopBound(args[0]); err == nil {
			stop, err = loopBound(args[1])
		}
	default:
		return nil, failf("loop", "wants 1 or 2 arguments, got %d", len(args))
	}
	if err != nil {
		return nil, err
	}
	n := max(stop-start, 0)
	if err := r.chargeIterations("loop", n); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

// chargeIterations charges n iterations of fn (`loop`, or `range` over an
// integer) to the execution's MaxIterations budget, which they share.
func (r *recorder) chargeIterations(fn string, n int64) error {
	if n > MaxIterations-r.iterations {
		// The count is not quoted: it may be computed from a secret.
		r.limit = &funcError{fn: fn, reason: fmt.Sprintf("the loops of one render would run more than %d iterations", MaxIterations), cause: ErrLimit}
		return r.limit
	}
	r.iterations += n
	return nil
}

func loopBound(v any) (int64, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(min(rv.Uint(), 1<<62)), nil
	case reflect.String:
		n, err := strconv.ParseInt(rv.String(), 10, 64)
		if err != nil {
			return 0, failf("loop", "an argument is not an integer")
		}
		return n, nil
	}
	return 0, failf("loop", "bad argument type %T", v)
}

// boundedSprig replaces sprig's functions whose size argument alone can
// ask for more memory than the agent has: sprig_indent and sprig_nindent
// put their count of spaces before every line, empty ones too. The size of
// the result is checked before sprig builds it.
var boundedSprig = map[string]any{
	"indent":  boundedIndent("sprig_indent", 0, func(n int, s string) string { return sprigFuncs()["indent"].(func(int, string) string)(n, s) }),
	"nindent": boundedIndent("sprig_nindent", 1, func(n int, s string) string { return sprigFuncs()["nindent"].(func(int, string) string)(n, s) }),
	// The functions whose result can multiply their arguments (grow.go).
	"replace":                func(from, to, s string) (string, error) { return boundedReplace("sprig_replace", from, to, s) },
	"regexReplaceAll":        regexReplacer("sprig_regexReplaceAll", true),
	"regexReplaceAllLiteral": regexReplacer("sprig_regexReplaceAllLiteral", false),
	"wrapWith":               boundedWrapWith,
	"join":                   boundedSprigJoin,
	"cat":                    boundedCat,
}

func boundedIndent(name string, extra int, indent func(int, string) string) func(int, string) (string, error) {
	return func(n int, s string) (string, error) {
		if err := checkIndent(name, n, strings.Count(s, "\n")+1, len(s)+extra); err != nil {
			return "", err
		}
		return indent(n, s), nil
	}
}

// checkIndent refuses n spaces before each of lines lines of a text
// of size bytes when the result would exceed MaxOutput, before it is
// built. The count is not quoted: it may be computed from a secret.
func checkIndent(name string, n, lines, size int) error {
	switch {
	case n < 0:
		return failf(name, "indent value must be a positive integer")
	case n > 0 && lines > 0 && n > (MaxOutput-size)/lines:
		return tooLarge(name, "the indented text")
	}
	return nil
}

// tooLarge is the error of a function whose result would exceed MaxOutput.
func tooLarge(name, what string) error {
	return &funcError{fn: name, reason: fmt.Sprintf("%s would exceed the output limit of %d bytes", what, MaxOutput), cause: ErrLimit}
}

// boundedBuffer holds a render's output (or executeTemplate's) and
// refuses to grow past MaxOutput, so that the limit holds while the
// template runs, not only once it has written everything.
type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if len(p) > MaxOutput-b.Len() {
		return 0, tooLarge("output", "the rendered text")
	}
	return b.Buffer.Write(p)
}

// boundedPrint are text/template's print, printf and println (the same
// fmt functions, so the same text) with each result bounded by MaxOutput:
// a value doubled in a loop (`$s = print $s $s`) stops at the limit
// instead of taking the agent's memory. print and println add up their
// string arguments before formatting; printf's result is checked once
// formatted (its verbs may shorten its arguments).
var boundedPrint = map[string]any{
	"print":   func(args ...any) (string, error) { return boundedFormat("print", args, fmt.Sprint) },
	"println": func(args ...any) (string, error) { return boundedFormat("println", args, fmt.Sprintln) },
	"printf": func(format string, args ...any) (string, error) {
		if err := checkWidths(format, args); err != nil {
			return "", err
		}
		return checkSize("printf", fmt.Sprintf(format, args...))
	},
}

func boundedFormat(name string, args []any, format func(...any) string) (string, error) {
	size := 0
	for _, a := range args {
		if s, ok := a.(string); ok {
			size += len(s)
		}
	}
	if size > MaxOutput {
		return "", tooLarge(name, "the result")
	}
	return checkSize(name, format(args...))
}

func checkSize(name, s string) (string, error) {
	if len(s) > MaxOutput {
		return "", tooLarge(name, "the result")
	}
	return s, nil
}

// escapers are text/template's html, js and urlquery builtins, the same
// functions, bound by name so that their arguments are measured.
var escapers = map[string]any{
	"html":     gotemplate.HTMLEscaper,
	"js":       gotemplate.JSEscaper,
	"urlquery": gotemplate.URLQueryEscaper,
}

// checkWidths refuses a printf width or precision larger than MaxOutput,
// written in the format or given by a `*` argument: fmt pads in memory
// before printf's result can be checked, so `%1000000000d` would take a
// gigabyte first.
func checkWidths(format string, args []any) error {
	star := false
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[]", format[i]) >= 0; i++ {
			if format[i] == '*' {
				star = true
			}
			if n := digitsAt(format, i); n > MaxOutput {
				return tooLarge("printf", "a width or precision")
			}
		}
	}
	if star {
		for _, a := range args {
			if n, err := loopBound(a); err == nil && (n > MaxOutput || n < -MaxOutput) {
				return tooLarge("printf", "a width or precision")
			}
		}
	}
	return nil
}

// digitsAt is the number written at s[i:], up to the first non-digit,
// saturated above MaxOutput; 0 when s[i] is not a digit.
func digitsAt(s string, i int) int {
	n := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = min(n*10+int(s[i]-'0'), MaxOutput+1)
	}
	return n
}
