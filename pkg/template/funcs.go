package template

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"dario.cat/mergo"
	"github.com/BurntSushi/toml"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"gopkg.in/yaml.v2"
)

// helpers are consul-template's pure helper functions that the sandbox
// allows, written here with the same names, arguments and results, so that
// templates written for consul-template (and Vault Agent) render the same
// bytes. The agent used to link consul-template itself for them; with it
// came the Consul and Nomad clients and more, a measured share of every
// agent's memory (docs/benchmarks.md). The libraries consul-template
// delegates to (mergo, yaml.v2, BurntSushi/toml, x/text) are used the same
// way here, so their output is the same too. The Vault functions, scratch,
// executeTemplate and loop are bound per template in render.go.
var helpers = map[string]any{
	"base64Decode":         decodeWith(base64.StdEncoding, "base64Decode"),
	"base64Encode":         func(s string) (string, error) { return base64.StdEncoding.EncodeToString([]byte(s)), nil },
	"base64URLDecode":      decodeWith(base64.URLEncoding, "base64URLDecode"),
	"base64URLEncode":      func(s string) (string, error) { return base64.URLEncoding.EncodeToString([]byte(s)), nil },
	"byKey":                consulOnly[map[string]map[string]any]("byKey"),
	"byTag":                consulOnly[map[string][]any]("byTag"),
	"byPort":               consulOnly[map[int][]any]("byPort"),
	"byMeta":               byMeta,
	"explode":              consulOnly[map[string]any]("explode"),
	"contains":             func(v, l any) (bool, error) { return in(l, v) },
	"containsAll":          containsSome(true, true),
	"containsAny":          containsSome(false, false),
	"containsNone":         containsSome(true, false),
	"containsNotAll":       containsSome(false, true),
	"explodeMap":           explodeMap,
	"mergeMap":             mergeMap,
	"mergeMapWithOverride": func(dst, src map[string]any) (map[string]any, error) { return mergeMap(dst, src, mergo.WithOverride) },
	"in":                   in,
	"indent":               indent,
	"join":                 func(sep string, a []string) (string, error) { return strings.Join(a, sep), nil },
	"trim":                 func(cutset, s string) (string, error) { return strings.Trim(s, cutset), nil },
	"trimPrefix":           func(prefix, s string) (string, error) { return strings.TrimPrefix(s, prefix), nil },
	"trimSuffix":           func(suffix, s string) (string, error) { return strings.TrimSuffix(s, suffix), nil },
	"trimSpace":            func(s string) (string, error) { return strings.TrimSpace(s), nil },
	"parseBool":            parseWith("parseBool", strconv.ParseBool),
	"parseFloat":           parseWith("parseFloat", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }),
	"parseInt":             parseWith("parseInt", func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }),
	"parseUint":            parseWith("parseUint", func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }),
	"parseJSON":            unmarshalWith(json.Unmarshal),
	"parseYAML":            unmarshalWith(yaml.Unmarshal),
	"regexReplaceAll":      regexReplaceAll,
	"regexMatch":           regexMatch,
	"replaceAll":           func(from, to, s string) (string, error) { return strings.ReplaceAll(s, from, to), nil },
	"sha256Hex": func(s string) (string, error) {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:]), nil
	},
	"md5sum":                func(s string) (string, error) { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]), nil },
	"hmacSHA256Hex":         hmacSHA256Hex,
	"timestamp":             timestamp,
	"toLower":               func(s string) (string, error) { return strings.ToLower(s), nil },
	"toUpper":               func(s string) (string, error) { return strings.ToUpper(s), nil },
	"toTitle":               func(s string) (string, error) { return cases.Title(language.Und, cases.NoLower).String(s), nil },
	"toJSON":                marshalWith("toJSON", json.Marshal),
	"toJSONPretty":          marshalWith("toJSONPretty", func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }),
	"toUnescapedJSON":       func(v any) (string, error) { return encodeJSON("toUnescapedJSON", v, "") },
	"toUnescapedJSONPretty": func(v any) (string, error) { return encodeJSON("toUnescapedJSONPretty", v, "  ") },
	"toYAML":                marshalWith("toYAML", yaml.Marshal),
	"toTOML":                marshalWith("toTOML", marshalTOML),
	"split":                 split,
	"splitToMap":            splitToMap,
	"add":                   arithmetic("add", func(a, b int64) int64 { return a + b }, func(a, b uint64) uint64 { return a + b }, func(a, b float64) float64 { return a + b }),
	"subtract":              arithmetic("subtract", func(a, b int64) int64 { return a - b }, func(a, b uint64) uint64 { return a - b }, func(a, b float64) float64 { return a - b }),
	"multiply":              arithmetic("multiply", func(a, b int64) int64 { return a * b }, func(a, b uint64) uint64 { return a * b }, func(a, b float64) float64 { return a * b }),
	"divide":                arithmetic("divide", func(a, b int64) int64 { return a / b }, func(a, b uint64) uint64 { return a / b }, func(a, b float64) float64 { return a / b }),
	"modulo":                arithmetic("modulo", func(a, b int64) int64 { return a % b }, func(a, b uint64) uint64 { return a % b }, nil),
	"minimum":               pick("minimum", func(c int) bool { return c < 0 }),
	"maximum":               pick("maximum", func(c int) bool { return c > 0 }),
}

