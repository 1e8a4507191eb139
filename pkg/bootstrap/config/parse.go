package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ErrInvalid is wrapped by every error Parse and Load return for a config
// they refuse.
var ErrInvalid = errors.New("invalid bootstrap config")

// ValidationError lists every problem found, each with the path of its key
// (such as vault.seal.shamir.threshold), so all are fixed in one round. It
// unwraps to ErrInvalid.
type ValidationError struct {
	Errs field.ErrorList
}

func (e *ValidationError) Error() string {
	if len(e.Errs) == 1 {
		return fmt.Sprintf("%v: %v", ErrInvalid, e.Errs[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d problems:", ErrInvalid, len(e.Errs))
	for _, fe := range e.Errs {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// MaxFileSize bounds a config file; a larger one is certainly a mistake.
const MaxFileSize = 1 << 20

// Load reads the config file at path and parses it.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading bootstrap config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading bootstrap config %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads one YAML document strictly, applies the defaults and
// validates. An error wraps ErrInvalid; when the YAML itself parses, it is
// also a *ValidationError listing every unknown key, value of the wrong
// type and invalid value with its path.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxFileSize)
	}
	if err := singleDocument(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := noAliases(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Strict: a key given twice in one mapping is refused.
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if tree != nil {
		if _, ok := tree.(map[string]any); !ok {
			return nil, fmt.Errorf("%w: the document must be a mapping of keys to values, not %s", ErrInvalid, kindOf(tree))
		}
	}
	// Check the shape first: unknown keys and values of the wrong type,
	// each with its path. What is wrong is dropped, so the typed decode
	// below cannot fail and Validate still reports the other problems.
	var s shapeChecker
	clean, _ := s.check(nil, tree, reflect.TypeFor[Config]())
	j, err = json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c := defaultConfig()
	typed := json.NewDecoder(bytes.NewReader(j))
	typed.DisallowUnknownFields()
	if err := typed.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	errs := append(s.errs, notUnder(c.Validate(), s.errs)...)
	if len(errs) > 0 {
		return nil, &ValidationError{Errs: errs}
	}
	return &c, nil
}

// singleDocument refuses a stream of several YAML documents: only the first
// would be read, and the others silently ignored.
// noAliases refuses YAML aliases (*name). A config has no use for them,
// and expanding nested ones (a "billion laughs") would take the bootstrap
// minutes and gigabytes before any check ran. The node tree read here
// keeps aliases unexpanded, so this costs one plain parse.
func noAliases(data []byte) error {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(data, &root); err != nil {
		return nil // the strict parse after this reports it with context
	}
	var alias *yamlv3.Node
	var walk func(n *yamlv3.Node)
	walk = func(n *yamlv3.Node) {
		if alias != nil {
			return
		}
		if n.Kind == yamlv3.AliasNode {
			alias = n
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	if alias != nil {
		return fmt.Errorf("line %d: YAML aliases (*%s) are not supported; write the value out", alias.Line, alias.Value)
	}
	return nil
}

func singleDocument(data []byte) error {
	if !bytes.Contains(data, []byte("---")) {
		return nil
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	docs := 0
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if j, err := yaml.YAMLToJSON(doc); err == nil && string(j) == "null" {
			continue // only comments or a bare "---"
		}
		if docs++; docs > 1 {
			return fmt.Errorf("the file holds several YAML documents (separated by ---); it must hold one")
		}
	}
	return nil
}

// notUnder drops the errors at or below a path that already has a shape
// error: they follow from it (a required field reported because its value
// was of the wrong type and dropped).
func notUnder(errs, shape field.ErrorList) field.ErrorList {
	var out field.ErrorList
	for _, e := range errs {
		covered := false
		for _, s := range shape {
			if e.Field == s.Field || strings.HasPrefix(e.Field, s.Field+".") || strings.HasPrefix(e.Field, s.Field+"[") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, e)
		}
	}
	return out
}

var durationType = reflect.TypeFor[Duration]()

// shapeChecker walks the decoded YAML (JSON values, numbers as json.Number)
// along the Go type it decodes into.
type shapeChecker struct {
	errs field.ErrorList
}

// check returns the value with every unknown key and mistyped value
// removed, and whether the value itself is kept. A key with no value
// (null) where a mapping belongs stands for an empty mapping, so
// "shamir:" alone selects the Shamir seal with its defaults.
func (s *shapeChecker) check(p *field.Path, v any, t reflect.Type) (any, bool) {
	if t == durationType {
		return s.duration(p, v)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return s.check(p, v, t.Elem())
	case reflect.Struct:
		return s.object(p, v, t)
	case reflect.Map:
		return s.mapping(p, v, t)
	case reflect.Slice:
		return s.list(p, v, t)
	case reflect.String:
		return s.scalar(p, v, "a string (quote it)", func(v any) bool { _, ok := v.(string); return ok })
	case reflect.Int, reflect.Int64, reflect.Int32:
		return s.scalar(p, v, "an integer", isInteger)
	case reflect.Bool:
		return s.scalar(p, v, "true or false", func(v any) bool { _, ok := v.(bool); return ok })
	}
	s.errs = append(s.errs, field.InternalError(p, fmt.Errorf("no shape check for %s", t)))
	return nil, false
}

func (s *shapeChecker) typeError(p *field.Path, v any, want string) {
	// The value is not echoed: it may be meant as a secret.
	s.errs = append(s.errs, field.TypeInvalid(p, field.OmitValueType{}, fmt.Sprintf("must be %s, not %s", want, kindOf(v))))
}

func (s *shapeChecker) object(p *field.Path, v any, t reflect.Type) (any, bool) {
	if v == nil {
		v = map[string]any{}
	}
	m, ok := v.(map[string]any)
	if !ok {
		s.typeError(p, v, "a mapping")
		return nil, false
	}
	fields := jsonFields(t)
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		f, ok := fields[k]
		if !ok {
			s.errs = append(s.errs, field.Forbidden(p.Child(k), "unknown key; known keys are "+strings.Join(sortedKeys(fields), ", ")))
			continue
		}
		if c, keep := s.check(p.Child(k), m[k], f); keep {
			out[k] = c
		}
	}
	return out, true
}

func (s *shapeChecker) mapping(p *field.Path, v any, t reflect.Type) (any, bool) {
	if v == nil {
		return nil, true
	}
	m, ok := v.(map[string]any)
	if !ok {
		s.typeError(p, v, "a mapping")
		return nil, false
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		if c, keep := s.check(p.Key(k), m[k], t.Elem()); keep {
			out[k] = c
		}
	}
	return out, true
}

func (s *shapeChecker) list(p *field.Path, v any, t reflect.Type) (any, bool) {
	if v == nil {
		return nil, true
	}
	l, ok := v.([]any)
	if !ok {
		s.typeError(p, v, "a list")
		return nil, false
	}
	out := make([]any, len(l))
	for i, e := range l {
		// A bad element becomes null (a zero value) rather than being
		// dropped, so the indexes Validate reports stay right.
		if c, keep := s.check(p.Index(i), e, t.Elem()); keep {
			out[i] = c
		}
	}
	return out, true
}

func (s *shapeChecker) scalar(p *field.Path, v any, want string, ok func(any) bool) (any, bool) {
	if v == nil || ok(v) {
		return v, true
	}
	s.typeError(p, v, want)
	return nil, false
}

func (s *shapeChecker) duration(p *field.Path, v any) (any, bool) {
	if v == nil {
		return nil, true
	}
	str, ok := v.(string)
	if !ok {
		s.typeError(p, v, `a duration such as "1h" or "30m"`)
		return nil, false
	}
	if _, err := time.ParseDuration(str); err != nil {
		s.errs = append(s.errs, field.Invalid(p, str, `must be a duration such as "1h" or "30m"`))
		return nil, false
	}
	return str, true
}

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := n.Int64()
	return err == nil
}

func kindOf(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "an integer"
		}
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
