package template

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	gotemplate "text/template"
	"time"
)

// Op is the kind of Vault request a template makes.
type Op string

const (
	// OpRead is `secret "path"`: a GET.
	OpRead Op = "read"
	// OpWrite is `secret "path" "k=v" ...`: a PUT with data (pki issue,
	// transit, database static creds rotation).
	OpWrite Op = "write"
	// OpList is `secrets "path"`: a LIST.
	OpList Op = "list"
)

// Request is one Vault call a template needs. Its Key identifies it in the
// agent's cache.
type Request struct {
	Op   Op
	Path string
	Data map[string]string
	// Call is where the template made the request (zero when unknown);
	// not part of its identity. Errors print it instead of Path unless
	// Call.Literal.
	Call Call `json:",omitzero"`
}

// Key is a stable identity for the request.
func (r Request) Key() string {
	if len(r.Data) == 0 {
		return string(r.Op) + " " + r.Path
	}
	keys := make([]string, 0, len(r.Data))
	for k := range r.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(string(r.Op) + " " + r.Path)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + r.Data[k])
	}
	return b.String()
}

// Lookup returns what Vault answered to a request, if the agent has it:
// a *Secret for reads and writes, a []string for lists.
type Lookup func(Request) (any, bool)

// Template is one parsed, sandbox-checked template.
type Template struct {
	name string
	tmpl *gotemplate.Template
	// The template is parsed once, with its functions bound; the Vault
	// functions reach the current execution through cur, and mu keeps
	// executions of one template one at a time.
	mu  sync.Mutex
	cur *recorder
	// overrun is set while an execution that exceeded RenderTimeout is
	// still running: Go cannot stop it, so the template refuses to start
	// another until it ends.
	overrun atomic.Bool
}

// New validates text against the sandbox and prepares it for rendering.
func New(name, text string) (*Template, error) {
	used, err := check(text)
	if err != nil {
		return nil, err
	}
	t := &Template{name: name}
	funcs := t.guardFuncs()
	for n := range used {
		if f := t.function(n); f != nil {
			funcs[n] = t.guarded(n, f)
		}
	}
	// consul-template names its template "" (so does `{{ template "" }}`);
	// a missing key is an error, never an empty value in a file.
	t.tmpl, err = gotemplate.New("").Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSyntax, syntaxReason(err))
	}
	// Call sites first, so that a call's source text is the template's
	// own, before guardTree adds its measuring commands.
	t.bindSites(t.tmpl)
	guardTree(t.tmpl)
	return t, nil
}

// function is the implementation of an allowed function name; nil for
// text/template's builtins. Only the functions a template calls are bound
// to it: all of them, sprig's included, would cost every template a few
// hundred map entries.
func (t *Template) function(name string) any {
	switch name {
	case "secret":
		// Only for parsing: bindSites gives every call its own function.
		return func(path string, rest ...string) (*Secret, error) { return t.cur.secret(Call{}, path, rest...) }
	case "secrets":
		return func(path string) ([]string, error) { return t.cur.secrets(Call{}, path) }
	case "loop":
		return func(args ...any) ([]int64, error) { return t.cur.loop(args...) }
	case "scratch":
		return func() *Scratch { return &t.cur.scratch }
	case "executeTemplate":
		return t.executeTemplate
	case "print", "printf", "println":
		return boundedPrint[name]
	case "html", "js", "urlquery":
		// Builtins that format their arguments with fmt: bound here so
		// that guarded measures what they are given.
		return escapers[name]
	}
	if f, ok := helpers[name]; ok {
		return f
	}
	if n, ok := strings.CutPrefix(name, "sprig_"); ok {
		if f, ok := boundedSprig[n]; ok {
			return f
		}
		return sprigFuncs()[n]
	}
	return nil
}

