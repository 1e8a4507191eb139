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

	"github.com/go-logr/logr/funcr"
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
