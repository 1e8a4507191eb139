package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	k8sauth "github.com/hashicorp/vault/api/auth/kubernetes"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// Errors the agent classifies Vault's answers into. A permanent error will
// not go away by retrying (a wrong role, a denied path); a transient one may
// (Vault down, sealed, a network error).
var (
	ErrLoginRefused = errors.New("vault refused the login")
	ErrDenied       = errors.New("vault refused access to the path")
	ErrNotFound     = errors.New("vault has no secret at the path")
	ErrTokenInvalid = errors.New("vault token is no longer valid")
	ErrTemplate     = errors.New("template failed")
)

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or what it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// requestTimeout bounds one request to Vault (the client library's default).
const requestTimeout = 60 * time.Second

// newVaultClient builds a client from the config. Requests are counted by
// a wrapping transport, for metrics and benchmarks.
func newVaultClient(cfg *Config, requests *atomic.Int64) (*api.Client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault client defaults: %w", vc.Error)
	}
	vc.Address = cfg.Vault.Address
	// DefaultConfig also reads VAULT_* variables, VAULT_SKIP_VERIFY among
	// them; the agent's only settings are its config, so undo whatever the
	// environment changed.
	tr, ok := vc.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("vault client defaults: unexpected transport %T", vc.HttpClient.Transport)
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: tr.TLSClientConfig.NextProtos}
	tr.Proxy = http.ProxyFromEnvironment
	vc.Timeout, vc.Limiter, vc.SRVLookup = requestTimeout, nil, false
	// Retries are the agent's business (with backoff and jitter), so that
	// one request never hides a minute of waiting.
	vc.MaxRetries = 0
	if err := vc.ConfigureTLS(&api.TLSConfig{CACertBytes: []byte(cfg.Vault.CACert), Insecure: cfg.Vault.TLSSkipVerify}); err != nil {
		return nil, fmt.Errorf("vault.caCert: %w", err)
	}
	vc.HttpClient.Transport = &countingTransport{next: templateGuard{next: vc.HttpClient.Transport}, n: requests}
	c, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	// The client must not pick up VAULT_TOKEN from the environment: the
	// agent's identity is the pod's ServiceAccount, nothing else.
	c.ClearToken()
	if cfg.Vault.Namespace != "" {
		c.SetNamespace(cfg.Vault.Namespace)
	}
	return c, nil
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// templateRequest marks the context of a request a template asked for
// (fetch), as opposed to the agent's own login, renewals and lookups.
type templateRequest struct{}

// forTemplate marks ctx as carrying a template's request.
func forTemplate(ctx context.Context) context.Context {
	return context.WithValue(ctx, templateRequest{}, true)
}

// templateGuard refuses, before sending, any template request whose final
// URL path is an endpoint that answers with a token (tmpl.CheckTokenEndpoint).
// It is the last point every template request passes, after the KV v2
// rewriting and the client's own path cleaning, so no helper written later
// can reach the agent's token by another route. The template package
// refuses such paths first, with the template position; this holds even
// if that check is bypassed.
type templateGuard struct{ next http.RoundTripper }

func (g templateGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Context().Value(templateRequest{}) != nil {
		// Vault Enterprise routes a request under its namespace header:
		// the path it serves is the namespace, then the URL's path.
		ns := r.Header.Get(api.NamespaceHeaderName)
		for _, p := range []string{r.URL.Path, r.URL.EscapedPath(), ns + "/" + r.URL.Path} {
			if err := tmpl.CheckTokenEndpoint(p); err != nil {
				return nil, &PermanentError{err}
			}
		}
	}
	return g.next.RoundTrip(r)
}

// login authenticates with the projected token, read afresh from the file
// each time because the kubelet rotates it.
func login(ctx context.Context, c *api.Client, cfg *Config) (*api.Secret, error) {
	mount := strings.TrimPrefix(cfg.Vault.AuthPath, "auth/")
	auth, err := k8sauth.NewKubernetesAuth(cfg.Vault.Role,
		k8sauth.WithServiceAccountTokenPath(cfg.TokenFile), k8sauth.WithMountPath(mount))
	if err != nil {
		// The token file is missing or unreadable: the pod spec is wrong.
		return nil, &PermanentError{fmt.Errorf("reading the ServiceAccount token %s: %w", cfg.TokenFile, err)}
	}
	s, err := auth.Login(ctx, c)
	if err != nil {
		return nil, classifyLogin(err, cfg)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault login at %s returned no token", cfg.Vault.AuthPath)
	}
	return s, nil
}

func classifyLogin(err error, cfg *Config) error {
	where := fmt.Sprintf("role %q at %s", cfg.Vault.Role, cfg.Vault.AuthPath)
	var re *api.ResponseError
	if errors.As(err, &re) && permanentStatus(re.StatusCode) {
		return &PermanentError{fmt.Errorf("%w: %s: %s", ErrLoginRefused, where, vaultReason(re))}
	}
	return fmt.Errorf("logging in to vault with %s: %w", where, err)
}

// permanentStatus: a 4xx is Vault's final word, except a timeout (408), a
// performance standby's "not yet" (412) and rate limiting (429), which a
// retry with backoff gets past.
func permanentStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusPreconditionFailed, http.StatusTooManyRequests:
		return false
	}
	return code >= 400 && code < 500
}

// vaultReason is what Vault said, without the request URL's host.
func vaultReason(re *api.ResponseError) string {
	if len(re.Errors) > 0 {
		return fmt.Sprintf("%s (HTTP %d)", strings.Join(re.Errors, "; "), re.StatusCode)
	}
	return fmt.Sprintf("HTTP %d", re.StatusCode)
}

// tokenValid asks Vault whether the current token still works; a 403 means
// it was revoked or expired.
func tokenValid(ctx context.Context, c *api.Client) (bool, error) {
	ok, _, err := tokenLeft(ctx, c)
	return ok, err
}

// tokenLeft is tokenValid that also says how long the token has left.
func tokenLeft(ctx context.Context, c *api.Client) (bool, time.Duration, error) {
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return false, 0, fmt.Errorf("reading the token's TTL: %w", err)
	}
	return true, ttl, nil
}
