package agent

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// These tests check the schedule the agent computes, not wall-clock
// timing: a fleet of agents that fetched the same static secret at the same
// instant must not re-read it in lockstep.

var staticRead = tmpl.Request{Op: tmpl.OpRead, Path: "secret/data/app"}

// fetched is what fetch caches for a static secret read at t.
func fetched(c *cache, t time.Time, interval time.Duration) {
	e := &entry{Req: staticRead, Secret: &api.Secret{Data: map[string]any{"k": "v"}}, Fetched: t}
	schedule(e, t, interval)
	c.put(e)
}

func TestFirstRereadSpreadOverTheInterval(t *testing.T) {
	const agents, bins = 1000, 10
	now := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	counts := make([]int, bins)
	for range agents {
		c := newCache()
		fetched(c, now, interval)
		d := c.next().Sub(now)
		if d <= 0 || d > interval {
			t.Fatalf("first re-read %s after the first read, want within (0, %s]", d, interval)
		}
		counts[min(int(d*bins/interval), bins-1)]++
	}
	// Uniform over the interval: each tenth holds about 100 of 1000 agents
	// (binomial, standard deviation 9.5; the bounds are 5 of it).
	for i, n := range counts {
		if n < 52 || n > 148 {
			t.Errorf("tenth %d of the interval holds %d first re-reads of %d agents started together, want about 100: %v", i, n, agents, counts)
		}
	}
}

// TestOneAgentsSecretsShareItsPhase: the secrets an agent fetched together
// are due together, so one pass re-reads them all and none is read early.
func TestOneAgentsSecretsShareItsPhase(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	c := newCache()
	for _, p := range []string{"secret/data/a", "secret/data/b", "secret/data/c"} {
		e := &entry{Req: tmpl.Request{Op: tmpl.OpRead, Path: p}, Secret: &api.Secret{Data: map[string]any{"k": "v"}}, Fetched: now}
		schedule(e, now, interval)
		c.put(e)
	}
	first := c.next()
	if due := c.due(first); len(due) != 3 {
		t.Fatalf("%d of 3 secrets fetched together are due at the agent's first re-read", len(due))
	}
}

// TestRereadPeriodIsTheInterval: at idle an agent re-reads a static secret
// exactly once per interval, so it asks Vault no more often than the
// interval says (nor later, which would delay a rotation).
func TestRereadPeriodIsTheInterval(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	c := newCache()
	fetched(c, now, interval)
	at := c.next()
	for range 100 {
		fetched(c, at, interval)
		next := c.next()
		if step := next.Sub(at); step != interval {
			t.Fatalf("re-read %s after the previous one, want exactly %s", step, interval)
		}
		at = next
	}
}

func TestLaterRereadsKeepTheirBeat(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	interval := time.Minute
	var least, most time.Duration = interval, 0
	for range 1000 {
		c := newCache()
		fetched(c, now, interval)
		before := c.next()
		// The re-read's answer comes 20 s late (a stall). The next re-read
		// is one interval after the previous one was due, not after the
		// late answer, and never more than an interval after it.
		answered := before.Add(20 * time.Second)
		fetched(c, answered, interval)
		due := c.next()
		if step := due.Sub(before); step != interval {
			t.Fatalf("re-read due %s after the previous one was due, want %s", step, interval)
		}
		if d := due.Sub(answered); d <= 0 || d > interval {
			t.Fatalf("re-read due %s after the answer, want within (0, %s]", d, interval)
		}
		least, most = min(least, due.Sub(now)), max(most, due.Sub(now))
	}
	// The agents' phases differ, so their re-reads after the stall are
	// still spread over most of an interval.
	if most-least < interval/2 {
		t.Errorf("1000 agents' re-reads after a stall fall within %s of each other; their phases should spread them over most of %s", most-least, interval)
	}
}

func TestRereadAnsweredAfterMoreThanAnInterval(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	c := newCache()
	fetched(c, now, interval)
	before := c.next()
	answered := before.Add(12 * time.Second)
	fetched(c, answered, interval)
	if d := c.next().Sub(answered); d <= 0 || d > interval {
		t.Fatalf("re-read due %s after an answer 12 s late, want within (0, %s]", d, interval)
	}
}

