package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// TestVaultCertificateVerified: the agent verifies Vault's certificate
// unless its config says otherwise; VAULT_* variables in its environment
// (which the Vault client library reads by itself) change nothing; and a
// config that skips verification gets a warning at every start.
func TestVaultCertificateVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"id":"x"}}`))
	}))
	defer srv.Close()
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_TLS_SERVER_NAME", "elsewhere.example")
	cases := []struct {
		name    string
		vault   Vault
		trusted bool
		warns   bool
	}{
		{"no CA: refused", Vault{}, false, false},
		{"the server's CA: trusted", Vault{CACert: caPEM(t, srv)}, true, false},
		{"skip verification: trusted, with a warning", Vault{TLSSkipVerify: true}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			log := funcr.New(func(prefix, args string) { logs.WriteString(args + "\n") }, funcr.Options{})
			cfg := validConfig()
			cfg.Vault.Address = srv.URL
			cfg.Vault.CACert, cfg.Vault.TLSSkipVerify = tc.vault.CACert, tc.vault.TLSSkipVerify
			a, err := New(&cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.vault.Logical().ReadWithContext(context.Background(), "secret/data/x")
			var unknown x509.UnknownAuthorityError
			switch {
			case tc.trusted && err != nil:
				t.Fatalf("read through TLS: %v", err)
			case !tc.trusted && !errors.As(err, &unknown):
				t.Fatalf("read = %v, want the certificate refused", err)
			}
			if got := strings.Contains(logs.String(), "WARNING: Vault's TLS certificate is NOT verified"); got != tc.warns {
				t.Fatalf("warning logged = %v, want %v; logs:\n%s", got, tc.warns, logs.String())
			}
		})
	}
}

func caPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

// TestTemplateGuard: a template's request for a token endpoint is refused
// by the agent's transport before it is sent, whatever route built it;
// the agent's own requests (login, renewal, lookup-self) pass.
func TestTemplateGuard(t *testing.T) {
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent = append(sent, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"id":"agent-token-value"}}`))
	}))
	defer srv.Close()
	cfg := validConfig()
	cfg.Vault.Address = srv.URL
	a, err := New(&cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"auth/token/lookup-self", "auth//token/./lookup-self/", "secret/../auth/token/lookup-self", "sys/wrapping/unwrap"} {
		_, err := a.do(ctx, tmpl.Request{Op: tmpl.OpRead, Path: p})
		if !errors.Is(err, tmpl.ErrTokenEndpoint) || !IsPermanent(err) {
			t.Errorf("%q: %v, want a permanent token endpoint refusal", p, err)
		}
		if err != nil && strings.Contains(err.Error(), "lookup-self") {
			t.Errorf("%q: the error quotes the path: %v", p, err)
		}
	}
	if len(sent) != 0 {
		t.Fatalf("sent %v, want nothing", sent)
	}
	if _, err := a.do(ctx, tmpl.Request{Op: tmpl.OpRead, Path: "secret/data/app/db"}); err != nil {
		t.Fatalf("an ordinary read: %v", err)
	}
	if _, err := a.vault.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Fatalf("the agent's own lookup-self: %v", err)
	}
	if len(sent) != 2 || sent[1] != "/v1/auth/token/lookup-self" {
		t.Fatalf("sent %v, want the ordinary read and the agent's own lookup", sent)
	}

	// Under a Vault namespace that is itself a token endpoint's prefix,
	// the path Vault serves is the namespace's: refused too.
	cfg.Vault.Namespace = "auth/token"
	b, err := New(&cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.do(ctx, tmpl.Request{Op: tmpl.OpRead, Path: "lookup-self"}); !errors.Is(err, tmpl.ErrTokenEndpoint) {
		t.Errorf("lookup-self under namespace auth/token: %v, want a token endpoint refusal", err)
	}
	if len(sent) != 2 {
		t.Fatalf("sent %v, want nothing more", sent)
	}
}
