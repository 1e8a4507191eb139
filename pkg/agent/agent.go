package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// Timing of the agent; constants rather than settings because no user has
// needed to change them, and each is bounded so no loop is hot.
const (
	// FirstRenderTimeout bounds how long init and native agents try to
	// render everything once before they exit non-zero. It matches the
	// injected startup probe's budget (120 x 1 s).
	FirstRenderTimeout = 2 * time.Minute
	// CommandTimeout bounds a per-secret command.
	CommandTimeout = 30 * time.Second
	backoffMin     = 500 * time.Millisecond
	backoffMax     = 30 * time.Second
	// maxRenderRounds bounds execute-fetch rounds for templates whose
	// secret paths come from other secrets.
	maxRenderRounds = 8
	// prefetchParallelism bounds concurrent requests of one agent at start.
	prefetchParallelism = 8
)

// Agent renders a pod's secrets and keeps them fresh.
type Agent struct {
	cfg       *Config
	log       logr.Logger
	vault     *api.Client
	kv        kvMounts
	templates []*tmpl.Template
	cache     *cache
	metrics   *agentMetrics
	status    *status
	requests  atomic.Int64
	relogin   chan struct{}
	// wake makes the loop act now, not when its timer fires (after a
	// re-login, the old leases are dead).
	wake chan struct{}
	// vaultMu serialises token changes against requests that use it.
	vaultMu sync.Mutex
	auth    *api.Secret
	authAt  time.Time // when auth was installed: its LeaseDuration counts from then
	// rendered is the cache version of the last complete render; an equal
	// version means the files are current and nothing needs executing.
	rendered uint64
}

// New prepares an agent: it parses every template (the sandbox check runs
// again here, so a hand-edited pod spec cannot bypass admission) and builds
// the Vault client. It contacts nothing.
func New(cfg *Config, log logr.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, cache: newCache(), status: &status{}, relogin: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	a.metrics = newMetrics(a)
	for i, s := range cfg.Secrets {
		t, err := tmpl.New(s.Name, s.Template)
		if err != nil {
			return nil, &PermanentError{fmt.Errorf("%w: secrets[%d] (%s).template: %w", ErrTemplate, i, s.Name, err)}
		}
		a.templates = append(a.templates, t)
	}
	c, err := newVaultClient(cfg, &a.requests)
	if err != nil {
		return nil, &PermanentError{err}
	}
	a.vault = c
	if cfg.Vault.TLSSkipVerify {
		// logr has no warning level: the message says it.
		log.Info("WARNING: Vault's TLS certificate is NOT verified (vault.tlsSkipVerify); whoever sits between the agent and Vault can read the token and every secret",
			"vault", cfg.Vault.Address)
	}
	return a, nil
}

// Status is what the health endpoints serve.
func (a *Agent) Status() *status { return a.status }

// Run does the work of the configured mode until ctx ends (native,
// sidecar) or the first render is done (init).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.start(ctx); err != nil {
		return err
	}
	a.status.setStarted()
	a.log.Info("first render complete", "secrets", len(a.templates), "vaultRequests", a.requests.Load())
	// Start-up garbage (parsing, TLS, the first renders) is not needed
	// again: hand it back now rather than whenever the scavenger gets to it.
	debug.FreeOSMemory()
	if a.cfg.Mode == ModeInit {
		if a.cfg.StateDir == "" {
			return nil
		}
		return saveState(a.cfg.StateDir, a.auth, a.cache.snapshot())
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.keepToken(ctx) }()
	a.loop(ctx)
	wg.Wait()
	if a.cfg.RevokeOnShutdown {
		a.revoke()
	}
	return nil
}

// start gets a token (resumed or by login) and renders every file once,
// within FirstRenderTimeout; a permanent error ends it at once.
func (a *Agent) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, FirstRenderTimeout)
	defer cancel()
	if a.cfg.Mode == ModeSidecar {
		a.resume(ctx)
	}
	b := newBackoff()
	for {
		err := a.firstPass(ctx)
		if err == nil {
			return nil
		}
		a.status.setError(err)
		if IsPermanent(err) {
			return err
		}
		a.log.Info("first render not complete yet; retrying", "reason", err.Error())
		if !b.wait(ctx) {
			return fmt.Errorf("no complete render within %s: %w", FirstRenderTimeout, err)
		}
	}
}

func (a *Agent) firstPass(ctx context.Context) error {
	if a.token() == "" {
		if err := a.login(ctx); err != nil {
			return err
		}
	}
	if err := a.prefetch(ctx); err != nil {
		return err
	}
	return a.renderAll(ctx)
}

