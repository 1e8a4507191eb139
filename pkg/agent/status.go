package agent

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// status is what the health endpoints report.
type status struct {
	mu        sync.Mutex
	isStarted bool
	lastErr   error
	since     time.Time
	// loginErr is why the last re-login failed, kept apart from lastErr:
	// the refreshes that fail meanwhile only say the token is gone, and
	// readiness must say why there is no new one (a deleted role, say).
	loginErr error
	// rendering holds when each secret's render now under way began; a
	// render stuck in a system call stays here, so readiness (computed
	// when asked, not when the render returns) reports it.
	rendering map[string]time.Time
	// stuckAfter is how long a render may take before readiness reports
	// it: the render interval.
	stuckAfter time.Duration
}

// beginRender marks secret's render under way; false when an earlier one
// has not returned.
func (s *status) beginRender(secret string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.rendering[secret]; busy {
		return false
	}
	if s.rendering == nil {
		s.rendering = map[string]time.Time{}
	}
	s.rendering[secret] = time.Now()
	return true
}

func (s *status) endRender(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rendering, secret)
}

// renderAges is how long each render under way has run.
func (s *status) renderAges() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Duration, len(s.rendering))
	for name, at := range s.rendering {
		out[name] = time.Since(at)
	}
	return out
}

// stuckLocked names the renders under way for longer than stuckAfter.
func (s *status) stuckLocked() string {
	var names []string
	for name, at := range s.rendering {
		if age := time.Since(at); age > s.stuckAfter {
			names = append(names, fmt.Sprintf("secret %s: render under way for %s, longer than the render interval %s", name, age.Round(time.Millisecond), s.stuckAfter))
		}
	}
	sort.Strings(names)
	return strings.Join(names, "; ")
}

func (s *status) setStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.isStarted = true
}

func (s *status) started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isStarted
}

// setError records the outcome of the last refresh; nil means healthy.
func (s *status) setError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (err == nil) != (s.lastErr == nil) {
		s.since = time.Now()
	}
	s.lastErr = err
}

// setLoginError records the outcome of the last re-login; nil means it
// worked.
func (s *status) setLoginError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loginErr = err
}

func (s *status) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// ready is true once the first render is done and the last refresh worked.
func (s *status) ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stuck := s.stuckLocked(); stuck != "" {
		return false, "render not completing; files from the last render stay in place: " + stuck
	}
	switch {
	case !s.isStarted && s.lastErr != nil:
		return false, "first render not complete: " + s.lastErr.Error()
	case !s.isStarted:
		return false, "first render not complete"
	case s.loginErr != nil:
		return false, "vault login failing; files from the last render stay in place: " + s.loginErr.Error()
	case s.lastErr != nil:
		return false, "refresh or render failing since " + s.since.UTC().Format(time.RFC3339) + "; files from the last render stay in place: " + s.lastErr.Error()
	}
	return true, "ok"
}
