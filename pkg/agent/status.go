package agent

import (
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
