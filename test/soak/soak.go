package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Bounds of what may grow per agent between the first sample after the
// warm-up and the last: a leak grows with time and rotations, noise does
// not. Memory gets room for the Go heap's own breathing.
const (
	maxGoroutineGrowth = 3
	maxFDGrowth        = 2
	maxRSSGrowthKiB    = 4096
)

// valuePrefix starts every secret value, so one scan of the logs finds a
// leak of any of them.
const valuePrefix = "soakval-"

type result struct {
	agents, rotations int
	// expected and onTime count, at the end of each rotation's period,
	// the files that should hold its value and those that did.
	expected, onTime int
	// rendered is the agents' own count of files written (one per new
	// value); every rotation delivered means 1 + rotations per agent.
	rendered         float64
	exited           int
	series           []point
	sampleErrors     int
	logins, renewals float64
	leaks            []string
	elapsed          time.Duration
}

// point is one round of samples, every agent's.
type point struct {
	at      time.Duration
	samples []sample
}

func soak(ctx context.Context, o options, e *env, f *fleet) (*result, error) {
	r := &result{agents: len(f.members)}
	start := time.Now()
	end := start.Add(o.duration)
	nextSample := start.Add(o.warmup)
	for k := 1; time.Now().Before(end) && ctx.Err() == nil; k++ {
		values, err := rotate(ctx, e, len(f.members), k)
		if err != nil {
			return nil, err
		}
		r.rotations++
		// Sample while the rotation settles.
		if !time.Now().Before(nextSample) {
			r.series = append(r.series, point{at: time.Since(start), samples: f.samples(r)})
			nextSample = nextSample.Add(o.sample)
		}
		sleepUntil(ctx, time.Now().Add(o.rotate-time.Since(start)%o.rotate))
		r.expected += len(values)
		r.onTime += f.delivered(values)
	}
	r.elapsed = time.Since(start)
	for _, m := range f.members {
		if !m.running() {
			r.exited++
		}
		if metrics, err := scrape(m.health); err == nil {
			r.logins += metricSum(metrics, `blinkchamber_agent_logins_total{result="success"}`)
			r.renewals += metricSum(metrics, "blinkchamber_agent_token_renewals_total")
			r.rendered += metricSum(metrics, `blinkchamber_agent_renders_total{secret="value"}`)
		}
	}
	token, err := os.ReadFile(e.tokenFile)
	if err != nil {
		return nil, err
	}
	r.leaks = f.scanLogs(valuePrefix, string(token))
	return r, nil
}

// rotate gives every agent's secret a new value.
func rotate(ctx context.Context, e *env, n, k int) ([]string, error) {
	var b [4]byte
	values := make([]string, n)
	for i := range n {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		values[i] = fmt.Sprintf("%s%d-%d-%s", valuePrefix, k, i, hex.EncodeToString(b[:]))
		if err := e.put(ctx, i, values[i]); err != nil {
			return nil, fmt.Errorf("rotation %d, agent %d: %w", k, i, err)
		}
	}
	return values, nil
}

// delivered counts the agents whose file holds the value of this rotation.
func (f *fleet) delivered(values []string) int {
	n := 0
	for i, m := range f.members {
		if got, err := os.ReadFile(filepath.Join(m.dir, "value")); err == nil && string(got) == values[i] {
			n++
		}
	}
	return n
}

func (f *fleet) samples(r *result) []sample {
	out := make([]sample, len(f.members))
	for i, m := range f.members {
		s, err := m.sample()
		if err != nil {
			r.sampleErrors++
		}
		out[i] = s
	}
	return out
}

// scanLogs names the agents whose output holds any of the needles.
func (f *fleet) scanLogs(needles ...string) []string {
	var found []string
	for i, m := range f.members {
		b, err := os.ReadFile(m.log.Name())
		if err != nil {
			found = append(found, fmt.Sprintf("agent %d: log unreadable: %v", i, err))
			continue
		}
		for _, n := range needles {
			if n != "" && strings.Contains(string(b), n) {
				found = append(found, fmt.Sprintf("agent %d", i))
				break
			}
		}
	}
	return found
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}

