// Package leakform finds secret values in text in the forms code derives
// from them: any substring of 8 bytes or more, in any letter case,
// reversed, upper- or lower-cased and then hex, base64 (standard or URL
// alphabet, padded or not, at any alignment in a longer encoded string),
// percent-encoded (query or path), or JSON- or Go-quoted. Tests use it on
// everything the agent and the injector expose.
package leakform

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// Window is the length of the substrings looked for: shorter ones would
// match ordinary text by chance.
const Window = 8

// Matcher holds the forms of the values added.
type Matcher struct {
	// byKey maps the first Window bytes (lower-cased) of each form to the
	// forms starting so.
	byKey map[string][]form
}

type form struct {
	text, label, kind string
}

// Finding is one value found.
type Finding struct {
	Label string // the value's label
	Kind  string // the form it was found in ("hex of upper", ...)
	// Offset is where in the text it starts.
	Offset int
}

// New returns an empty matcher.
func New() *Matcher { return &Matcher{byKey: map[string][]form{}} }

// Add registers value under label; values shorter than Window bytes are
// ignored (they would match by chance) and Add reports false for them.
func (m *Matcher) Add(label, value string) bool {
	if len(value) < Window {
		return false
	}
	for i := 0; i+Window <= len(value); i++ {
		w := value[i : i+Window]
		for caseName, c := range map[string]string{"": w, "upper ": strings.ToUpper(w), "lower ": strings.ToLower(w)} {
			for revName, r := range map[string]string{"": c, "reversed ": reverse(c)} {
				for kind, enc := range encodings(r) {
					m.add(form{text: enc, label: label, kind: kind + " of " + revName + caseName + "substring"})
				}
			}
		}
	}
	return true
}

func (m *Matcher) add(f form) {
	f.text = strings.ToLower(f.text)
	if len(f.text) < Window {
		return
	}
	k := f.text[:Window]
	for _, old := range m.byKey[k] {
		if old.text == f.text && old.label == f.label {
			return
		}
	}
	m.byKey[k] = append(m.byKey[k], f)
}

// encodings are the encoded forms of s; each is a substring of the same
// encoding of any longer string holding s.
func encodings(s string) map[string]string {
	out := map[string]string{
		"raw":           s,
		"hex":           hex.EncodeToString([]byte(s)),
		"query-escaped": url.QueryEscape(s),
		"path-escaped":  url.PathEscape(s),
		"go-quoted":     unquote(strconv.Quote(s)),
		"ascii-quoted":  unquote(strconv.QuoteToASCII(s)),
	}
	if b, err := json.Marshal(s); err == nil {
		out["json"] = unquote(string(b))
	}
	for k := range 3 {
		out["base64 std "+strconv.Itoa(k)] = base64Core(base64.StdEncoding, s, k)
		out["base64 url "+strconv.Itoa(k)] = base64Core(base64.URLEncoding, s, k)
	}
	return out
}

// base64Core is the part of the encoding of s, preceded by k other bytes,
// that s alone decides: whole 3-byte groups of s's bytes.
func base64Core(enc *base64.Encoding, s string, k int) string {
	b := append(make([]byte, k), s...)
	full := enc.EncodeToString(b[:len(b)/3*3])
	if k > 0 {
		full = full[4:] // the first group mixes the k bytes before s
	}
	return full
}

func unquote(q string) string { return q[1 : len(q)-1] }

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// Find returns every value found in text, once per label and kind.
func (m *Matcher) Find(text []byte) []Finding {
	low := bytes.ToLower(text)
	var out []Finding
	seen := map[[2]string]bool{}
	for i := 0; i+Window <= len(low); i++ {
		for _, f := range m.byKey[string(low[i:i+Window])] {
			k := [2]string{f.label, f.kind}
			if !seen[k] && bytes.HasPrefix(low[i:], []byte(f.text)) {
				seen[k] = true
				out = append(out, Finding{Label: f.label, Kind: f.kind, Offset: i})
			}
		}
	}
	return out
}