// executeTemplate renders the named template of this one, with data as
// its dot when given.
func (t *Template) executeTemplate(name string, data ...any) (string, error) {
	var dot any
	switch len(data) {
	case 0:
	case 1:
		dot = data[0]
	default:
		return "", failf("executeTemplate", "wrong number of arguments, expected 1 or 2, but got %d", len(data)+1)
	}
	var b boundedBuffer
	if err := t.tmpl.ExecuteTemplate(&b, name, dot); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Name is the template's name (the secret it renders).
func (t *Template) Name() string { return t.name }

// Result is one execution of a template.
type Result struct {
	Output []byte
	// Used lists every request the template made.
	Used []Request
	// Missing lists the requests Lookup could not answer; Output is not
	// usable while it is non-empty.
	Missing []Request
}

// Execute renders the template against what lookup knows. When requests are
// missing it returns them without an error: the caller fetches them and
// executes again. Execution errors are returned only once nothing is
// missing (before that they are artefacts of absent data). They give the
// position and the failing function, never its arguments (safeMessage),
// and every secret value seen is replaced by [redacted] in what remains.
func (t *Template) Execute(lookup Lookup) (*Result, error) {
	if t.overrun.Load() {
		return nil, fmt.Errorf("rendering %s: %w: an earlier render ran longer than %s and has not ended", t.name, ErrLimit, RenderTimeout)
	}
	done := make(chan executed, 1)
	go func() { done <- t.execute(lookup) }()
	timer := time.NewTimer(RenderTimeout)
	defer timer.Stop()
	select {
	case x := <-done:
		return x.res, x.err
	case <-timer.C:
		t.overrun.Store(true)
		go func() { <-done; t.overrun.Store(false) }()
		return nil, fmt.Errorf("rendering %s: %w: it ran longer than %s", t.name, ErrLimit, RenderTimeout)
	}
}

type executed struct {
	res *Result
	err error
}

func (t *Template) execute(lookup Lookup) executed {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := &recorder{lookup: lookup, seen: map[string]bool{}}
	t.cur = rec
	defer func() { t.cur = nil }()
	var out boundedBuffer
	err := t.tmpl.Execute(&out, nil)
	r := &Result{Used: rec.used, Missing: rec.missing, Output: out.Bytes()}
	if rec.limit != nil {
		// loop's bound counts even while data is missing; text/template's
		// error adds the position.
		if err == nil || !errors.Is(err, ErrLimit) {
			err = rec.limit
		}
		return executed{nil, fmt.Errorf("rendering %s: %w: %s", t.name, ErrLimit, redact(safeMessage(err), rec.values))}
	}
	if len(r.Missing) > 0 {
		return executed{res: r}
	}
	if err != nil {
		msg := redact(safeMessage(err), rec.values)
		if errors.Is(err, ErrLimit) {
			return executed{nil, fmt.Errorf("rendering %s: %w: %s", t.name, ErrLimit, msg)}
		}
		return executed{r, fmt.Errorf("rendering %s: %s", t.name, msg)}
	}
	return executed{res: r}
}

// recorder is the state one execution's Vault functions share.
type recorder struct {
	lookup  Lookup
	seen    map[string]bool
	used    []Request
	missing []Request
	values  []string
	// iterations counts what loop produced and integer ranges ran,
	// against MaxIterations.
	iterations int64
	// walked counts the elements measured, against MaxWalk.
	walked int
	// limit is the first bound the execution hit.
	limit error
	// scratch is the execution's `scratch`, empty at its start as under
	// consul-template.
	scratch Scratch
}

func (r *recorder) note(req Request) (any, bool) {
	k := req.Key()
	v, ok := r.lookup(req)
	if !r.seen[k] {
		r.seen[k] = true
		r.used = append(r.used, req)
		if !ok {
			r.missing = append(r.missing, req)
		}
	}
	if s, isSecret := v.(*Secret); ok && isSecret && s != nil {
		collectValues(s.Data, &r.values)
	}
	return v, ok
}

func collectValues(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			collectValues(x, out)
		}
	case []any:
		for _, x := range v {
			collectValues(x, out)
		}
	case string:
		if len(v) >= 4 { // short values ("true", "1") would redact ordinary words
			*out = append(*out, v)
		}
	default:
		if v != nil {
			if s := fmt.Sprint(v); len(s) >= 4 {
				*out = append(*out, s)
			}
		}
	}
}

// secret implements `secret "path"` and `secret "path" "k=v" ...`.
func (r *recorder) secret(c Call, path string, rest ...string) (*Secret, error) {
	if err := refuseTokenEndpoint("secret", path); err != nil {
		return nil, err
	}
	req := Request{Op: OpRead, Path: path, Call: c}
	if len(rest) > 0 {
		req.Op, req.Data = OpWrite, map[string]string{}
		for i, kv := range rest {
			// As consul-template: empty arguments are skipped, keys
			// and values trimmed of white space.
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				// Neither the argument nor the path is quoted: either
				// may carry a secret (the position names the call).
				return nil, failf("secret", "argument %d is not key=value", i+2)
			}
			req.Data[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	v, ok := r.note(req)
	if !ok {
		// Like consul-template: nil until fetched, so `with` skips it.
		return nil, nil
	}
	s, _ := v.(*Secret)
	return s, nil
}

// secrets implements `secrets "path"` (a LIST).
func (r *recorder) secrets(c Call, path string) ([]string, error) {
	if err := refuseTokenEndpoint("secrets", path); err != nil {
		return nil, err
	}
	v, ok := r.note(Request{Op: OpList, Path: path, Call: c})
	if !ok {
		return nil, nil
	}
	l, _ := v.([]string)
	return l, nil
}

// redact replaces the secret values seen in msg, which text/template's
// own messages may quote (safeMessage keeps them).
func redact(msg string, values []string) string {
	// Longest first, so a value containing another is replaced whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}

// refuseTokenEndpoint is the render-time check of a path a template
// computed: it refuses before the request is recorded, so the agent never
// sends it. The path is not quoted (it may be built from a secret).
func refuseTokenEndpoint(fn, path string) error {
	if err := checkTokenEndpoint(path); err != nil {
		return &funcError{fn: fn, reason: err.Error(), cause: ErrTokenEndpoint}
	}
	return nil
}