// growth is last minus first of one measure, per agent: median and max.
func growth(first, last []sample, measure func(sample) int) (median, worst int) {
	if len(first) == 0 || len(first) != len(last) {
		return 0, 0
	}
	d := make([]int, len(first))
	for i := range first {
		d[i] = measure(last[i]) - measure(first[i])
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)-1]
}

// firstMidLast are the first sample round after the warm-up, the middle one
// and the last.
func (r *result) firstMidLast() (first, mid, last []sample) {
	if len(r.series) == 0 {
		return nil, nil, nil
	}
	return r.series[0].samples, r.series[len(r.series)/2].samples, r.series[len(r.series)-1].samples
}

var measures = []struct {
	name string
	f    func(sample) int
	// bound on the worst agent's growth from the first round to the
	// last, and on the median growth over the second half; -1: reported.
	worst, secondHalf int
}{
	{"goroutines", func(s sample) int { return s.goroutines }, maxGoroutineGrowth, 1},
	{"open descriptors", func(s sample) int { return s.fds }, maxFDGrowth, 1},
	{"threads", func(s sample) int { return s.threads }, -1, -1},
	{"RSS KiB", func(s sample) int { return s.rssKiB }, maxRSSGrowthKiB, 1024},
}

func (r *result) wantRendered() float64 { return float64(r.agents * (1 + r.rotations)) }

func (r *result) ok() bool {
	first, mid, last := r.firstMidLast()
	if first == nil || r.rendered != r.wantRendered() || r.exited != 0 || len(r.leaks) != 0 || r.sampleErrors != 0 {
		return false
	}
	for _, m := range measures {
		_, worst := growth(first, last, m.f)
		half, _ := growth(mid, last, m.f)
		if m.worst >= 0 && (worst > m.worst || half > m.secondHalf) {
			return false
		}
	}
	return true
}

// write prints the figures as Markdown tables.
func (r *result) write(w io.Writer, o options) {
	fmt.Fprintf(w, "\n%d agents, %s (asked %s), token TTL %s (max %s), render interval %s, a rotation every %s\n\n",
		r.agents, r.elapsed.Round(time.Second), o.duration, o.tokenTTL, 3*o.tokenTTL, o.interval, o.rotate)
	fmt.Fprintln(w, "| measure | value |")
	fmt.Fprintln(w, "|---|---|")
	fmt.Fprintf(w, "| rotations delivered (files written, by the agents' count) | %.0f of %.0f (%d agents x (1 + %d rotations)) |\n", r.rendered, r.wantRendered(), r.agents, r.rotations)
	fmt.Fprintf(w, "| delivered before the next rotation was due | %d of %d |\n", r.onTime, r.expected)
	fmt.Fprintf(w, "| agents that exited | %d |\n", r.exited)
	fmt.Fprintf(w, "| logins, token renewals (all agents) | %.0f, %.0f |\n", r.logins, r.renewals)
	fmt.Fprintf(w, "| logs holding a secret value or the token | %d %v |\n", len(r.leaks), r.leaks)
	fmt.Fprintf(w, "| failed /proc or /metrics samples | %d |\n", r.sampleErrors)
	first, mid, last := r.firstMidLast()
	for _, m := range measures {
		base, _ := growth(make([]sample, len(first)), first, m.f)
		med, worst := growth(first, last, m.f)
		half, _ := growth(mid, last, m.f)
		bound := "reported"
		if m.worst >= 0 {
			bound = fmt.Sprintf("bounds: worst %d, second half %d", m.worst, m.secondHalf)
		}
		fmt.Fprintf(w, "| %s per agent after warm-up (median) | %d; growth to the end: median %d, worst %d; median growth over the second half %d (%s) |\n",
			m.name, base, med, worst, half, bound)
	}
	fmt.Fprintln(w, "\n| minute | RSS KiB median / max | goroutines median / max | descriptors median / max |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, p := range r.series {
		rss, gor, fds := spread(p.samples, measures[3].f), spread(p.samples, measures[0].f), spread(p.samples, measures[1].f)
		fmt.Fprintf(w, "| %.1f | %s | %s | %s |\n", p.at.Minutes(), rss, gor, fds)
	}
}

func spread(samples []sample, f func(sample) int) string {
	v := make([]int, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	slices.Sort(v)
	return fmt.Sprintf("%d / %d", v[len(v)/2], v[len(v)-1])
}
