// Package valuesdoc reads the chart's values.schema.json, checks it against
// the values files, and writes the values reference of docs/chart.md from
// it (go generate ./hack/valuesdoc).
package valuesdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Schema is the part of JSON Schema (draft-07) the chart's schema uses.
// Properties and Definitions keep the file's order, which is the order of
// values.yaml and of the generated reference.
type Schema struct {
	Ref                  string             `json:"$ref"`
	Description          string             `json:"description"`
	Type                 types              `json:"type"`
	Enum                 []any              `json:"enum"`
	Pattern              string             `json:"pattern"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	Properties           Props              `json:"properties"`
	PatternProperties    map[string]*Schema `json:"patternProperties"`
	AdditionalProperties *Additional        `json:"additionalProperties"`
	Items                *Schema            `json:"items"`
	OneOf                []*Schema          `json:"oneOf"`
	Definitions          Props              `json:"definitions"`
}

// types is a schema's "type": one name or a list.
type types []string

func (t *types) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*t = types{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(t))
}

// Additional is "additionalProperties": false, true, or a schema.
type Additional struct {
	Allowed bool
	Schema  *Schema
}

func (a *Additional) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &a.Allowed) == nil {
		return nil
	}
	a.Allowed = true
	a.Schema = &Schema{}
	return json.Unmarshal(b, a.Schema)
}

// Prop is one named property (or definition).
type Prop struct {
	Name   string
	Schema *Schema
}

// Props is an object's properties in the order the file lists them.
type Props []Prop

func (p *Props) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("properties: want an object: %v", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		s := &Schema{}
		if err := dec.Decode(s); err != nil {
			return fmt.Errorf("property %v: %w", t, err)
		}
		*p = append(*p, Prop{Name: t.(string), Schema: s})
	}
	return nil
}

// Get returns the property named name, or nil.
func (p Props) Get(name string) *Schema {
	for _, x := range p {
		if x.Name == name {
			return x.Schema
		}
	}
	return nil
}

// ErrSchema is wrapped by every error about the schema file itself.
var ErrSchema = errors.New("values schema")

// Load reads a schema file.
func Load(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	s := &Schema{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSchema, path, err)
	}
	return s, nil
}

// Resolve follows s's $ref (only "#/definitions/<name>") in root; a schema
// without one is returned as is.
func (root *Schema) Resolve(s *Schema) *Schema {
	name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
	if !ok {
		return s
	}
	if d := root.Definitions.Get(name); d != nil {
		return root.Resolve(d)
	}
	return s
}

// child is the schema of key k of an object described by s, or nil when s
// does not allow k; free is true when s is an object of any shape (such as
// a pod's nodeAffinity), whose keys are not described further.
func (root *Schema) child(s *Schema, k string) (c *Schema, free bool) {
	if c := s.Properties.Get(k); c != nil {
		return root.Resolve(c), false
	}
	for pat, c := range s.PatternProperties {
		if regexp.MustCompile(pat).MatchString(k) {
			return root.Resolve(c), false
		}
	}
	switch a := s.AdditionalProperties; {
	case a != nil && a.Schema != nil:
		return root.Resolve(a.Schema), false
	case a != nil && !a.Allowed:
		return nil, false
	case len(s.Properties) == 0 && len(s.PatternProperties) == 0:
		return nil, true
	}
	return nil, false
}

// Uncovered lists the keys of values (as dotted paths) the schema does not
// describe: a value there would fail `helm install`, or pass unchecked.
func (root *Schema) Uncovered(values map[string]any) []string {
	var out []string
	root.uncovered(root, values, "", &out)
	return out
}

func (root *Schema) uncovered(s *Schema, v any, at string, out *[]string) {
	s = root.Resolve(s)
	if len(s.OneOf) > 0 {
		for _, alt := range s.OneOf {
			var miss []string
			root.uncovered(alt, v, at, &miss)
			if len(miss) == 0 {
				return
			}
		}
		*out = append(*out, at+" (no alternative of oneOf)")
		return
	}
	switch v := v.(type) {
	case map[string]any:
		if len(s.Type) > 0 && !slices.Contains(s.Type, "object") {
			*out = append(*out, at+" (not an object in the schema)")
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			path := strings.TrimPrefix(at+"."+k, ".")
			c, free := root.child(s, k)
			switch {
			case free:
			case c == nil:
				*out = append(*out, path)
			default:
				root.uncovered(c, v[k], path, out)
			}
		}
	case []any:
		if s.Items == nil {
			return
		}
		for i, item := range v {
			root.uncovered(s.Items, item, fmt.Sprintf("%s[%d]", at, i), out)
		}
	}
}

// Loose lists the objects of the schema that describe their keys but let
// any other key through (no "additionalProperties": false): a typo there
// would pass silently.
func (root *Schema) Loose() []string {
	var out []string
	walk(root, "", func(s *Schema, at string) {
		if (len(s.Properties) > 0 || len(s.PatternProperties) > 0) &&
			(s.AdditionalProperties == nil || s.AdditionalProperties.Allowed && s.AdditionalProperties.Schema == nil) {
			out = append(out, at)
		}
	})
	return out
}

// Undescribed lists the properties and definitions without a description:
// the generated reference would have an empty cell.
func (root *Schema) Undescribed() []string {
	var out []string
	walk(root, "", func(s *Schema, at string) {
		for _, p := range slices.Concat(s.Properties, s.Definitions) {
			if strings.TrimSpace(p.Schema.Description) == "" {
				out = append(out, strings.TrimPrefix(at+"."+p.Name, "."))
			}
		}
	})
	return out
}

// walk calls fn on s and every schema inside it, with a dotted path.
func walk(s *Schema, at string, fn func(*Schema, string)) {
	fn(s, at)
	join := func(k string) string { return strings.TrimPrefix(at+"."+k, ".") }
	for _, p := range s.Properties {
		walk(p.Schema, join(p.Name), fn)
	}
	for _, p := range s.Definitions {
		walk(p.Schema, join("definitions."+p.Name), fn)
	}
	for pat, c := range s.PatternProperties {
		walk(c, join("<"+pat+">"), fn)
	}
	if a := s.AdditionalProperties; a != nil && a.Schema != nil {
		walk(a.Schema, join("*"), fn)
	}
	if s.Items != nil {
		walk(s.Items, at+"[]", fn)
	}
	for i, alt := range s.OneOf {
		walk(alt, fmt.Sprintf("%s(oneOf %d)", at, i), fn)
	}
}