// TestFleetIdleRequestRate runs the schedule of 500 agents started at the
// same instant, each re-reading one static secret as its loop does (due
// time, fetch, schedule, cache), and counts re-reads per second: at idle
// the busiest second must stay near the mean. Without spreading, every
// agent re-reads in the same second and the busiest second holds the whole
// fleet (5 times the mean at a 5 s interval).
func TestFleetIdleRequestRate(t *testing.T) {
	const agents = 500
	start := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	from, to := start.Add(10*time.Second), start.Add(70*time.Second)
	perSecond := make([]int, int(to.Sub(from)/time.Second))
	for range agents {
		c := newCache()
		fetched(c, start, interval)
		for at := c.next(); at.Before(to); at = c.next() {
			if !at.Before(from) {
				perSecond[int(at.Sub(from)/time.Second)]++
			}
			fetched(c, at, interval)
		}
	}
	busiest, mean := peak(perSecond)
	if float64(busiest) > 1.5*mean {
		t.Errorf("busiest second holds %d re-reads, mean %.0f/s (ratio %.2f); want at most 1.5", busiest, mean, float64(busiest)/mean)
	}
	t.Logf("%d agents, %s interval: mean %.0f re-reads/s, busiest second %d (%.2f x mean)", agents, interval, mean, busiest, float64(busiest)/mean)
}

// TestTokenScheduleSpread: a token's first renewal (a renewable token) or
// its replacement (one that cannot be renewed) comes at its share of the
// TTL less jitter, so that 1000 agents that logged in together do not ask
// Vault again together.
func TestTokenScheduleSpread(t *testing.T) {
	const ttl = time.Hour
	for _, tc := range []struct {
		name     string
		after    func() time.Duration
		from, to time.Duration // 0.9 and 1 times the share
	}{
		{"first renewal", func() time.Duration { return renewAfter(ttl) }, 2160 * time.Second, 2400 * time.Second},
		{"re-login of an unrenewable token", func() time.Duration { return reloginAfter(int(ttl / time.Second)) }, 2592 * time.Second, 2880 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			earliest, latest := ttl, time.Duration(0)
			for range 1000 {
				d := tc.after()
				if d < tc.from || d > tc.to {
					t.Fatalf("%s after %s of a 1h token, want within [%s, %s]", tc.name, d, tc.from, tc.to)
				}
				earliest, latest = min(earliest, d), max(latest, d)
			}
			// Spread over most of the jitter window, not one instant.
			if window := tc.to - tc.from; latest-earliest < window*2/3 {
				t.Errorf("1000 agents' %ss within %s of each other, want them spread over about %s", tc.name, latest-earliest, window)
			}
		})
	}
}

// TestFleetStaysSpreadAfterAStall stalls Vault for 3 s in the middle of a
// spread fleet: every re-read due meanwhile is answered when the stall
// ends. Afterwards the busiest second must stay near the mean; counting
// the next interval from the answer would line up 60 % of the fleet.
func TestFleetStaysSpreadAfterAStall(t *testing.T) {
	const agents = 500
	start := time.Unix(1_700_000_000, 0)
	interval := 5 * time.Second
	stallFrom, stallTo := start.Add(20*time.Second), start.Add(23*time.Second)
	from, to := stallTo.Add(interval), stallTo.Add(45*time.Second)
	perSecond := make([]int, int(to.Sub(from)/time.Second))
	for range agents {
		c := newCache()
		fetched(c, start, interval)
		for at := c.next(); at.Before(to); at = c.next() {
			answered := at
			if !at.Before(stallFrom) && at.Before(stallTo) {
				answered = stallTo
			}
			if !answered.Before(from) {
				perSecond[int(answered.Sub(from)/time.Second)]++
			}
			fetched(c, answered, interval)
		}
	}
	busiest, mean := peak(perSecond)
	if float64(busiest) > 1.5*mean {
		t.Errorf("after a 3 s stall the busiest second holds %d re-reads, mean %.0f/s (ratio %.2f); want at most 1.5", busiest, mean, float64(busiest)/mean)
	}
}

// peak is the busiest second's count and the mean per second.
func peak(perSecond []int) (busiest int, mean float64) {
	total := 0
	for _, n := range perSecond {
		total += n
		busiest = max(busiest, n)
	}
	return busiest, float64(total) / float64(len(perSecond))
}

// TestTokenWithoutTTLIsKept: a token Vault issued without a TTL is neither
// renewed nor replaced (a schedule counted from a TTL of 0 would log in
// again at once, over and over); only the end of the run or a revocation
// ends the watch. The agent has no Vault client here: touching Vault would
// panic.
func TestTokenWithoutTTLIsKept(t *testing.T) {
	for _, renewable := range []bool{true, false} {
		a := &Agent{relogin: make(chan struct{}, 1), log: logr.Discard()}
		a.auth, a.authAt = &api.Secret{Auth: &api.SecretAuth{ClientToken: "t", Renewable: renewable}}, time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.watchToken(ctx); close(done) }()
		select {
		case <-done:
			t.Fatalf("renewable=%v: the watch of a token without a TTL ended by itself", renewable)
		case <-time.After(100 * time.Millisecond):
		}
		a.requestRelogin()
		<-done
		cancel()
	}
}
