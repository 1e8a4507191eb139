package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
)

// idleRun is one agent process through the idle window.
type idleRun struct {
	rssKiB, anonKiB, fileKiB int64 // at the end of the window
	cpuSeconds               float64
	requests                 int64
}

// settle lets start-up work (first render, freeing start-up garbage) end
// before the idle window opens.
const settle = 5 * time.Second

// idle starts o.replicas of each agent at each size, all at once, waits
// until every one has rendered, then measures each over the same window of
// o.idle: CPU time and Vault requests within it, RSS and RssAnon at its end.
// Running them side by side makes the window the same for both agents.
func (e *env) idle(ctx context.Context, o options) (map[key][]idleRun, error) {
	type running struct {
		key
		p         *proc
		cpu0      float64
		requests0 int64
	}
	var procs []*running
	defer func() {
		for _, r := range procs {
			r.p.stop()
		}
	}()
	for _, n := range o.sizes {
		for i := range o.replicas {
			for _, kind := range kinds {
				p, err := e.start(ctx, kind, benchPaths(n), o.interval, fmt.Sprintf("idle-%d-%d", n, i))
				if err != nil {
					return nil, err
				}
				procs = append(procs, &running{key: key{kind, n}, p: p})
			}
		}
	}
	for _, r := range procs {
		if _, err := r.p.waitFiles(ctx, r.secrets); err != nil {
			return nil, fmt.Errorf("%s with %d secrets: %w", r.kind, r.secrets, err)
		}
	}
	if err := sleep(ctx, settle); err != nil {
		return nil, err
	}
	for _, r := range procs {
		r.cpu0, r.requests0 = procstat.CPUSeconds(r.p.cmd.Process.Pid), r.p.requests.Load()
	}
	progress("idle: %d agents running for %s", len(procs), o.idle)
	if err := sleep(ctx, o.idle); err != nil {
		return nil, err
	}
	out := map[key][]idleRun{}
	var errs []error
	for _, r := range procs {
		select {
		case <-r.p.exited:
			errs = append(errs, fmt.Errorf("%s with %d secrets exited during the idle window; log:\n%s", r.kind, r.secrets, r.p.log()))
			continue
		default:
		}
		run := idleRun{cpuSeconds: procstat.CPUSeconds(r.p.cmd.Process.Pid) - r.cpu0, requests: r.p.requests.Load() - r.requests0}
		run.rssKiB, run.anonKiB, run.fileKiB = memory(r.p.cmd.Process.Pid)
		out[r.key] = append(out[r.key], run)
	}
	return out, errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