// prefetch asks Vault, in parallel, for everything the templates need on a
// first look, so the first render is not one round trip per secret.
func (a *Agent) prefetch(ctx context.Context) error {
	seen := map[string]tmpl.Request{}
	for _, t := range a.templates {
		res, err := t.Execute(a.cache.lookup)
		if err != nil {
			continue // renderAll reports it with its context
		}
		for _, r := range res.Missing {
			seen[r.Key()] = r
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, prefetchParallelism)
	)
	for _, r := range seen {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := a.fetch(ctx, r); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resume takes over the token and leases an init container left, so a
// sidecar neither logs in again nor issues a second set of credentials.
func (a *Agent) resume(ctx context.Context) {
	st, err := loadState(a.cfg.StateDir)
	if err != nil {
		a.log.Info("no usable state from the init container; logging in", "reason", err.Error())
		return
	}
	a.setAuth(st.Auth)
	ok, left, err := tokenLeft(ctx, a.vault)
	if !ok {
		a.log.Info("the init container's token is not valid any more; logging in", "reason", fmt.Sprint(err))
		a.setAuth(nil)
		return
	}
	// The token was issued when the init container logged in: its first
	// renewal is due by what it has left now, not by its full TTL.
	ttl, keep := resumedTTL(st.Auth.Auth.LeaseDuration, left)
	if !keep {
		a.log.Info("the init container's token is about to expire; logging in", "left", left.String())
		a.setAuth(nil)
		return
	}
	a.setAuth(withTTL(st.Auth, time.Duration(ttl)*time.Second))
	for i := range st.Entries {
		a.cache.put(&st.Entries[i])
	}
	a.log.Info("resumed from the init container's state", "secrets", len(st.Entries))
}

// loop keeps the files fresh: at each render interval, or sooner when a
// lease needs renewing, it refreshes what is due and re-renders.
func (a *Agent) loop(ctx context.Context) {
	b := newBackoff()
	for {
		wait := a.cfg.RenderInterval.Duration
		if n := a.cache.next(); !n.IsZero() {
			wait = min(wait, max(time.Until(n), 0))
		}
		if failing := a.status.err() != nil; failing {
			wait = max(wait, b.next())
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-time.After(wait):
		}
		err := errors.Join(a.refresh(ctx), a.renderAll(ctx))
		a.status.setError(err)
		if err == nil {
			b.reset()
		} else if ctx.Err() == nil {
			a.log.Info("refresh or render failed; the last rendered files stay in place", "reason", err.Error())
		}
	}
}

// refresh acts on every cache entry that is due.
func (a *Agent) refresh(ctx context.Context) error {
	var errs []error
	slack := min(a.cfg.RenderInterval.Duration/5, time.Second)
	for _, e := range a.cache.due(time.Now().Add(slack)) {
		if err := a.refreshEntry(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) refreshEntry(ctx context.Context, e *entry) error {
	if e.Action == actionRenew {
		err := a.renew(ctx, e)
		if err == nil {
			return nil
		}
		a.log.Info("lease renewal failed; issuing a new secret", "path", e.Req.Path, "reason", err.Error())
	}
	return a.fetch(ctx, e.Req)
}

// renew extends e's lease by its first grant.
func (a *Agent) renew(ctx context.Context, e *entry) error {
	s, err := a.vault.Sys().RenewWithContext(ctx, e.Secret.LeaseID, e.Increment)
	if err != nil {
		return classifyRead(err, "renewing the lease of", e.Req.Path)
	}
	a.metrics.renewals.Inc()
	next := *e
	sec := *e.Secret
	sec.LeaseDuration, sec.Renewable = s.LeaseDuration, s.Renewable
	next.Secret = &sec
	schedule(&next, time.Now(), a.cfg.RenderInterval.Duration)
	a.cache.put(&next)
	a.log.V(1).Info("lease renewed", "path", e.Req.Path, "ttl", s.LeaseDuration, "next", next.Action)
	return nil
}

// fetch asks Vault for req and caches the answer.
func (a *Agent) fetch(ctx context.Context, req tmpl.Request) error {
	used := a.token()
	if used == "" {
		// A login is under way (the token was found revoked).
		return fmt.Errorf("%w; waiting for a new login", ErrTokenInvalid)
	}
	s, err := a.do(ctx, req)
	if errors.Is(err, ErrDenied) {
		// A revoked token also answers 403: tell the two apart before
		// blaming the path.
		if ok, verr := tokenValid(ctx, a.vault); !ok && verr == nil {
			// Drop the dead token, unless a new login has replaced it
			// meanwhile: the first render logs in again when it finds
			// none, keepToken does so when asked.
			if a.clearToken(used) && a.status.started() {
				a.requestRelogin()
			}
			return fmt.Errorf("%w; logging in again", ErrTokenInvalid)
		}
	}
	if err != nil {
		return err
	}
	e := &entry{Req: req, Secret: s, Fetched: time.Now()}
	if req.Op == tmpl.OpList {
		e.List, e.Secret = listKeys(s), nil
	}
	schedule(e, e.Fetched, a.cfg.RenderInterval.Duration)
	a.cache.put(e)
	return nil
}

func (a *Agent) do(ctx context.Context, req tmpl.Request) (*api.Secret, error) {
	ctx = forTemplate(ctx)
	var s *api.Secret
	var err error
	switch req.Op {
	case tmpl.OpRead:
		s, err = a.vault.Logical().ReadWithContext(ctx, a.kv.apiPath(ctx, a.vault, req))
	case tmpl.OpList:
		s, err = a.vault.Logical().ListWithContext(ctx, a.kv.apiPath(ctx, a.vault, req))
		if err == nil && s == nil {
			return nil, nil // an empty list
		}
	case tmpl.OpWrite:
		data := make(map[string]any, len(req.Data))
		for k, v := range req.Data {
			data[k] = v
		}
		s, err = a.vault.Logical().WriteWithContext(ctx, req.Path, data)
	}
	if errors.Is(err, tmpl.ErrTokenEndpoint) {
		// The transport's error quotes the URL, which may be computed
		// from a secret.
		return nil, &PermanentError{fmt.Errorf("%w: %s %w", ErrTemplate, req.Op, tmpl.ErrTokenEndpoint)}
	}
	if err != nil {
		return nil, classifyRead(err, string(req.Op), req.Path)
	}
	if s == nil && req.Op == tmpl.OpRead {
		return nil, &PermanentError{fmt.Errorf("%w: read %s", ErrNotFound, req.Path)}
	}
	return s, nil
}

// renderAll renders every template, writing the files that changed. It
// does nothing when no answer changed since the last complete render.
func (a *Agent) renderAll(ctx context.Context) error {
	version := a.cache.currentVersion()
	if a.rendered != 0 && version == a.rendered {
		return nil
	}
	var errs []error
	used := map[string]bool{}
	for i, t := range a.templates {
		if err := a.renderOne(ctx, t, a.cfg.Secrets[i], used); err != nil {
			a.metrics.renderErrors.WithLabelValues(t.Name()).Inc()
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		// A secret whose path came from another secret's old value is no
		// longer read: stop renewing or re-reading it.
		a.cache.retain(used)
		a.metrics.lastRender.SetToCurrentTime()
		// Fetches during this render bumped the version; what was
		// rendered is the version now.
		a.rendered = a.cache.currentVersion()
	}
	return errors.Join(errs...)
}

func (a *Agent) renderOne(ctx context.Context, t *tmpl.Template, s Secret, used map[string]bool) error {
	out, err := a.execute(ctx, t, used)
	if err != nil {
		return err
	}
	if out, err = s.encode(out); err != nil {
		return err
	}
	changed, err := tmpl.WriteFile(a.cfg.SecretsDir, s.File, out, os.FileMode(s.Perms))
	if err != nil {
		return fmt.Errorf("secret %s: %w", s.Name, err)
	}
	if !changed {
		return nil
	}
	a.metrics.renders.WithLabelValues(s.Name).Inc()
	a.log.Info("rendered", "secret", s.Name, "file", filepath.Join(a.cfg.SecretsDir, s.File), "bytes", len(out))
	if a.status.started() {
		a.afterChange(ctx, s)
	}
	return nil
}

// execute renders t, fetching what it asks for, round after round, and
// adds the keys of what the final round read to used.
func (a *Agent) execute(ctx context.Context, t *tmpl.Template, used map[string]bool) ([]byte, error) {
	for range maxRenderRounds {
		res, err := t.Execute(a.cache.lookup)
		if err != nil {
			return nil, &PermanentError{fmt.Errorf("%w: secret %s: %w", ErrTemplate, t.Name(), err)}
		}
		if len(res.Missing) == 0 {
			for _, r := range res.Used {
				used[r.Key()] = true
			}
			return res.Output, nil
		}
		for _, req := range res.Missing {
			if err := a.fetch(ctx, req); err != nil {
				return nil, fmt.Errorf("secret %s: %w", t.Name(), err)
			}
		}
	}
	return nil, &PermanentError{fmt.Errorf("secret %s: still missing data after %d rounds of fetching", t.Name(), maxRenderRounds)}
}

// revoke ends the token on shutdown when asked to.
func (a *Agent) revoke() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.vault.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		a.log.Error(err, "revoking the vault token on shutdown")
		return
	}
	a.log.Info("vault token revoked on shutdown")
}
