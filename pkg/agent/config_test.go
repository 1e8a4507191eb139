package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

func validConfig() Config {
	return Config{
		Mode:           ModeNative,
		Vault:          Vault{Address: "https://vault:8200", AuthPath: "auth/kubernetes", Role: "app"},
		TokenFile:      "/var/run/secrets/blinkchamber.io/token",
		SecretsDir:     "/blinkchamber/secrets",
		RenderInterval: Duration{5 * time.Second},
		HealthAddr:     "127.0.0.1:8099",
		Secrets:        []Secret{{Name: "db", Template: `{{ with secret "a" }}{{ .Data.x }}{{ end }}`, File: "db", Perms: 0o400}},
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string // the JSON path the error must name; "" for valid
	}{
		{"valid", func(map[string]any) {}, ""},
		{"unknown field", func(m map[string]any) { m["tokn"] = "x" }, "tokn"},
		{"bad mode", func(m map[string]any) { m["mode"] = "daemon" }, "mode"},
		{"relative token file", func(m map[string]any) { m["tokenFile"] = "token" }, "tokenFile"},
		{"sidecar without state dir", func(m map[string]any) { m["mode"] = "sidecar" }, "stateDir"},
		{"interval too short", func(m map[string]any) { m["renderInterval"] = "10ms" }, "renderInterval"},
		{"health not on localhost", func(m map[string]any) { m["healthAddr"] = "0.0.0.0:8099" }, "healthAddr"},
		{"metrics on the pod IP", func(m map[string]any) { m["metricsAddr"] = ":9102" }, ""},
		{"metrics without a port", func(m map[string]any) { m["metricsAddr"] = "9102" }, "metricsAddr"},
		{"metrics port out of range", func(m map[string]any) { m["metricsAddr"] = ":70000" }, "metricsAddr"},
		{"metrics on the health port", func(m map[string]any) { m["metricsAddr"] = ":8099" }, "metricsAddr"},
		{"vault address", func(m map[string]any) { m["vault"].(map[string]any)["address"] = "vault" }, "vault.address"},
		{"role", func(m map[string]any) { m["vault"].(map[string]any)["role"] = "" }, "vault.role"},
		{"template edited by hand", func(m map[string]any) {
			m["secrets"].([]any)[0].(map[string]any)["template"] = `{{ plugin "/bin/sh" }}`
		}, "secrets[0].template"},
		{"file escapes", func(m map[string]any) { m["secrets"].([]any)[0].(map[string]any)["file"] = "../x" }, "secrets[0].file"},
		{"perms", func(m map[string]any) { m["secrets"].([]any)[0].(map[string]any)["perms"] = "4755" }, "perms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			b, _ := json.Marshal(&c)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			tc.edit(m)
			b, _ = json.Marshal(m)
			_, err := Decode(b)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Decode error %v does not name %s", err, tc.field)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{&PermanentError{errors.Join(ErrLoginRefused)}, ExitLoginRefused},
		{&PermanentError{ErrDenied}, ExitAccess},
		{&PermanentError{ErrNotFound}, ExitAccess},
		{&PermanentError{ErrTemplate}, ExitTemplate},
		{errors.New("vault down"), ExitFailure},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := validConfig()
	b, _ := json.Marshal(&c)
	f.Add(b)
	f.Add([]byte(`{"mode":"init"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must validate and survive a round trip.
		again, err := cfg.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode([]byte(again)); err != nil {
			t.Fatalf("re-decoding a valid config: %v", err)
		}
	})
}

// TestSecretPathTokenEndpointRefused: a secret declared by path alone (its
// default template is not parsed) is refused when the path answers with a
// token, as a template's literal path is.
func TestSecretPathTokenEndpointRefused(t *testing.T) {
	for _, p := range []string{"auth/token/lookup-self", "auth/kubernetes/login", "sys/wrapping/unwrap", "cubbyhole/response"} {
		cfg := validConfig()
		cfg.Secrets[0].Path, cfg.Secrets[0].Template = p, DefaultTemplate(p)
		errs := cfg.Validate()
		if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "secrets[0].path") ||
			!strings.Contains(errs.ToAggregate().Error(), tmpl.ErrTokenEndpoint.Error()) {
			t.Errorf("%s: %v, want the path refused", p, errs)
		}
	}
}
