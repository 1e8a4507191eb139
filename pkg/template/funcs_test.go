package template

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	dep "github.com/hashicorp/consul-template/dependency"
	ct "github.com/hashicorp/consul-template/template"
)

// The agent's template functions replace consul-template's. These tests
// render each template both ways, ours and consul-template's own (a test
// dependency only, not linked into the agent), and require the same bytes,
// or an error from both.

// kvAnswer is a KV v2 answer as the Vault client decodes it (numbers stay
// json.Number).
func kvAnswer() map[string]any {
	return map[string]any{
		"data":     map[string]any{"user": "app", "password": "s3cret-<&>", "port": json.Number("5432"), "tags": []any{"a", "b"}},
		"metadata": map[string]any{"version": json.Number("3")},
	}
}

// sameAsConsulTemplate lists templates whose output must be identical.
var sameAsConsulTemplate = []string{
	// Vault answers: fields, whole answers, encodings.
	`{{ with secret "secret/data/a" }}{{ .Data.data.user }}:{{ .Data.data.password }}@{{ .Data.data.port }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ toJSON . }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ toJSONPretty .Data.data }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ toUnescapedJSON .Data }}|{{ toUnescapedJSONPretty .Data.data }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ toYAML .Data.data }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ toTOML .Data.data }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ .Data.data.password | base64Encode }} {{ .Data.data.password | base64URLEncode }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }};{{ end }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ .Data.data.port | add 1 }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ .Data.data.nope }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ .Auth.ClientToken }}{{ end }}`,
	`{{ with secret "secret/data/a" }}{{ if .Auth }}auth{{ else }}none{{ end }} {{ .LeaseID }} {{ .LeaseDuration }} {{ .Renewable }}{{ end }}`,
	// Encodings and hashes.
	`{{ "aGVsbG8=" | base64Decode }} {{ "aGVsbG8_" | base64URLDecode }}`,
	`{{ "not base64!" | base64Decode }}`,
	`{{ "a-b" | sha256Hex }} {{ "a-b" | md5sum }} {{ hmacSHA256Hex "message" "key" }}`,
	// Strings.
	`{{ "Hello World" | toLower }} {{ "Hello World" | toUpper }} {{ "hello wORLD, don't o'neil" | toTitle }}`,
	`{{ "xxhixx" | trim "x" }} {{ "prefix-a" | trimPrefix "prefix-" }} {{ "a.txt" | trimSuffix ".txt" }} [{{ "  a b  " | trimSpace }}]`,
	`{{ "a-b-c" | replaceAll "-" "+" }} {{ "v1.2.3" | regexReplaceAll "[0-9]" "N" }} {{ "abc" | regexMatch "^a" }} {{ "abc" | regexMatch "^b" }}`,
	`{{ "x" | regexMatch "(" }}`,
	`{{ range " a,b,,c " | split "," }}[{{ . }}]{{ end }} {{ "" | split "," | len }}`,
	`{{ range $k, $v := "a=1&b=2&c&d=4=5" | splitToMap "&" "=" }}{{ $k }}:{{ $v }};{{ end }} {{ " " | splitToMap "&" "=" | len }}`,
	`{{ "a,b,c" | split "," | join "+" }}`,
	"{{ indent 2 \"a\\nb\\n\\nc\\n\" }}|{{ indent 0 \"a\" }}",
	`{{ indent -1 "a" }}`,
	// Parsing.
	`{{ parseBool "true" }} {{ parseBool "" }} {{ parseFloat "1.5" }} {{ parseFloat "" }} {{ parseInt "-42" }} {{ parseInt "" }} {{ parseUint "42" }} {{ parseUint "" }}`,
	`{{ parseBool "maybe" }}`,
	`{{ parseInt "4.2" }}`,
	`{{ parseUint "-1" }}`,
	`{{ parseFloat "x" }}`,
	`{{ with parseJSON "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":null}}" }}{{ toJSON . }} {{ index .a 1 }}{{ end }} {{ parseJSON "" | len }}`,
	`{{ parseJSON "{" }}`,
	`{{ with parseYAML "a: 1\nb: [x, y]\nc: {d: e}\n" }}{{ .a }} {{ index .b 1 }} {{ toYAML . }}{{ end }} {{ parseYAML "" | len }}`,
	`{{ parseYAML "a: [" }}`,
	// Lists and maps.
	`{{ "abc" | contains "b" }} {{ "b" | in "abc" }} {{ split "," "x,y" | contains "y" }} {{ split "," "x,y" | contains "z" }}`,
	`{{ $l := parseJSON "[1, 2.5, \"x\"]" }}{{ in $l 2.5 }} {{ in $l 1 }} {{ in $l 1.0 }} {{ in $l "x" }} {{ in $l "y" }} {{ in $l (parseInt "1") }}`,
	`{{ $l := parseJSON "[\"a\", \"b\"]" }}{{ $v := parseJSON "[\"a\", \"c\"]" }}{{ containsAll $v $l }} {{ containsAny $v $l }} {{ containsNone $v $l }} {{ containsNotAll $v $l }}`,
	`{{ $l := parseJSON "[\"a\", \"b\"]" }}{{ $v := parseJSON "[\"a\", \"b\"]" }}{{ containsAll $v $l }} {{ containsAny $v $l }} {{ containsNone $v $l }} {{ containsNotAll $v $l }}`,
	`{{ $l := parseJSON "[\"a\", \"b\"]" }}{{ $v := parseJSON "[\"x\"]" }}{{ containsAll $v $l }} {{ containsAny $v $l }} {{ containsNone $v $l }} {{ containsNotAll $v $l }}`,
	`{{ explodeMap (parseJSON "{\"a/b/c\":1,\"a/b/d\":2,\"e\":3,\"f/\":4}") | toJSON }}`,
	`{{ explodeMap (parseJSON "{\"a\":1,\"a/b\":2}") | toJSON }}`,
	`{{ mergeMap (parseJSON "{\"a\":1,\"n\":{\"x\":1}}") (parseJSON "{\"a\":2,\"b\":3,\"n\":{\"y\":2}}") | toJSON }}`,
	`{{ mergeMapWithOverride (parseJSON "{\"a\":1,\"n\":{\"x\":1}}") (parseJSON "{\"a\":2,\"b\":3,\"n\":{\"x\":5,\"y\":2}}") | toJSON }}`,
	`{{ byKey nil | len }} {{ byTag nil | len }} {{ byPort nil | len }} {{ explode nil | len }} {{ byMeta "m" nil | len }}`,
	`{{ toJSON (byKey nil) }} {{ toJSON (byTag nil) }} {{ toJSON (byPort nil) }} {{ toJSON (explode nil) }} {{ toJSON (byMeta "m" nil) }}`,
	`{{ range $k, $v := byKey nil }}{{ $k }}{{ end }}{{ with byKey nil }}non-empty{{ else }}empty{{ end }}`,
	`{{ range loop 3 }}{{ . }}{{ end }} {{ range loop 2 5 }}{{ . }}{{ end }} {{ range loop "2" "4" }}{{ . }}{{ end }}`,
	// Arithmetic: operands and result types as consul-template takes them.
	`{{ add 1 2 }} {{ subtract 3 10 }} {{ multiply 4 5 }} {{ divide 2 9 }} {{ modulo 4 9 }} {{ 10 | subtract 3 }}`,
	`{{ add 1.5 2 }} {{ subtract 0.5 10 }} {{ multiply 2 2.5 }} {{ divide 2 9.0 }} {{ divide 4.0 1 }}`,
	`{{ add (parseUint "3") (parseUint "4") }} {{ subtract (parseUint "3") (parseInt "-4") }} {{ add (parseUint "3") 1.5 }} {{ subtract 5 (parseUint "3") }}`,
	`{{ minimum 1 2 }} {{ maximum 1 2 }} {{ minimum 2 2.5 }} {{ maximum 2 2.5 }} {{ minimum (parseUint "7") -1 }} {{ maximum (parseUint "7") 9 }} {{ minimum 3 3 }}`,
	`{{ add "1" 2 }}`,
	`{{ add 1 "2" }}`,
	`{{ modulo 2.0 5 }}`,
	`{{ modulo 2 5.0 }}`,
	`{{ divide 0 1 }}`,
	`{{ minimum "a" 1 }}`,
	// Scratch and templates.
	`{{ scratch.Set "a" 1 }}{{ scratch.SetX "a" 2 }}{{ scratch.SetX "b" 3 }}{{ scratch.Get "a" }} {{ scratch.Get "b" }} {{ scratch.Key "a" }} {{ scratch.Key "z" }} {{ scratch.Get "z" }}`,
	`{{ scratch.MapSet "m" "b" 2 }}{{ scratch.MapSet "m" "a" 1 }}{{ scratch.MapSetX "m" "a" 9 }}{{ scratch.MapSetX "m" "c" 3 }}{{ range scratch.MapValues "m" }}{{ . }}{{ end }} {{ scratch.MapValues "none" }}`,
	`{{ scratch.Set "s" "x" }}{{ scratch.MapSet "s" "k" 1 }}`,
	`{{ define "greet" }}hello {{ . }}{{ end }}{{ executeTemplate "greet" "you" }} {{ executeTemplate "greet" }}`,
	`{{ define "t" }}x{{ end }}{{ executeTemplate "t" 1 2 }}`,
	`{{ timestamp "2006" }}`,
	`{{ timestamp "2006" "x" }}`,
	// Sprig, under its prefix.
	`{{ "hello" | sprig_upper }} {{ list 1 2 | len }}`,
	`{{ "hello" | sprig_upper }} {{ sprig_list 1 2 3 | sprig_last }} {{ "" | sprig_default "dflt" }} {{ sprig_b64enc "x" }} {{ "a b" | sprig_replace " " "_" }} {{ sprig_dict "k" "v" | sprig_toJson }}`,
	`{{ sprig_semverCompare ">=1.2" "1.3.0" }} {{ sprig_trunc 3 "abcdef" }} {{ sprig_sha256sum "x" }} {{ sprig_indent 2 "a\nb" }}`,
}

