package template

import (
	"errors"
	"strings"
	"testing"

	ct "github.com/hashicorp/consul-template/template"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		text string
		want error
	}{
		{"kv v2 field", `{{ with secret "secret/data/a/b" }}{{ .Data.data.password }}{{ end }}`, nil},
		{"range and helpers", `{{ range $k, $v := (secret "x").Data }}{{ $k | toUpper }}={{ $v | base64Encode }}{{ end }}`, nil},
		{"sprig allowed", `{{ "a" | sprig_upper }}`, nil},
		{"define and template", `{{ define "x" }}y{{ end }}{{ template "x" . }}`, nil},
		{"empty", "   ", ErrSyntax},
		{"unclosed", `{{ with secret "x" }}`, ErrSyntax},
		{"too large", strings.Repeat("a", MaxSize+1), ErrSyntax},
		{"plugin", `{{ plugin "/bin/sh" }}`, ErrDenied},
		{"plugin piped", `{{ "x" | plugin "/bin/sh" }}`, ErrDenied},
		{"writeToFile", `{{ writeToFile "/tmp/x" "" "" "0644" "x" }}`, ErrDenied},
		{"env", `{{ env "HOME" }}`, ErrDenied},
		{"mustEnv", `{{ mustEnv "HOME" }}`, ErrDenied},
		{"sprig env", `{{ sprig_env "HOME" }}`, ErrDenied},
		{"file", `{{ file "/etc/passwd" }}`, ErrDenied},
		{"consul key", `{{ key "x" }}`, ErrDenied},
		{"denied in else", `{{ if true }}{{ else }}{{ env "X" }}{{ end }}`, ErrDenied},
		{"denied in range", `{{ range $x := (file "/x") }}{{ end }}`, ErrDenied},
		{"denied in define", `{{ define "t" }}{{ plugin "x" }}{{ end }}`, ErrDenied},
		{"denied in with", `{{ with (env "X") }}{{ . }}{{ end }}`, ErrDenied},
		{"denied as parenthesised argument", `{{ printf "%s" (env "X") }}`, ErrDenied},
		{"unknown function", `{{ nope 1 }}`, ErrDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.text)
			if tc.want == nil && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSprigFunctionsAllowedOnlyWhenBound: a sprig_ name passes the
// injector's admission check only when the agent binds it (sprig's
// hermetic functions), so no admitted template fails at the agent's start;
// the refusal names the function and why.
func TestSprigFunctionsAllowedOnlyWhenBound(t *testing.T) {
	cases := []struct {
		text, reason string // reason "" when allowed
	}{
		{`{{ "a" | sprig_upper }}`, ""},
		{`{{ sprig_list 1 2 | sprig_toJson }}`, ""},
		{`{{ sprig_now }}`, `"sprig_now" is not one of sprig's hermetic functions: it reads the clock`},
		{`{{ sprig_getHostByName "example.com" }}`, `"sprig_getHostByName" is not one of sprig's hermetic functions`},
		{`{{ sprig_randAlpha 8 }}`, `"sprig_randAlpha" is not one of sprig's hermetic functions`},
		{`{{ sprig_uuidv4 }}`, `"sprig_uuidv4" is not one of sprig's hermetic functions`},
		{`{{ sprig_env "HOME" }}`, `"sprig_env" is not one of sprig's hermetic functions`},
		{`{{ sprig_notAFunction }}`, `"sprig_notAFunction" is not a sprig function`},
		{`{{ sprig_ }}`, `"sprig_" is not a sprig function`},
		{`{{ sprig_repeat 3 "x" }}`, `"sprig_repeat" builds a string of unbounded length`},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			err := Validate(tc.text)
			_, newErr := New("x", tc.text)
			if tc.reason == "" {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, New = %v; want both to accept", err, newErr)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Validate = %v, want ErrDenied saying %q", err, tc.reason)
			}
			if !errors.Is(newErr, ErrDenied) {
				t.Fatalf("New = %v, want ErrDenied", newErr)
			}
		})
	}
}

// TestAllowedFunctionsExist proves the allowlist names functions that
// consul-template really defines: a template calling an undefined function
// fails to parse, one calling a defined function does not.
func TestAllowedFunctionsExist(t *testing.T) {
	for name := range allowed {
		if err := ctParse(name); err != nil {
			t.Errorf("allowlisted %q is unknown to consul-template: %v", name, err)
		}
	}
	for name := range denied {
		if err := ctParse(name); err != nil {
			t.Errorf("denied %q is unknown to consul-template (stale list?): %v", name, err)
		}
	}
	if ctParse("surelyNotAFunction") == nil {
		t.Fatal("the existence check cannot fail: an unknown function parsed")
	}
}

func ctParse(fn string) error {
	tmpl, err := ct.NewTemplate(&ct.NewTemplateInput{Contents: "{{ if false }}{{ " + fn + " }}{{ end }}"})
	if err != nil {
		return err
	}
	_, err = tmpl.Execute(&ct.ExecuteInput{Brain: ct.NewBrain()})
	return err
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{{ with secret "a" }}{{ .Data.data.x }}{{ end }}`, `{{ plugin "x" }}`, `{{`, `{{ define "a" }}{{ template "a" }}{{ end }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Validate(s)
		if err != nil && !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrDenied) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
