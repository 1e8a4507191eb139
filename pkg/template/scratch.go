package template

import (
	"sort"
	"sync"

	"github.com/Masterminds/sprig/v3"
)

// Scratch is the store `scratch` gives a template for one execution, with
// consul-template's methods: .Key, .Get, .Set, .SetX (set unless present),
// .MapSet, .MapSetX and .MapValues (a map's values in key order). The set
// methods return "" so that they print nothing.
type Scratch struct {
	values map[string]any
}

// Key reports whether k holds a value.
func (s *Scratch) Key(k string) bool {
	_, ok := s.values[k]
	return ok
}

// Get is the value at k, nil if none.
func (s *Scratch) Get(k string) any { return s.values[k] }

// Set stores v at k.
func (s *Scratch) Set(k string, v any) string {
	s.put(k, v, true)
	return ""
}

// SetX stores v at k unless k holds a value already.
func (s *Scratch) SetX(k string, v any) string {
	s.put(k, v, false)
	return ""
}

func (s *Scratch) put(k string, v any, replace bool) {
	if s.values == nil {
		s.values = map[string]any{}
	}
	if _, ok := s.values[k]; replace || !ok {
		s.values[k] = v
	}
}

// MapSet stores v under mk in the map at k, which it creates if need be.
func (s *Scratch) MapSet(k, mk string, v any) (string, error) { return s.mapPut(k, mk, v, true) }

// MapSetX is MapSet unless mk holds a value already.
func (s *Scratch) MapSetX(k, mk string, v any) (string, error) { return s.mapPut(k, mk, v, false) }

func (s *Scratch) mapPut(k, mk string, v any, replace bool) (string, error) {
	s.put(k, map[string]any{}, false)
	m, ok := s.values[k].(map[string]any)
	if !ok {
		// The key is not quoted: it may be a secret.
		return "", failf("scratch", "the key holds a value that is not a map")
	}
	if _, ok := m[mk]; replace || !ok {
		m[mk] = v
	}
	return "", nil
}

// MapValues are the values of the map at k in the order of their keys;
// nil when k holds no map.
func (s *Scratch) MapValues(k string) ([]any, error) {
	m, ok := s.values[k].(map[string]any)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for mk := range m {
		keys = append(keys, mk)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, mk := range keys {
		out[i] = m[mk]
	}
	return out, nil
}

// sprigFuncs are sprig's hermetic functions (whose output depends on
// their arguments only), which consul-template offers under the sprig_
// prefix; built the first time a template calls one.
var sprigFuncs = sync.OnceValue(func() map[string]any { return sprig.HermeticTxtFuncMap() })

// sprigAll are all of sprig's functions, hermetic or not, to tell a
// refused sprig function from a misspelt one; built only for that error.
func sprigAll() map[string]any { return sprig.TxtFuncMap() }
