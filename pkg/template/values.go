package template

import (
	"fmt"
	"reflect"
	gotemplate "text/template"
	"text/template/parse"
)

// Bounds on the values a template builds and walks. sprig's dict, set and
// merge, mergeMap and scratch can make a map that holds itself, or a
// value that is small in memory but enormous unfolded (a map holding
// the previous one twice, 60 times over). fmt, the encoders, deepCopy and
// DeepEqual walk such a value until the stack overflows, which kills the
// agent with a Go fatal error that no recover catches, or until memory
// runs out. So every value is measured before anything walks it: every
// argument of every function that takes one, every value an action
// prints, every value a range walks. A cycle shows as a value deeper
// than MaxDepth.
const (
	// MaxDepth bounds the nesting of maps, lists and structs in one value.
	MaxDepth = 100
	// MaxValueElems bounds the elements (map entries, list items,
	// scalars) of the values one function call, print or range is given,
	// counted as if unfolded: a map held twice counts twice.
	MaxValueElems = 100_000
	// MaxValueBytes bounds the text (strings) in the values of one call,
	// print or range, counted as if unfolded: what fmt or an encoder would
	// hold in memory. Larger than MaxOutput, so that a function can take
	// parts that it shortens (len, sha256Hex).
	MaxValueBytes = 4 * MaxOutput
	// MaxWalk bounds the elements measured in one execution, so that a
	// loop calling functions on large values stops with a named error.
	MaxWalk = 10_000_000
)

// measure is the size of the values of one call, print or range.
type measure struct {
	elems, bytes int
	// left is what the execution's MaxWalk budget has left.
	left int
}

