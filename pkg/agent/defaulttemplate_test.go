package agent

import (
	"strings"
	"testing"

	"github.com/blinkchamber/blinkchamber/pkg/template"
)

// TestDefaultTemplateIsValid is what lets validateSecrets skip parsing the
// default template: for every path ValidateVaultPath accepts, it passes
// template.Validate.
func TestDefaultTemplateIsValid(t *testing.T) {
	for _, p := range []string{
		"secret/data/app/db", "a", "database/creds/app-ro", "pki/issue/web.example.com",
		"kv/data/" + strings.Repeat("x", 500), "k/+@=:_-.Z9", "a..b/c.", "x/{{/y",
	} {
		if ValidateVaultPath(p) != nil {
			continue // "x/{{/y" is refused by the path check, which is the point
		}
		if err := template.Validate(DefaultTemplate(p)); err != nil {
			t.Errorf("DefaultTemplate(%q): %v", p, err)
		}
	}
}

// FuzzDefaultTemplate searches for a path that ValidateVaultPath accepts
// but whose default template does not parse.
func FuzzDefaultTemplate(f *testing.F) {
	for _, p := range []string{"secret/data/app/db", "a", `x"}}`, "k/+@=:_-.Z9"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateVaultPath(p) != nil {
			return
		}
		if err := template.Validate(DefaultTemplate(p)); err != nil {
			t.Fatalf("DefaultTemplate(%q) fails validation: %v", p, err)
		}
	})
}

// TestValidateSecretsStillChecksTemplates: only the default template of a
// valid path is taken on trust; any other template is parsed.
func TestValidateSecretsStillChecksTemplates(t *testing.T) {
	cases := []struct {
		name    string
		secret  Secret
		wantErr bool
	}{
		{"default template", Secret{Name: "a", File: "a", Perms: 0o400, Path: "secret/data/a", Template: DefaultTemplate("secret/data/a")}, false},
		{"broken template with a path", Secret{Name: "a", File: "a", Perms: 0o400, Path: "secret/data/a", Template: "{{ with"}, true},
		{"default template of another path, broken", Secret{Name: "a", File: "a", Perms: 0o400, Path: "secret/data/a", Template: DefaultTemplate("secret/data/b") + "{{"}, true},
		{"invalid path with its default template", Secret{Name: "a", File: "a", Perms: 0o400, Path: `bad"}}{{`, Template: DefaultTemplate(`bad"}}{{`)}, true},
	}
	for _, tc := range cases {
		errs := validateSecrets(nil, []Secret{tc.secret})
		hasTemplateErr := false
		for _, e := range errs {
			if strings.HasSuffix(e.Field, "template") {
				hasTemplateErr = true
			}
		}
		if tc.wantErr != hasTemplateErr {
			t.Errorf("%s: errors %v, want a template error: %v", tc.name, errs, tc.wantErr)
		}
	}
}
