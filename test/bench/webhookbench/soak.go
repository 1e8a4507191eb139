package main

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// sample is the injector's state at one moment of the soak run.
type sample struct {
	at         time.Duration // since the run began
	rssKiB     int64
	goroutines int
}

// soakResult is the soak run: its load and the samples taken during it.
type soakResult struct {
	point   point
	samples []sample
}

// soak keeps o.soakConcurrency requests in flight for o.soak while sampling
// the injector's RSS and goroutines every o.sampleEvery.
func soak(ctx context.Context, c *http.Client, s *served, r request, o options) (soakResult, error) {
	type outcome struct {
		run loadRun
		err error
	}
	done := make(chan outcome, 1)
	pid := s.cmd.Process.Pid
	start := time.Now()
	go func() {
		rn, err := drive(ctx, c, s.url, r, o.soakConcurrency, 0, o.soak, pid)
		done <- outcome{rn, err}
	}()
	var samples []sample
	tick := time.NewTicker(o.sampleEvery)
	defer tick.Stop()
	for {
		select {
		case out := <-done:
			if out.err != nil {
				return soakResult{}, out.err
			}
			return soakResult{point: summarize(r.secrets, o.soakConcurrency, out.run), samples: samples}, nil
		case <-tick.C:
			rss, err := rssKiB(pid)
			if err != nil {
				return soakResult{}, err
			}
			g, err := goroutines(ctx, s.metricsURL)
			if err != nil {
				return soakResult{}, err
			}
			samples = append(samples, sample{at: time.Since(start), rssKiB: rss, goroutines: g})
		}
	}
}

// flatness compares the two halves of a soak run. RSS is compared by
// median: the heap rises and falls with each collection (five-fold with
// the chart's GOGC=400), so one half's single highest sample says little,
// while a leak lifts the whole second half. Goroutines are compared by
// maximum.
type flatness struct {
	firstRSS, lastRSS int64 // median KiB in each half
	firstG, lastG     int   // maximum goroutines in each half
}

func (r soakResult) flatness() flatness {
	var f flatness
	half := len(r.samples) / 2
	var rss [2][]int64
	for i, s := range r.samples {
		h, g := 0, &f.firstG
		if i >= half {
			h, g = 1, &f.lastG
		}
		rss[h] = append(rss[h], s.rssKiB)
		*g = max(*g, s.goroutines)
	}
	f.firstRSS, f.lastRSS = median(rss[0]), median(rss[1])
	return f
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func (f flatness) flat() bool {
	return float64(f.lastRSS) <= 1.10*float64(f.firstRSS) && f.lastG <= f.firstG+5
}
