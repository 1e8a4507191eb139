package template

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"regexp/syntax"
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
	"base64Decode":    decodeWith(base64.StdEncoding, "base64Decode"),
	"base64Encode":    func(s string) (string, error) { return base64.StdEncoding.EncodeToString([]byte(s)), nil },
	"base64URLDecode": decodeWith(base64.URLEncoding, "base64URLDecode"),
	"base64URLEncode": func(s string) (string, error) { return base64.URLEncoding.EncodeToString([]byte(s)), nil },
	"byKey":           consulOnly[string, map[string]any]("byKey"),
	"byTag":           consulOnly[string, []any]("byTag"),
	"byPort":          consulOnly[int, []any]("byPort"),
	"byMeta":          byMeta,
	"explode":         consulOnly[string, any]("explode"),
	"contains":        func(v, l any) (bool, error) { return in(l, v) },
	"containsAll":     containsSome(true, true),
	"containsAny":     containsSome(false, false),
	"containsNone":    containsSome(true, false),
	"containsNotAll":  containsSome(false, true),
	"explodeMap":      explodeMap,
	"mergeMap":        func(dst, src map[string]any) (map[string]any, error) { return mergeMap("mergeMap", dst, src) },
	"mergeMapWithOverride": func(dst, src map[string]any) (map[string]any, error) {
		return mergeMap("mergeMapWithOverride", dst, src, mergo.WithOverride)
	},
	"in":              in,
	"indent":          indent,
	"join":            join,
	"trim":            func(cutset, s string) (string, error) { return strings.Trim(s, cutset), nil },
	"trimPrefix":      func(prefix, s string) (string, error) { return strings.TrimPrefix(s, prefix), nil },
	"trimSuffix":      func(suffix, s string) (string, error) { return strings.TrimSuffix(s, suffix), nil },
	"trimSpace":       func(s string) (string, error) { return strings.TrimSpace(s), nil },
	"parseBool":       parseWith("parseBool", strconv.ParseBool),
	"parseFloat":      parseWith("parseFloat", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }),
	"parseInt":        parseWith("parseInt", func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }),
	"parseUint":       parseWith("parseUint", func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }),
	"parseJSON":       unmarshalWith("parseJSON", json.Unmarshal),
	"parseYAML":       unmarshalWith("parseYAML", yaml.Unmarshal),
	"regexReplaceAll": regexReplaceAll,
	"regexMatch":      regexMatch,
	"replaceAll":      replaceAll,
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
	"add":                   arithmetic("add", false, func(a, b int64) int64 { return a + b }, func(a, b uint64) uint64 { return a + b }, func(a, b float64) float64 { return a + b }),
	"subtract":              arithmetic("subtract", false, func(a, b int64) int64 { return a - b }, func(a, b uint64) uint64 { return a - b }, func(a, b float64) float64 { return a - b }),
	"multiply":              arithmetic("multiply", false, func(a, b int64) int64 { return a * b }, func(a, b uint64) uint64 { return a * b }, func(a, b float64) float64 { return a * b }),
	"divide":                arithmetic("divide", true, func(a, b int64) int64 { return a / b }, func(a, b uint64) uint64 { return a / b }, func(a, b float64) float64 { return a / b }),
	"modulo":                arithmetic("modulo", true, func(a, b int64) int64 { return a % b }, func(a, b uint64) uint64 { return a % b }, nil),
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
			// The error is the offset of the first bad byte, not the byte.
			var bad base64.CorruptInputError
			if errors.As(err, &bad) {
				return "", failf(name, "not base64: illegal data at input byte %d", int64(bad))
			}
			return "", failf(name, "not base64")
		}
		return string(b), nil
	}
}

// consulOnly stands for a helper that takes Consul data (key pairs,
// services), which no allowed function can produce: given nothing it
// returns an empty map (not nil: `toJSON` prints {} as under
// consul-template); given anything else it says why it cannot work.
func consulOnly[K comparable, V any](name string) func(any) (map[K]V, error) {
	return func(in any) (map[K]V, error) {
		if in == nil {
			return map[K]V{}, nil
		}
		return map[K]V{}, failf(name, "wrong argument type %T: it takes Consul data, which the agent does not read", in)
	}
}

