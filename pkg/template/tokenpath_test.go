package template

import (
	"errors"
	"strings"
	"testing"
)

// TestTokenEndpoints: every spelling of a token endpoint that Vault would
// route to it is refused, and ordinary secret paths are not.
func TestTokenEndpoints(t *testing.T) {
	refused := []string{
		"auth/token/lookup-self", "auth/token/lookup", "auth/token/create", "auth/token/create-orphan",
		"auth/token/renew-self", "auth/token/roles/x", "auth/token/accessors", "auth/token/lookup-accessor",
		"auth/kubernetes/login", "auth/approle/login", "auth/userpass/login/bob", "auth/oidc/oidc/callback",
		"auth/approle/role/app/secret-id", "auth/token",
		"sys/wrapping/wrap", "sys/wrapping/unwrap", "sys/wrapping/lookup", "sys/wrapping/rewrap",
		"cubbyhole/response", "cubbyhole/anything", "identity/oidc/token/app",
		"sys/generate-root/attempt", "sys/generate-recovery-token/update", "sys/decode-token",
		"sys/replication/performance/primary/secondary-token", "sys/control-group/request",
		// Spellings: each is routed (or cleaned by the client) to the same handler,
		// or refused anyway because it might be.
		"/auth/token/lookup-self", "v1/auth/token/lookup-self", "/v1/auth/token/lookup-self", "v1/v1/auth/token/lookup-self",
		"auth//token/lookup-self", "auth/token//lookup-self", "auth/token/lookup-self/", "./auth/token/lookup-self",
		"secret/../auth/token/lookup-self", "auth/./token/lookup-self", "auth/x/../token/lookup-self",
		"auth%2Ftoken%2Flookup-self", "auth%2ftoken/lookup-self", "%61uth/token/lookup-self", "auth/token/%6cookup-self",
		"auth%252Ftoken%252Flookup-self", "AUTH/token/lookup-self", "auth/TOKEN/LOOKUP-SELF",
		"auth/token/lookup-self?x=1", "auth/token/lookup-self#x", `auth\token\lookup-self`,
		"sys/wrapping/unwrap?token=x", "SYS/Wrapping/unwrap",
		// A namespace prefix (Vault Enterprise) reaches the same endpoints.
		"ns1/auth/token/lookup-self", "ns1/ns2/sys/wrapping/unwrap",
	}
	for _, p := range refused {
		err := checkTokenEndpoint(p)
		if !errors.Is(err, ErrTokenEndpoint) {
			t.Errorf("%q: %v, want refused", p, err)
			continue
		}
		if strings.Contains(p, "lookup-self") && strings.Contains(err.Error(), p) {
			t.Errorf("%q: the error quotes the path: %v", p, err)
		}
	}
	allowed := []string{
		"secret/data/app/db", "secret/metadata/app", "database/creds/app", "pki/issue/web",
		"transit/encrypt/app", "secret/data/auth", "secret/data/app/token", "kv/login",
		"sys/leases/lookup", "identity/oidc/.well-known/keys", "authx/token/lookup-self",
		"secret/data/cubbyhole", "sys/wrappingx/unwrap",
	}
	for _, p := range allowed {
		if err := checkTokenEndpoint(p); err != nil {
			t.Errorf("%q: %v, want allowed", p, err)
		}
	}
}

// TestValidateRefusesTokenEndpoints: a literal token path given to a
// Vault function is refused at admission, named by function and
// position; a computed one is left to the render-time check.
func TestValidateRefusesTokenEndpoints(t *testing.T) {
	refused := []string{
		`{{ with secret "auth/token/lookup-self" }}{{ .Data.id }}{{ end }}`,
		`{{ secret "auth/token/create" "policies=default" }}`,
		`{{ range secrets "auth/token/accessors" }}{{ . }}{{ end }}`,
		`{{ with "auth/token/lookup-self" | secret }}{{ .Data.id }}{{ end }}`,
		`{{ define "x" }}{{ secret "/v1/auth//token/lookup-self/" }}{{ end }}`,
		`{{ if true }}{{ else }}{{ with secret "sys/wrapping/unwrap" }}{{ end }}{{ end }}`,
		`{{ range $x := (secret "auth/kubernetes/login" "role=x").Data }}{{ end }}`,
	}
	for _, text := range refused {
		err := Validate(text)
		if !errors.Is(err, ErrDenied) || !errors.Is(err, ErrTokenEndpoint) {
			t.Errorf("%s: %v, want a token endpoint refusal", text, err)
			continue
		}
		if !strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), ":1:") {
			t.Errorf("%s: %v: want the function and its position", text, err)
		}
	}
	if err := Validate(`{{ with secret (print "auth/" "token/lookup-self") }}{{ .Data.id }}{{ end }}`); err != nil {
		t.Errorf("a computed path is checked while rendering, not at admission: %v", err)
	}
}

// TestRenderRefusesComputedTokenEndpoints: a path computed while rendering
// (from constants, or from another secret's data) is refused before it is
// recorded, so the agent never asks Vault for it; the error names the
// function and says why, without the path.
func TestRenderRefusesComputedTokenEndpoints(t *testing.T) {
	kv := &Secret{Data: map[string]any{"data": map[string]any{"p": "auth/token/lookup-self"}}}
	cases := []string{
		`{{ with secret (print "auth/" "token/lookup-self") }}{{ .Data.id }}{{ end }}`,
		`{{ with secret (printf "%s/%s" "AUTH/TOKEN" "lookup-self") }}{{ .Data.id }}{{ end }}`,
		`{{ with secret "secret/data/a" }}{{ with secret .Data.data.p }}{{ .Data.id }}{{ end }}{{ end }}`,
		`{{ range secrets (print "auth/token/" "accessors") }}{{ . }}{{ end }}`,
		`{{ with secret (print "sys/wrapping/" "unwrap") "token=x" }}{{ . }}{{ end }}`,
	}
	for _, text := range cases {
		tm, err := New("t", text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		var asked []string
		lookup := func(r Request) (any, bool) {
			asked = append(asked, r.Path)
			return lookupOf(map[string]any{"read secret/data/a": kv})(r)
		}
		_, err = tm.Execute(lookup)
		if !errors.Is(err, ErrTokenEndpoint) && !strings.Contains(errString(err), ErrTokenEndpoint.Error()) {
			t.Errorf("%s: %v, want a token endpoint refusal", text, err)
		}
		for _, p := range asked {
			if checkTokenEndpoint(p) != nil {
				t.Errorf("%s: asked for a token endpoint", text)
			}
		}
		// The template's own text may be quoted (its position's context);
		// a path read from a secret may not.
		if !strings.Contains(text, "lookup-self") && strings.Contains(errString(err), "lookup-self") {
			t.Errorf("%s: the error quotes the computed path: %v", text, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