func TestSameOutputAsConsulTemplate(t *testing.T) {
	for _, text := range sameAsConsulTemplate {
		t.Run(text, func(t *testing.T) {
			want, wantErr := renderWithConsulTemplate(text)
			got, gotErr := renderOurs(text)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("consul-template: %q, error %v\nours: %q, error %v", want, wantErr, got, gotErr)
			}
			if wantErr == nil && got != want {
				t.Fatalf("output differs\nconsul-template: %q\nours:            %q", want, got)
			}
		})
	}
}

// TestSameOutputCanFail: the comparison sees a difference when there is one.
func TestSameOutputCanFail(t *testing.T) {
	want, _ := renderWithConsulTemplate(`{{ toJSON (parseJSON "{\"a\":1}") }}`)
	got, _ := renderOurs(`{{ toJSONPretty (parseJSON "{\"a\":1}") }}`)
	if got == want {
		t.Fatalf("toJSON and toJSONPretty render the same %q", got)
	}
}

func renderOurs(text string) (string, error) {
	tp, err := New("x", text)
	if err != nil {
		// Refused by the sandbox, or a parse error consul-template also makes.
		return "", err
	}
	res, err := tp.Execute(func(r Request) (any, bool) {
		if r.Key() != "read secret/data/a" {
			return nil, false
		}
		return &Secret{RequestID: "req-1", LeaseDuration: 0, Data: kvAnswer(), Warnings: []string{"w"}}, true
	})
	if err != nil {
		return "", err
	}
	return string(res.Output), nil
}

