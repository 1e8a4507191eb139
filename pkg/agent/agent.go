package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	describe  *describer
	files     fileWriter
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
	a := &Agent{cfg: cfg, log: log, cache: newCache(), relogin: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		status: &status{stuckAfter: cfg.RenderInterval.Duration}, files: tmpl.NewFiles(cfg.SecretsDir)}
	a.metrics = newMetrics(a)
	d, err := newDescriber()
	if err != nil {
		return nil, err
	}
	a.describe = d
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
		rerr := a.refresh(ctx)
		werr := a.renderAll(ctx)
		err := errors.Join(rerr, werr)
		a.status.setError(err)
		// Backing off spares Vault; a file that cannot be written (a
		// directory in the way) is no reason to delay the other secrets'
		// renders past the interval.
		if err == nil || rerr == nil && onlyWriteErrors(werr) {
			b.reset()
		}
		if err != nil && ctx.Err() == nil {
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
		a.log.Info("lease renewal failed; issuing a new secret", "request", a.describe.request(e.Req), "reason", err.Error())
	}
	return a.fetch(ctx, e.Req)
}

// renew extends e's lease by its first grant.
func (a *Agent) renew(ctx context.Context, e *entry) error {
	s, err := a.vault.Sys().RenewWithContext(ctx, e.Secret.LeaseID, e.Increment)
	if err != nil {
		return classifyRequest(err, "renewing the lease of "+a.describe.request(e.Req), printable(e.Req))
	}
	a.metrics.renewals.Inc()
	next := *e
	sec := *e.Secret
	sec.LeaseDuration, sec.Renewable = s.LeaseDuration, s.Renewable
	next.Secret = &sec
	schedule(&next, time.Now(), a.cfg.RenderInterval.Duration)
	a.cache.put(&next)
	a.log.V(1).Info("lease renewed", "request", a.describe.request(e.Req), "ttl", s.LeaseDuration, "next", next.Action)
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
		return nil, classifyRequest(err, a.describe.request(req), printable(req))
	}
	if s == nil && req.Op == tmpl.OpRead {
		return nil, &PermanentError{fmt.Errorf("%w: %s", ErrNotFound, a.describe.request(req))}
	}
	return s, nil
}

// renderAll renders every template, writing the files that changed. It
// does nothing when no answer changed since the last complete render.
func (a *Agent) renderAll(ctx context.Context) error {
	if err := a.writeVaultToken(); err != nil {
		return err
	}
	version := a.cache.currentVersion()
	if a.rendered != 0 && version == a.rendered && a.filesIntact() {
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
	if !a.status.beginRender(s.Name) {
		return &writeError{fmt.Errorf("secret %s: %w: the previous render has not returned", s.Name, ErrRenderStuck)}
	}
	out, err := a.execute(ctx, t, used)
	if err == nil {
		out, err = s.encode(out)
	}
	if err != nil {
		a.status.endRender(s.Name)
		return err
	}
	changed, err := a.write(s, out)
	if err != nil || !changed {
		return err
	}
	a.metrics.renders.WithLabelValues(s.Name).Inc()
	// Not the size: a template can make it any number computed from a
	// secret (`printf "%*s" (parseInt .Data.data.pin) ""`).
	a.log.Info("rendered", "secret", s.Name, "file", filepath.Join(a.cfg.SecretsDir, s.File))
	if a.status.started() {
		a.afterChange(ctx, s)
	}
	return nil
}

// fileWriter writes the secrets' files (tmpl.Files; tests put a stuck one
// in its place).
type fileWriter interface {
	Write(name string, data []byte, perm fs.FileMode) (bool, error)
	Intact(name string) bool
}

// ErrRenderStuck is wrapped when a secret's file write did not return
// within the render interval.
var ErrRenderStuck = errors.New("render did not complete")

// writeError is a secret's file that could not be written; Vault is not
// to blame.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// onlyWriteErrors reports whether err is made of writeErrors only.
func onlyWriteErrors(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyWriteErrors(e) {
				return false
			}
		}
		return true
	}
	var w *writeError
	return errors.As(err, &w)
}

// write writes s's file apart from the loop, and waits for it one render
// interval at most: a write stuck in a system call holds up its own secret
// only (readiness names it until the write returns; beginRender refuses a
// second one meanwhile), never the other secrets' renders. It ends the
// render begun by renderOne when the write returns, however late.
func (a *Agent) write(s Secret, out []byte) (bool, error) {
	type result struct {
		changed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		changed, err := a.files.Write(s.File, out, os.FileMode(s.Perms))
		a.status.endRender(s.Name)
		done <- result{changed, err}
	}()
	timer := time.NewTimer(a.cfg.RenderInterval.Duration)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return false, &writeError{fmt.Errorf("secret %s: %w", s.Name, r.err)}
		}
		return r.changed, nil
	case <-timer.C:
		return false, &writeError{fmt.Errorf("secret %s: %w: writing %s did not return within %s", s.Name, ErrRenderStuck, s.File, a.cfg.RenderInterval.Duration)}
	}
}

// filesIntact checks, with lstat only, that every file is still what the
// agent last wrote; a file replaced or changed by anything else (a FIFO
// put in its place, say) is rendered again.
func (a *Agent) filesIntact() bool {
	ok := true
	for _, s := range a.cfg.Secrets {
		if !a.files.Intact(s.File) {
			a.log.Info("a rendered file was replaced or changed by something other than the agent; writing it again", "secret", s.Name, "file", s.File)
			a.metrics.filesRestored.WithLabelValues(s.Name).Inc()
			ok = false
		}
	}
	return ok
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

// writeVaultToken writes the agent's current Vault token where the pod
// opted in to receive it (Config.VaultTokenFile). An unchanged token costs
// no write; a new login's token lands at the next render.
func (a *Agent) writeVaultToken() error {
	tok := a.token()
	if a.cfg.VaultTokenFile == "" || tok == "" {
		return nil
	}
	if _, err := a.files.Write(a.cfg.VaultTokenFile, []byte(tok), 0o400); err != nil {
		return &writeError{fmt.Errorf("the agent's token file: %w", err)}
	}
	return nil
}
