package agent

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/vault/api"
)

// token is the current Vault token ("" before the first login).
func (a *Agent) token() string {
	a.vaultMu.Lock()
	defer a.vaultMu.Unlock()
	return a.vault.Token()
}

func (a *Agent) setAuth(s *api.Secret) {
	a.vaultMu.Lock()
	defer a.vaultMu.Unlock()
	a.auth, a.authAt = s, time.Now()
	if s == nil || s.Auth == nil {
		a.vault.ClearToken()
		return
	}
	a.vault.SetToken(s.Auth.ClientToken)
	a.metrics.tokenTTL.Set(float64(s.Auth.LeaseDuration))
}

// clearToken drops the token if it is still the one that failed; false
// when a new login already replaced it.
func (a *Agent) clearToken(failed string) bool {
	a.vaultMu.Lock()
	defer a.vaultMu.Unlock()
	if a.vault.Token() != failed {
		return false
	}
	a.auth = nil
	a.vault.ClearToken()
	return true
}

// currentAuth is the token's login answer and when it was installed.
func (a *Agent) currentAuth() (*api.Secret, time.Time) {
	a.vaultMu.Lock()
	defer a.vaultMu.Unlock()
	return a.auth, a.authAt
}

// withTTL is s with ttl as the token's lease duration.
func withTTL(s *api.Secret, ttl time.Duration) *api.Secret {
	c, auth := *s, *s.Auth
	auth.LeaseDuration = int(ttl / time.Second)
	c.Auth = &auth
	return &c
}

// resumeFloor is the least a resumed token must have left to be kept:
// with less, the sidecar would start by renewing (or replacing) it at once.
const resumeFloor = 5 * time.Second

// resumedTTL is the lease duration, in seconds, to keep a resumed token
// with, given its lease duration at login and what lookup-self says it has
// left; false when it is better to log in again. lookup-self counts whole
// seconds, so a token with under a second left reads as 0, the value of a
// token issued without a TTL: only a token issued without one keeps 0.
func resumedTTL(issued int, left time.Duration) (int, bool) {
	switch {
	case left >= resumeFloor:
		return int(left / time.Second), true
	case issued <= 0 && left == 0:
		return 0, true
	default:
		return 0, false
	}
}

// login authenticates once and installs the token.
func (a *Agent) login(ctx context.Context) error {
	s, err := login(ctx, a.vault, a.cfg)
	if err != nil {
		a.metrics.logins.WithLabelValues("failure").Inc()
		return err
	}
	a.metrics.logins.WithLabelValues("success").Inc()
	a.setAuth(s)
	a.log.Info("logged in to vault", "role", a.cfg.Vault.Role, "authPath", a.cfg.Vault.AuthPath,
		"ttl", s.Auth.LeaseDuration, "renewable", s.Auth.Renewable, "policies", s.Auth.Policies)
	return nil
}

// requestRelogin asks keepToken to log in again (the token was revoked).
func (a *Agent) requestRelogin() {
	select {
	case a.relogin <- struct{}{}:
	default:
	}
}

// keepToken renews the token before it expires and logs in again when
// renewal fails, the token reaches its max TTL or is revoked; logins back
// off exponentially with jitter.
func (a *Agent) keepToken(ctx context.Context) {
	for ctx.Err() == nil {
		a.watchToken(ctx)
		if ctx.Err() != nil {
			return
		}
		b := newBackoff()
		for {
			err := a.login(ctx)
			a.status.setLoginError(err)
			if err == nil {
				// A revocation noticed by several requests asks more than
				// once; this login answers them all.
				select {
				case <-a.relogin:
				default:
				}
				// The old token's leases die with it: issue new ones now.
				a.cache.reissueLeases(time.Now())
				select {
				case a.wake <- struct{}{}:
				default:
				}
				break
			}
			a.log.Info("vault login failed; retrying", "reason", err.Error())
			if !b.wait(ctx) {
				return
			}
		}
	}
}

// watchToken returns when the token needs replacing or ctx ends.
func (a *Agent) watchToken(ctx context.Context) {
	s, at := a.currentAuth()
	if s == nil || s.Auth == nil {
		return
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	if ttl <= 0 {
		// A token without a TTL never expires: nothing to renew or replace
		// until it is found revoked.
		a.sleep(ctx, math.MaxInt64)
		return
	}
	if !s.Auth.Renewable {
		a.sleep(ctx, time.Until(at.Add(reloginAfter(s.Auth.LeaseDuration))))
		return
	}
	// Vault's lifetime watcher renews as soon as it starts: started at
	// login, it would renew a token Vault has just issued, one wasted
	// request per agent start. So it starts when the first renewal is due,
	// with what the token has left then.
	if !a.sleep(ctx, time.Until(at.Add(renewAfter(ttl)))) {
		return
	}
	left := time.Until(at.Add(ttl))
	if left < time.Second {
		a.log.Info("vault token expired before its renewal; logging in again")
		return
	}
	w, err := a.vault.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: withTTL(s, left)})
	if err != nil {
		a.log.Error(err, "cannot watch the vault token; logging in again")
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.relogin:
			a.log.Info("vault token was revoked; logging in again")
			return
		case err := <-w.DoneCh():
			if err != nil {
				a.log.Info("vault token renewal failed; logging in again", "reason", err.Error())
			} else {
				a.log.Info("vault token reached its max TTL; logging in again")
			}
			return
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				a.metrics.tokenTTL.Set(float64(r.Secret.Auth.LeaseDuration))
				a.metrics.tokenRenewals.Inc()
			}
		}
	}
}

// sleep waits d; false when ctx ended or the token was found revoked first.
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-a.relogin:
		a.log.Info("vault token was revoked; logging in again")
		return false
	case <-t.C:
		return true
	}
}

// renewAfter is when a token is first renewed: at 60 to 67 % of its life
// (two thirds, as Vault's watcher renews later on, less up to 10 %
// jitter), so that a fleet whose agents logged in together does not renew
// together.
func renewAfter(ttl time.Duration) time.Duration {
	return jitter(ttl * 2 / 3)
}

// reloginAfter is when a token that cannot be renewed is replaced: at 72
// to 80 % of its life, jittered so that a fleet whose agents logged in
// together does not log in (one TokenReview each) together again.
func reloginAfter(ttlSeconds int) time.Duration {
	return jitter(time.Duration(ttlSeconds) * time.Second * 8 / 10)
}

// backoff is exponential with full jitter between backoffMin and
// backoffMax.
type backoff struct{ cur time.Duration }

func newBackoff() *backoff { return &backoff{cur: backoffMin} }

func (b *backoff) next() time.Duration {
	d := b.cur/2 + time.Duration(rand.Int64N(int64(b.cur/2)+1))
	b.cur = min(b.cur*2, backoffMax)
	return d
}

func (b *backoff) reset() { b.cur = backoffMin }

// wait sleeps for the next step; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(b.next()):
		return true
	}
}
