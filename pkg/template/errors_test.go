package template

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestErrorsDoNotQuoteSecrets: a render error never carries a secret
// value, not even one a helper transformed before it failed (which
// redacting Vault's raw values cannot catch). Each template fails in a
// different function with an argument computed from the secret; the
// error must name where it failed and hold no form of the value.
func TestErrorsDoNotQuoteSecrets(t *testing.T) {
	const pw = "hunter2-secret"
	cases := []struct{ name, text, says string }{
		{"parseInt", `{{ .Data.pw | toUpper | parseInt }}`, "parseInt: invalid syntax"},
		{"parseInt of a decoded value", `{{ .Data.b64 | base64Decode | parseInt }}`, "parseInt: invalid syntax"},
		{"parseUint", `{{ .Data.pw | toUpper | parseUint }}`, "parseUint: invalid syntax"},
		{"parseFloat", `{{ .Data.pw | toUpper | parseFloat }}`, "parseFloat: invalid syntax"},
		{"parseBool", `{{ .Data.pw | toUpper | parseBool }}`, "parseBool: invalid syntax"},
		{"parseJSON", `{{ printf "{\"a\": %s}" (toUpper .Data.pw) | parseJSON }}`, "parseJSON: not valid JSON"},
		{"parseYAML", `{{ printf "a: [%s" (toUpper .Data.pw) | parseYAML }}`, "parseYAML: cannot decode"},
		{"base64Decode", `{{ .Data.pw | toUpper | base64Decode }}`, "base64Decode: not base64"},
		{"base64URLDecode", `{{ .Data.pw | toUpper | base64URLDecode }}`, "base64URLDecode: not base64"},
		{"regexMatch", `{{ regexMatch (printf "(%s" (toUpper .Data.pw)) "x" }}`, "regexMatch: invalid regular expression: missing closing )"},
		{"regexReplaceAll", `{{ regexReplaceAll (printf "(%s" (toUpper .Data.pw)) "y" "x" }}`, "regexReplaceAll: invalid regular expression"},
		{"add", `{{ add (toUpper .Data.pw) 1 }}`, "add: an operand of type string"},
		{"subtract", `{{ subtract 1 (toUpper .Data.pw) }}`, "subtract: an operand of type string"},
		{"modulo", `{{ modulo (toUpper .Data.pw) 1 }}`, "modulo: an operand"},
		{"minimum", `{{ minimum (toUpper .Data.pw) 1 }}`, "minimum: an operand"},
		{"divide by zero", `{{ divide 0 (len (toUpper .Data.pw)) }}`, "divide: integer division by zero"},
		{"loop", `{{ range loop (toUpper .Data.pw) }}{{ end }}`, "loop: an argument is not an integer"},
		{"explodeMap", `{{ explodeMap (sprig_dict "a" (toUpper .Data.pw) "a/b" "x") }}`, "explodeMap: a key holds a value"},
		{"scratch.MapSet", `{{ scratch.Set (toUpper .Data.pw) 1 }}{{ scratch.MapSet (toUpper .Data.pw) "k" 1 }}`, "scratch: the key holds a value that is not a map"},
		{"secret argument", `{{ secret "database/x" (toUpper .Data.pw) }}`, `secret: argument 2 is not key=value`},
		{"byKey", `{{ byKey (toUpper .Data.pw) }}`, "byKey: wrong argument type string"},
		{"executeTemplate", `{{ executeTemplate "t" . }}{{ end }}{{ define "t" }}{{ .Data.pw | toUpper | parseInt }}`, "error calling parseInt: parseInt: invalid syntax"},
		{"sprig error", `{{ sprig_fail (toUpper .Data.pw) }}`, "error calling sprig_fail: failed (its message is not shown"},
		{"sprig regexp", `{{ sprig_mustRegexMatch (printf "(%s" (toUpper .Data.pw)) "x" }}`, "error calling sprig_mustRegexMatch: failed"},
		{"builtin comparison", `{{ eq (sprig_list (toUpper .Data.pw)) 1 }}`, "error calling eq: failed"},
		{"range over a value", `{{ range toUpper .Data.pw }}{{ end }}`, "range can't iterate over a value (not shown"},
	}
	secret := &Secret{Data: map[string]any{"pw": pw, "b64": base64.StdEncoding.EncodeToString([]byte(pw))}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := New("x", `{{ with secret "secret/data/a" }}`+tc.text+`{{ end }}`)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tp.Execute(lookupOf(map[string]any{"read secret/data/a": secret}))
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(strings.ToLower(err.Error()), "hunter2") {
				t.Fatalf("error quotes the secret: %v", err)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "rendering x: template: :1:") {
				t.Fatalf("error %q does not give the position and say %q", err, tc.says)
			}
		})
	}
}

// TestSafeMessageKeepsTemplateErrors: text/template's own messages, which
// name the template's fields and keys, stay as they are.
func TestSafeMessageKeepsTemplateErrors(t *testing.T) {
	tp, err := New("x", `{{ with secret "secret/data/a" }}{{ .Data.nope }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Execute(lookupOf(map[string]any{"read secret/data/a": &Secret{Data: map[string]any{"pw": "x"}}}))
	if err == nil || !strings.Contains(err.Error(), `at <.Data.nope>: map has no entry for key "nope"`) {
		t.Fatalf("Execute = %v, want the missing key named", err)
	}
}

// TestFuncErrorUnwraps: a helper's error keeps its cause for errors.Is,
// though its text does not quote it.
func TestFuncErrorUnwraps(t *testing.T) {
	_, err := helpers["parseInt"].(func(string) (int64, error))("HUNTER2")
	if err == nil || strings.Contains(err.Error(), "HUNTER2") {
		t.Fatalf("parseInt = %v", err)
	}
	var fe *funcError
	if !errors.As(err, &fe) || fe.fn != "parseInt" {
		t.Fatalf("parseInt's error %v is not a funcError naming it", err)
	}
}
