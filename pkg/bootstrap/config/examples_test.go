package config

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// examplesDir holds one example config per environment, plus the demo's.
const examplesDir = "../../../examples"

func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestExamples: every example loads and validates, survives a round trip
// through YAML unchanged, and the per-environment ones say what they are.
func TestExamples(t *testing.T) {
	files := exampleFiles(t)
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if errs := c.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			assertRoundTrip(t, c)
			if env := Environment(name[:len(name)-len(".yaml")]); env == Development || env == Staging || env == Production {
				if c.Environment != env {
					t.Errorf("%s has environment %q", name, c.Environment)
				}
			}
		})
	}
	for _, want := range []string{"development.yaml", "staging.yaml", "production.yaml", "demo.yaml"} {
		if !seen[want] {
			t.Errorf("examples/%s is missing", want)
		}
	}
}

// TestDemoExample pins what the demo relies on.
func TestDemoExample(t *testing.T) {
	c, err := Load(filepath.Join(examplesDir, "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Shamir{Shares: 1, Threshold: 1, KeyStore: KeyStore{Type: KeyStoreFile, Path: "./.blinkchamber/vault-keys.json"}}
	if c.Environment != Development || c.Vault.Seal.Shamir == nil || *c.Vault.Seal.Shamir != want {
		t.Errorf("environment %q, seal %+v", c.Environment, c.Vault.Seal)
	}
	if c.Vault.Audit.Type != AuditFile {
		t.Errorf("audit %+v", c.Vault.Audit)
	}
	wantApps := []App{{Name: "shop", Namespace: "shop", ServiceAccount: "shop", Secrets: []Secret{{
		Name:     "db",
		Data:     map[string]string{"username": "shop", "note": "demo-value-not-a-secret"},
		Generate: map[string]Generator{"password": {Length: 24, Charset: CharsetAlphanumeric}},
	}}}}
	if !reflect.DeepEqual(c.Apps, wantApps) {
		t.Errorf("apps %+v", c.Apps)
	}
	if got := c.Apps[0].KVDataPath(c.Vault.KVMount, "db"); got != "secret/data/shop/shop/db" {
		t.Errorf("KV path %s", got)
	}
}

// assertRoundTrip checks that a parsed config written back as YAML parses
// to the same config.
func assertRoundTrip(t testing.TB, c *Config) {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshalling: %v", err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("a parsed config does not parse again: %v\n%s", err, out)
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Fatalf("round trip changed the config:\n%s\n%s", a, b)
	}
}