func renderWithConsulTemplate(text string) (string, error) {
	if err := Validate(text); err != nil {
		// Not something the agent runs: both must refuse it.
		return "", err
	}
	tp, err := ct.NewTemplate(&ct.NewTemplateInput{
		Contents:      text,
		ErrMissingKey: true,
		ExtFuncMap: map[string]any{"secret": func(path string, _ ...string) (*dep.Secret, error) {
			if path != "secret/data/a" {
				return nil, nil
			}
			return &dep.Secret{RequestID: "req-1", Data: kvAnswer(), Warnings: []string{"w"}}, nil
		}},
	})
	if err != nil {
		return "", err
	}
	res, err := tp.Execute(&ct.ExecuteInput{Brain: ct.NewBrain()})
	if err != nil {
		return "", err
	}
	return string(res.Output), nil
}

// TestEveryAllowedFunctionIsImplemented: a template may call each function
// the sandbox allows.
func TestEveryAllowedFunctionIsImplemented(t *testing.T) {
	for name := range allowed {
		text := "{{ if false }}{{ " + name + " }}{{ end }}"
		if name == "executeTemplate" {
			// Its template must be named by a constant, and not itself.
			text = `{{ define "t" }}{{ end }}{{ if false }}{{ executeTemplate "t" }}{{ end }}`
		}
		if _, err := New("x", text); err != nil {
			t.Errorf("allowed %q: %v", name, err)
		}
	}
	if _, err := New("x", "{{ if false }}{{ sprig_upper }}{{ end }}"); err != nil {
		t.Errorf("sprig_upper: %v", err)
	}
	// Every sprig function the sandbox admits, the agent binds.
	admitted := 0
	for name := range sprigAll() {
		if !Allowed("sprig_" + name) {
			continue // not hermetic, or an unbounded generator
		}
		admitted++
		if _, err := New("x", "{{ if false }}{{ sprig_"+name+" }}{{ end }}"); err != nil {
			t.Errorf("sprig_%s: %v", name, err)
		}
	}
	if admitted == 0 || admitted == len(sprigAll()) {
		t.Fatalf("%d of sprig's %d functions admitted: the check sees nothing", admitted, len(sprigAll()))
	}
}

