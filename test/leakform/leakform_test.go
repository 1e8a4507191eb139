package leakform

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const value = "Zq7-vN2p/Kx9+Wm4=Rt8&Hy3"

// TestFindsDerivedForms: each way code derives text from a value, applied
// to the value or to a part of it inside other text, is found.
func TestFindsDerivedForms(t *testing.T) {
	part := value[5:17]
	b64 := func(e *base64.Encoding, s string) string { return e.EncodeToString([]byte(s)) }
	for name, text := range map[string]string{
		"raw":                         "error: " + value,
		"upper":                       strings.ToUpper(value),
		"lower":                       strings.ToLower(value),
		"title-ish":                   "path SECRET/" + strings.ToUpper(value[:4]) + strings.ToLower(value[4:]),
		"reversed":                    reverse(value),
		"reversed upper":              strings.ToUpper(reverse(value)),
		"substring":                   "x" + part + "y",
		"hex":                         hex.EncodeToString([]byte(value)),
		"hex upper":                   strings.ToUpper(hex.EncodeToString([]byte(value))),
		"hex of upper":                hex.EncodeToString([]byte(strings.ToUpper(value))),
		"base64 std":                  b64(base64.StdEncoding, value),
		"base64 url raw":              b64(base64.RawURLEncoding, value),
		"base64 of prefix+value":      b64(base64.StdEncoding, "k="+value),
		"base64 of 1-prefix+part":     b64(base64.StdEncoding, "a"+part+"tail"),
		"base64 of reversed":          b64(base64.StdEncoding, reverse(value)),
		"base64 of upper":             b64(base64.URLEncoding, strings.ToUpper(value)),
		"query-escaped":               url.QueryEscape(value),
		"path-escaped in a URL":       "http://127.0.0.1:8200/v1/secret/data/" + url.PathEscape(value),
		"go-quoted":                   strconv.Quote("secret/" + value),
		"json":                        mustJSON(map[string]string{"p": value}),
		"part of a query-escaped":     url.QueryEscape(part),
		"fmt %q of the reversed":      fmt.Sprintf("%q", reverse(value)),
		"hex of a part, mixed with x": "x" + hex.EncodeToString([]byte(part)) + "x",
	} {
		m := New()
		m.Add("v", value)
		if got := m.Find([]byte(text)); len(got) == 0 {
			t.Errorf("%s: not found", name)
		}
	}
}

// TestIgnoresUnrelatedText: other values, and parts of the value shorter
// than Window, are not reported.
func TestIgnoresUnrelatedText(t *testing.T) {
	m := New()
	if m.Add("short", "pass123") {
		t.Error("a 7-byte value was registered")
	}
	m.Add("v", value)
	for _, text := range []string{
		"",
		"the agent rendered secret db into /blinkchamber/secrets/db (42 bytes)",
		value[:Window-1] + " and " + value[len(value)-Window+1:],
		b64(reverse("unrelated-value-of-some-length")),
	} {
		if got := m.Find([]byte(text)); len(got) > 0 {
			t.Errorf("%q: found %+v", text, got)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