// value measures v at nesting depth. Its errors name the bound v broke,
// never v.
func (m *measure) value(fn string, v reflect.Value, depth int) error {
	m.elems++
	switch {
	case m.elems > m.left:
		return &funcError{fn: fn, reason: fmt.Sprintf("the values of one render add up to more than %d elements", MaxWalk), cause: ErrLimit}
	case m.elems > MaxValueElems:
		return &funcError{fn: fn, reason: fmt.Sprintf("a value has more than %d elements (counting what it holds more than once each time)", MaxValueElems), cause: ErrLimit}
	case depth > MaxDepth:
		return &funcError{fn: fn, reason: fmt.Sprintf("a value is nested more than %d levels deep, or holds itself", MaxDepth), cause: ErrLimit}
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		// Not a level: map[string]any holds every value in an interface.
		return m.value(fn, v.Elem(), depth)
	case reflect.String:
		if m.bytes += v.Len(); m.bytes > MaxValueBytes {
			return m.tooMuchText(fn)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := m.value(fn, it.Key(), depth+1); err != nil {
				return err
			}
			if err := m.value(fn, it.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			if m.bytes += v.Len(); m.bytes > MaxValueBytes { // []byte prints as text
				return m.tooMuchText(fn)
			}
			return nil
		}
		for i := range v.Len() {
			if err := m.value(fn, v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if err := m.value(fn, v.Field(i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *measure) tooMuchText(fn string) error {
	return &funcError{fn: fn, reason: fmt.Sprintf("a value holds more than %d bytes of text (counting what it holds more than once each time)", MaxValueBytes), cause: ErrLimit}
}

// measureValues measures vs against the bounds, charging what it walked
// to the execution's budget. A value over a bound stops the execution:
// the error is kept in r.limit so that it is reported even while data is
// still missing.
func (r *recorder) measureValues(fn string, vs ...reflect.Value) error {
	m := measure{left: MaxWalk - r.walked}
	var err error
	for _, v := range vs {
		if err = m.value(fn, v, 0); err != nil {
			break
		}
	}
	r.walked += m.elems
	if err != nil && r.limit == nil {
		r.limit = err
	}
	return err
}

var errorType = reflect.TypeFor[error]()

// guarded wraps a template function so that its arguments are measured
// (recorder.measureValues) before it runs. Only arguments that can hold
// other values are measured; a function without such parameters is
// returned as it is. The wrapper returns an error besides the function's
// result, which text/template reports with the template position.
func (t *Template) guarded(name string, f any) any {
	fv := reflect.ValueOf(f)
	ft := fv.Type()
	if ft.Kind() != reflect.Func || !takesValues(ft) || ft.NumOut() == 0 || ft.NumOut() > 2 {
		return f
	}
	ins := make([]reflect.Type, ft.NumIn())
	for i := range ins {
		ins[i] = ft.In(i)
	}
	outs := []reflect.Type{ft.Out(0), errorType}
	if ft.NumOut() == 2 && ft.Out(1) != errorType {
		return f
	}
	wrapped := reflect.MakeFunc(reflect.FuncOf(ins, outs, ft.IsVariadic()), func(args []reflect.Value) []reflect.Value {
		if err := t.cur.measureValues(name, args...); err != nil {
			return []reflect.Value{reflect.Zero(ft.Out(0)), reflect.ValueOf(&err).Elem()}
		}
		var res []reflect.Value
		if ft.IsVariadic() {
			res = fv.CallSlice(args)
		} else {
			res = fv.Call(args)
		}
		if len(res) == 1 {
			res = append(res, reflect.Zero(errorType))
		}
		return res
	})
	return wrapped.Interface()
}

// takesValues reports whether a function type has a parameter that can
// hold other values (an interface, map, list, pointer or struct).
func takesValues(ft reflect.Type) bool {
	for i := range ft.NumIn() {
		p := ft.In(i)
		if ft.IsVariadic() && i == ft.NumIn()-1 {
			p = p.Elem()
		}
		switch p.Kind() {
		case reflect.Interface, reflect.Map, reflect.Slice, reflect.Array, reflect.Pointer, reflect.Struct:
			return true
		}
	}
	return false
}

// Names of the functions the agent adds to every action that prints and
// every range (guardTree). They are not in the sandbox's list, so a
// template cannot call them itself.
const (
	printGuard = "_measurePrinted"
	rangeGuard = "_measureRanged"
)

// printed measures a value an action is about to print with fmt. It takes
// and returns a reflect.Value, which text/template passes through
// unchanged, so the printed text is what it would be without it.
func (t *Template) printed(v reflect.Value) (reflect.Value, error) {
	return v, t.cur.measureValues("printing a value", v)
}

// ranged measures a value a range is about to walk: an integer is charged
// to the loop budget (MaxIterations, shared with `loop`), a list or map is
// measured; channels and iterator functions, which no allowed function
// returns, are refused.
func (t *Template) ranged(v reflect.Value) (reflect.Value, error) {
	r := t.cur
	e := v
	for e.Kind() == reflect.Interface || e.Kind() == reflect.Pointer {
		if e.IsNil() {
			return v, nil
		}
		e = e.Elem()
	}
	var n int64
	switch e.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = max(e.Int(), 0)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n = int64(min(e.Uint(), 1<<62))
	case reflect.Chan, reflect.Func:
		err := &funcError{fn: "range", reason: "ranging over a channel or a function is not allowed", cause: ErrLimit}
		r.limit = err
		return v, err
	default:
		return v, r.measureValues("range", v)
	}
	return v, r.chargeIterations("range", n)
}

// guardFuncs are the functions guardTree's commands call.
func (t *Template) guardFuncs() gotemplate.FuncMap {
	return gotemplate.FuncMap{printGuard: t.printed, rangeGuard: t.ranged}
}

// guardTree appends printGuard to every action that prints and rangeGuard
// to every range's pipeline, and measures what eq and ne compare, in every
// template of tmpl, so that no value reaches fmt or a range unmeasured.
func guardTree(tmpl *gotemplate.Template) {
	for _, tt := range tmpl.Templates() {
		if tt.Tree == nil {
			continue
		}
		walkNodes(tt.Tree.Root, func(n parse.Node) {
			switch n := n.(type) {
			case *parse.ActionNode:
				if len(n.Pipe.Decl) == 0 {
					appendCommand(tt.Tree, n.Pipe, printGuard)
				}
			case *parse.RangeNode:
				appendCommand(tt.Tree, n.Pipe, rangeGuard)
			case *parse.PipeNode:
				if n != nil {
					guardComparisons(tt.Tree, n)
				}
			}
		})
	}
}

// comparisons are text/template's builtins whose error, given two maps
// or lists, prints them with fmt ("non-comparable type ..."): a map
// holding itself would overflow the stack there.
var comparisons = setOf("eq", "ne")

// guardComparisons measures the operands of eq and ne in pipe: each
// argument that is not a constant becomes `(arg | printGuard)`, and a
// value piped in passes printGuard first.
func guardComparisons(tr *parse.Tree, pipe *parse.PipeNode) {
	// The commands are copied once with the guards put in, not inserted
	// one by one: a 64 KiB pipeline of `eq`s cost quadratic time.
	cmds := make([]*parse.CommandNode, 0, len(pipe.Cmds))
	for i, c := range pipe.Cmds {
		if id, ok := argAt(c.Args, 0).(*parse.IdentifierNode); !ok || !comparisons[id.Ident] {
			cmds = append(cmds, c)
			continue
		}
		for j, a := range c.Args[1:] {
			switch a.(type) {
			case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode, *parse.PipeNode, *parse.DotNode, *parse.IdentifierNode:
				inner := &parse.PipeNode{NodeType: parse.NodePipe, Pos: a.Position(), Line: pipe.Line,
					Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: a.Position(), Args: []parse.Node{a}}}}
				appendCommand(tr, inner, printGuard)
				c.Args[j+1] = inner
			}
		}
		if i > 0 {
			id := parse.NewIdentifier(printGuard).SetTree(tr).SetPos(c.Pos)
			cmds = append(cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: c.Pos, Args: []parse.Node{id}})
		}
		cmds = append(cmds, c)
	}
	pipe.Cmds = cmds
}

// appendCommand adds `| name` to the end of pipe, at pipe's position so
// that an error names where the value is printed or ranged.
func appendCommand(tr *parse.Tree, pipe *parse.PipeNode, name string) {
	id := parse.NewIdentifier(name).SetTree(tr).SetPos(pipe.Pos)
	pipe.Cmds = append(pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pipe.Pos, Args: []parse.Node{id}})
}