// now is the clock of timestamp, in UTC as consul-template's; a variable
// so that tests can fix it.
var now = func() time.Time { return time.Now().UTC() }

func decodeWith(enc *base64.Encoding, name string) func(string) (string, error) {
	return func(s string) (string, error) {
		b, err := enc.DecodeString(s)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return string(b), nil
	}
}

// consulOnly stands for a helper that takes Consul data (key pairs,
// services), which no allowed function can produce: given nothing it
// returns an empty result, as consul-template does; given anything else it
// says why it cannot work.
func consulOnly[T any](name string) func(any) (T, error) {
	return func(in any) (T, error) {
		var empty T
		if in == nil {
			return empty, nil
		}
		return empty, fmt.Errorf("%s: wrong argument type %T: it takes Consul data, which the agent does not read", name, in)
	}
}

func byMeta(meta string, services any) (map[string][]any, error) {
	return consulOnly[map[string][]any]("byMeta")(services)
}

// in reports whether v is an element of the list l (numbers compared by
// value across sizes, strings by type and value) or a substring of the
// string l.
func in(l, v any) (bool, error) {
	lv, vv := reflect.ValueOf(l), reflect.ValueOf(v)
	switch lv.Kind() {
	case reflect.Array, reflect.Slice:
		for i := range lv.Len() {
			e := lv.Index(i)
			if e.Kind() == reflect.Interface {
				e = e.Elem()
			}
			if sameValue(e, vv) {
				return true, nil
			}
		}
	case reflect.String:
		return vv.Type() == lv.Type() && strings.Contains(lv.String(), vv.String()), nil
	}
	return false, nil
}

// sameValue is in's comparison of a list element e with v.
func sameValue(e, v reflect.Value) bool {
	switch {
	case isInt(e.Kind()):
		return isInt(v.Kind()) && v.Int() == e.Int()
	case isFloat(e.Kind()):
		return isFloat(v.Kind()) && v.Float() == e.Float()
	case e.Kind() == reflect.String:
		return v.Type() == e.Type() && v.String() == e.String()
	}
	return false
}

// containsSome builds containsAll (true, true), containsAny (false, false),
// containsNone (true, false) and containsNotAll (false, true): whether the
// elements of v are all, any, none or not all in l. The first element found
// (or, with stopOnMissing, not found) decides !atEnd; else atEnd.
func containsSome(atEnd, stopOnMissing bool) func([]any, any) (bool, error) {
	return func(v []any, l any) (bool, error) {
		for _, x := range v {
			if found, _ := in(l, x); found != stopOnMissing {
				return !atEnd, nil
			}
		}
		return atEnd, nil
	}
}

func mergeMap(dst, src map[string]any, opts ...func(*mergo.Config)) (map[string]any, error) {
	if err := mergo.Map(&dst, src, opts...); err != nil {
		return nil, err
	}
	return dst, nil
}

