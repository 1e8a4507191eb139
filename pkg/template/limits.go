package template

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
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
		return nil, fmt.Errorf("loop: wants 1 or 2 arguments, got %d", len(args))
	}
	if err != nil {
		return nil, err
	}
	n := max(stop-start, 0)
	if n > MaxIterations-r.iterations {
		r.limit = fmt.Errorf("loop of %d iterations would exceed %d iterations in one render", n, MaxIterations)
		return nil, r.limit
	}
	r.iterations += n
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
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
			return 0, fmt.Errorf("loop: %q is not an integer", rv.String())
		}
		return n, nil
	}
	return 0, fmt.Errorf("loop: bad argument type %T", v)
}
