package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// rotation is the latency from a KV v2 write to each agent's file holding
// the new value, at one render interval.
type rotation struct {
	interval  time.Duration
	latencies map[agentKind][]time.Duration
}

const rotationPath = "bench/rotating"

// rotations runs both agents on one secret at the given interval, then
// writes a new version o.rotations times and times each agent's file
// change. Both agents watch the same writes. Between writes the bench waits
// a random part of the interval, so writes fall at every phase of the
// agents' re-read schedules rather than always just after a re-read.
func (e *env) rotations(ctx context.Context, interval time.Duration, o options) (rotation, error) {
	r := rotation{interval: interval, latencies: map[agentKind][]time.Duration{}}
	if err := e.writeRotating(ctx, 0); err != nil {
		return r, err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, kind := range kinds {
		p, err := e.start(ctx, kind, []string{rotationPath}, interval, "rotation-"+interval.String())
		if err != nil {
			return r, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if _, err := p.waitFiles(ctx, 1); err != nil {
			return r, err
		}
	}
	for i := 1; i <= o.rotations; i++ {
		if err := sleep(ctx, rand.N(interval)); err != nil {
			return r, err
		}
		written := time.Now()
		if err := e.writeRotating(ctx, i); err != nil {
			return r, err
		}
		changed, err := waitAll(ctx, procs, rotatedLine(i), written.Add(interval*3+10*time.Second))
		if err != nil {
			return r, fmt.Errorf("rotation %d: %w", i, err)
		}
		for j, t := range changed {
			r.latencies[kinds[j]] = append(r.latencies[kinds[j]], t.Sub(written))
		}
	}
	progress("rotation at %s: p99 %s %s, %s %s", interval,
		ours, percentile(r.latencies[ours], 99), vaultAgent, percentile(r.latencies[vaultAgent], 99))
	return r, nil
}

func (e *env) writeRotating(ctx context.Context, version int) error {
	_, err := e.vault.Client().KVv2("secret").Put(ctx, rotationPath, map[string]any{
		"username": "rotating", "password": fmt.Sprintf("rotation-%d", version),
	})
	return err
}

func rotatedLine(version int) []byte {
	return fmt.Appendf(nil, "password=rotation-%d\n", version)
}

// waitAll watches every agent's file at once, so that a slow agent does not
// delay noticing a fast one, and returns when each saw want.
func waitAll(ctx context.Context, procs []*proc, want []byte, deadline time.Time) ([]time.Time, error) {
	changed := make([]time.Time, len(procs))
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			changed[i], errs[i] = p.waitContent(ctx, want, deadline)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", kinds[i], errs[i])
			}
		}()
	}
	wg.Wait()
	return changed, errors.Join(errs...)
}

// waitContent polls the first file until it holds want and returns when it
// saw it. Both agents replace the file by rename, so a read never sees half
// a file.
func (p *proc) waitContent(ctx context.Context, want []byte, deadline time.Time) (time.Time, error) {
	file := filepath.Join(p.dir, secretName(0))
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(file)
		if err == nil && bytes.Contains(b, want) {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-p.exited:
			return time.Time{}, fmt.Errorf("exited; log:\n%s", p.log())
		case <-time.After(time.Millisecond):
		}
	}
	return time.Time{}, fmt.Errorf("%q not in %s by %s; log:\n%s", want, file, deadline.Format(time.TimeOnly), p.log())
}