// explodeMap turns keys with slashes ("a/b/c") into nested maps.
func explodeMap(flat map[string]any) (map[string]any, error) {
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range keys {
		if err := setPath(out, k, flat[k], k); err != nil {
			return nil, fmt.Errorf("explodeMap: %w", err)
		}
	}
	return out, nil
}

// setPath stores v at the slash-separated key k under m; parent is the key
// k was cut from, for the error.
func setPath(m map[string]any, k string, v any, parent string) error {
	top, rest, nested := strings.Cut(k, "/")
	if !nested {
		if k != "" {
			m[k] = v
		}
		return nil
	}
	if _, ok := m[top]; !ok {
		m[top] = map[string]any{}
	}
	sub, ok := m[top].(map[string]any)
	if !ok {
		return fmt.Errorf("not a map: %q: %q already has value %q", parent, top, m[top])
	}
	return setPath(sub, rest, v, k)
}

// indent puts n spaces before every line that is not empty.
func indent(n int, s string) (string, error) {
	if n < 0 {
		return "", fmt.Errorf("indent value must be a positive integer")
	}
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	lineStart := true
	for i := range len(s) {
		if lineStart && s[i] != '\n' {
			b.WriteString(pad)
		}
		b.WriteByte(s[i])
		lineStart = s[i] == '\n'
	}
	return b.String(), nil
}

// parseWith wraps a strconv parser: "" parses as the zero value.
func parseWith[T any](name string, parse func(string) (T, error)) func(string) (T, error) {
	return func(s string) (T, error) {
		var zero T
		if s == "" {
			return zero, nil
		}
		v, err := parse(s)
		if err != nil {
			return zero, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	}
}

// unmarshalWith decodes JSON or YAML into generic values; "" is an empty
// map.
func unmarshalWith(unmarshal func([]byte, any) error) func(string) (any, error) {
	return func(s string) (any, error) {
		if s == "" {
			return map[string]any{}, nil
		}
		var v any
		if err := unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	}
}

func regexReplaceAll(re, replacement, s string) (string, error) {
	r, err := regexp.Compile(re)
	if err != nil {
		return "", err
	}
	return r.ReplaceAllString(s, replacement), nil
}

func regexMatch(re, s string) (bool, error) {
	r, err := regexp.Compile(re)
	if err != nil {
		return false, err
	}
	return r.MatchString(s), nil
}

func hmacSHA256Hex(message, key string) (string, error) {
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(message))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// timestamp is the current UTC time in RFC 3339, in the given layout, or
// as Unix seconds for "unix".
func timestamp(layout ...string) (string, error) {
	switch len(layout) {
	case 0:
		return now().Format(time.RFC3339), nil
	case 1:
		if layout[0] == "unix" {
			return strconv.FormatInt(now().Unix(), 10), nil
		}
		return now().Format(layout[0]), nil
	}
	return "", fmt.Errorf("timestamp: wrong number of arguments, expected 0 or 1, but got %d", len(layout))
}

// marshalWith builds a helper encoding with marshal, trimmed of the
// surrounding white space.
func marshalWith(name string, marshal func(any) ([]byte, error)) func(any) (string, error) {
	return func(v any) (string, error) {
		b, err := marshal(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return string(bytes.TrimSpace(b)), nil
	}
}

func marshalTOML(v any) ([]byte, error) {
	var b bytes.Buffer
	err := toml.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

// encodeJSON is JSON without HTML escaping (<, >, & as they are).
func encodeJSON(name string, v any, indent string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return strings.TrimRight(b.String(), "\r\n"), nil
}

// split cuts s, trimmed, at sep; an empty s gives no elements.
func split(sep, s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return []string{}, nil
	}
	return strings.Split(s, sep), nil
}

// splitToMap cuts s, trimmed, into pairs at sep1 and each pair into key
// and value at sep2; a pair without sep2 is skipped.
func splitToMap(sep1, sep2, s string) (map[string]string, error) {
	m := map[string]string{}
	s = strings.TrimSpace(s)
	if s == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, sep1) {
		if k, v, ok := strings.Cut(pair, sep2); ok {
			m[k] = v
		}
	}
	return m, nil
}
