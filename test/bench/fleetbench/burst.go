package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// burstWorkers is how many logins the burst keeps in flight.
const burstWorkers = 16

// burst is Vault's and the API server's cost of the fleet's logins alone:
// the same tokens, logged in from this process, burstWorkers at a time,
// with no agent starting up and competing for the CPU.
type burst struct {
	logins   int
	took     time.Duration
	p50, p95 time.Duration
	vault    float64 // CPU seconds
	api      float64
	etcd     float64
	reviews  reviews
}

func (e *env) loginBurst(ctx context.Context, dirs []string) (burst, error) {
	c, err := e.vault.Client().Clone()
	if err != nil {
		return burst{}, fmt.Errorf("cloning the Vault client: %w", err)
	}
	c.ClearToken()
	c.SetMaxRetries(0)
	jwts := make([]string, len(dirs))
	for i, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "token"))
		if err != nil {
			return burst{}, err
		}
		jwts[i] = string(b)
	}
	rev0, err := e.tokenReviews(ctx)
	if err != nil {
		return burst{}, err
	}
	took := make([]time.Duration, len(jwts))
	errs := make([]error, len(jwts))
	jobs := make(chan int)
	var wg sync.WaitGroup
	s0 := e.sample()
	for range burstWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t := time.Now()
				_, errs[i] = c.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": fleetSA, "jwt": jwts[i]})
				took[i] = time.Since(t)
			}
		}()
	}
	for i := range jwts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	s1 := e.sample()
	for i, err := range errs {
		if err != nil {
			return burst{}, fmt.Errorf("login %d of the burst: %w", i, err)
		}
	}
	rev1, err := e.tokenReviews(ctx)
	if err != nil {
		return burst{}, err
	}
	return burst{logins: len(jwts), took: s1.at.Sub(s0.at), p50: percentile(took, 50), p95: percentile(took, 95),
		vault: s1.vault - s0.vault, api: s1.api - s0.api, etcd: s1.etcd - s0.etcd, reviews: rev1.minus(rev0)}, nil
}

func (b burst) perSecond() float64 { return float64(b.logins) / b.took.Seconds() }

// perLogin is CPU milliseconds per login.
func (b burst) perLogin(cpu float64) float64 { return 1000 * cpu / float64(max(b.logins, 1)) }