func byMeta(meta string, services any) (map[string][]any, error) {
	return consulOnly[string, []any]("byMeta")(services)
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

func mergeMap(name string, dst, src map[string]any, opts ...func(*mergo.Config)) (map[string]any, error) {
	if err := mergo.Map(&dst, src, opts...); err != nil {
		return nil, &funcError{fn: name, reason: "the maps cannot be merged", cause: err}
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
		if !setPath(out, k, flat[k]) {
			// Neither the keys nor the values are quoted: either may be
			// a secret.
			return nil, failf("explodeMap", "a key holds a value and is also the prefix of another key (as \"a\" and \"a/b\")")
		}
	}
	return out, nil
}

// setPath stores v at the slash-separated key k under m; false when a
// prefix of k already holds a value that is not a map.
func setPath(m map[string]any, k string, v any) bool {
	top, rest, nested := strings.Cut(k, "/")
	if !nested {
		if k != "" {
			m[k] = v
		}
		return true
	}
	if _, ok := m[top]; !ok {
		m[top] = map[string]any{}
	}
	sub, ok := m[top].(map[string]any)
	return ok && setPath(sub, rest, v)
}

// indent puts n spaces before every line that is not empty. The size of
// the result is known before it is built: one larger than a rendered file
// may be (MaxOutput) is refused before it takes the agent's memory.
func indent(n int, s string) (string, error) {
	if err := checkIndent("indent", n, linesToIndent(s), len(s)); err != nil {
		return "", err
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

// join is strings.Join with its result's size checked first.
func join(sep string, a []string) (string, error) {
	size := len(sep) * max(len(a)-1, 0)
	for _, s := range a {
		if size += len(s); size > MaxOutput {
			return "", tooLarge("join", "the joined text")
		}
	}
	return strings.Join(a, sep), nil
}

// replaceAll is strings.ReplaceAll with its result's size checked first:
// each of n matches grows s by len(to)-len(from).
func replaceAll(from, to, s string) (string, error) {
	return boundedReplace("replaceAll", from, to, s)
}

// linesToIndent counts the lines of s that are not empty.
func linesToIndent(s string) int {
	n := 0
	lineStart := true
	for i := range len(s) {
		if lineStart && s[i] != '\n' {
			n++
		}
		lineStart = s[i] == '\n'
	}
	return n
}

// parseWith wraps a strconv parser: "" parses as the zero value. The
// error is strconv's reason (invalid syntax, out of range) without the
// text it was given.
func parseWith[T any](name string, parse func(string) (T, error)) func(string) (T, error) {
	return func(s string) (T, error) {
		var zero T
		if s == "" {
			return zero, nil
		}
		v, err := parse(s)
		var numErr *strconv.NumError
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &numErr):
			return zero, &funcError{fn: name, reason: numErr.Err.Error(), cause: numErr.Err}
		}
		return zero, failf(name, "cannot parse its argument")
	}
}

// unmarshalWith decodes JSON or YAML into generic values; "" is an empty
// map. The decoders' errors quote the text around the fault, so only
// JSON's byte offset is kept.
func unmarshalWith(name string, unmarshal func([]byte, any) error) func(string) (any, error) {
	return func(s string) (any, error) {
		if s == "" {
			return map[string]any{}, nil
		}
		var v any
		err := unmarshal([]byte(s), &v)
		var syntax *json.SyntaxError
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &syntax):
			return nil, failf(name, "not valid JSON: syntax error at byte offset %d", syntax.Offset)
		}
		return nil, failf(name, "cannot decode its argument")
	}
}

func regexReplaceAll(re, replacement, s string) (string, error) {
	r, err := compileRegexp("regexReplaceAll", re)
	if err != nil {
		return "", err
	}
	return boundedRegexReplace("regexReplaceAll", r, s, replacement, true)
}

func regexMatch(re, s string) (bool, error) {
	r, err := compileRegexp("regexMatch", re)
	if err != nil {
		return false, err
	}
	return r.MatchString(s), nil
}

// compileRegexp's error is the kind of fault, without the expression
// (which may be built from a secret).
func compileRegexp(name, re string) (*regexp.Regexp, error) {
	r, err := regexp.Compile(re)
	var syntaxErr *syntax.Error
	switch {
	case err == nil:
		return r, nil
	case errors.As(err, &syntaxErr):
		return nil, failf(name, "invalid regular expression: %s", syntaxErr.Code)
	}
	return nil, failf(name, "invalid regular expression")
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
	return "", failf("timestamp", "wrong number of arguments, expected 0 or 1, but got %d", len(layout))
}

// marshalWith builds a helper encoding with marshal, trimmed of the
// surrounding white space.
func marshalWith(name string, marshal func(any) ([]byte, error)) func(any) (string, error) {
	return func(v any) (string, error) {
		b, err := marshal(v)
		if err != nil {
			return "", failf(name, "cannot encode a value of type %T", v)
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
		return "", failf(name, "cannot encode a value of type %T", v)
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