// TestTimestamp fixes the clock, which the comparison above cannot.
func TestTimestamp(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Date(2026, 11, 27, 21, 30, 5, 0, time.UTC) }
	for text, want := range map[string]string{
		`{{ timestamp }}`:                       "2026-11-27T21:30:05Z",
		`{{ timestamp "unix" }}`:                "1795815005",
		`{{ timestamp "2006-01-02 15:04:05" }}`: "2026-11-27 21:30:05",
	} {
		if got, err := renderOurs(text); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", text, got, err, want)
		}
	}
}

// TestSecretArgumentsAsConsulTemplate: `secret "path" "k=v" ...` asks
// Vault for the same write as consul-template's own secret function: keys
// and values trimmed of white space, empty arguments skipped, an argument
// without "=" an error. The request consul-template records and ours are
// compared through consul-template's own description of a write (its
// path and a hash of its data).
func TestSecretArgumentsAsConsulTemplate(t *testing.T) {
	for _, text := range []string{
		`{{ secret "pki/issue/web" "common_name=a.example" "ttl=1h" }}`,
		`{{ secret "pki/issue/web" "common_name = a.example " " ttl=1h" }}`,
		`{{ secret "pki/issue/web" "" "ttl=1h" "" }}`,
		`{{ secret "pki/issue/web" "" }}`,
		`{{ secret "pki/issue/web" " k = a = b " }}`,
		`{{ secret "pki/issue/web" "=v" }}`,
		`{{ secret "pki/issue/web" "k=" }}`,
		`{{ secret "pki/issue/web" "no-equals" }}`,
		`{{ secret "pki/issue/web" "ttl=1h" " " }}`,
	} {
		t.Run(text, func(t *testing.T) {
			want, wantErr := consulTemplateRequest(text)
			got, gotErr := ourRequest(text)
			if (wantErr == nil) != (gotErr == nil) || got != want {
				t.Fatalf("consul-template: %s, error %v\nours:            %s, error %v", want, wantErr, got, gotErr)
			}
		})
	}
}

// consulTemplateRequest is the one Vault request consul-template's own
// secret function records for text.
func consulTemplateRequest(text string) (string, error) {
	tp, err := ct.NewTemplate(&ct.NewTemplateInput{Contents: text})
	if err != nil {
		return "", err
	}
	res, err := tp.Execute(&ct.ExecuteInput{Brain: ct.NewBrain()})
	if err != nil {
		return "", err
	}
	if l := res.Missing.List(); len(l) == 1 {
		return l[0].String(), nil
	}
	return "", fmt.Errorf("%d requests", res.Missing.Len())
}

// ourRequest is our one request for text, described by consul-template.
func ourRequest(text string) (string, error) {
	tp, err := New("x", text)
	if err != nil {
		return "", err
	}
	res, err := tp.Execute(lookupOf(nil))
	if err != nil {
		return "", err
	}
	if len(res.Missing) != 1 || res.Missing[0].Op != OpWrite {
		return "", fmt.Errorf("requests %v", res.Missing)
	}
	data := map[string]any{}
	for k, v := range res.Missing[0].Data {
		data[k] = v
	}
	d, err := dep.NewVaultWriteQuery(res.Missing[0].Path, data)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
