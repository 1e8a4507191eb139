package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/blinkchamber/blinkchamber/test/bench/podreview"
)

// request is one prepared AdmissionReview and the pod it carries.
type request struct {
	secrets int
	body    []byte
	check   func([]byte) error
}

func newRequest(secrets int) (request, error) {
	pod := podreview.Pod(secrets)
	uid := types.UID(fmt.Sprintf("0b9f8a52-0000-4000-8000-%012d", secrets))
	body, err := podreview.Review(pod, uid)
	if err != nil {
		return request{}, err
	}
	return request{secrets: secrets, body: body, check: func(b []byte) error { return podreview.Check(b, pod, uid) }}, nil
}

// errBadAnswer is wrapped when the injector answers anything but the
// injection during load.
var errBadAnswer = errors.New("bad webhook answer")

// post sends one review and returns the body of a 200 answer.
func post(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", errBadAnswer, resp.StatusCode)
	}
	return b, nil
}

// allowedMarker is in every admitted answer; checking for it during load
// costs the generator (which shares the cores) almost nothing, while the
// full check runs before each point.
var allowedMarker = []byte(`"allowed":true`)

// loadRun is one load run's raw result.
type loadRun struct {
	latencies []time.Duration
	elapsed   time.Duration
	cpu       time.Duration // the injector's CPU time over the measured part
}

// drive keeps conc requests in flight for warmup (discarded) and then dur,
// recording every latency. pid is the injector's, for its CPU time.
func drive(ctx context.Context, c *http.Client, url string, r request, conc int, warmup, dur time.Duration, pid int) (loadRun, error) {
	if b, err := post(ctx, c, url, r.body); err != nil {
		return loadRun{}, err
	} else if err := r.check(b); err != nil {
		return loadRun{}, err
	}
	if warmup > 0 {
		if _, err := load(ctx, c, url, r.body, conc, warmup); err != nil {
			return loadRun{}, err
		}
	}
	cpu0, err := processCPU(pid)
	if err != nil {
		return loadRun{}, err
	}
	start := time.Now()
	lats, err := load(ctx, c, url, r.body, conc, dur)
	elapsed := time.Since(start)
	if err != nil {
		return loadRun{}, err
	}
	cpu1, err := processCPU(pid)
	if err != nil {
		return loadRun{}, err
	}
	return loadRun{latencies: lats, elapsed: elapsed, cpu: cpu1 - cpu0}, nil
}

// load runs conc workers for dur, each sending the next request as soon as
// its previous one is answered (a closed loop, as the API server's callers
// are). The first failure stops every worker.
func load(ctx context.Context, c *http.Client, url string, body []byte, conc int, dur time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Now().Add(dur)
	per := make([][]time.Duration, conc)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				b, err := post(ctx, c, url, body)
				if err == nil && !bytes.Contains(b, allowedMarker) {
					err = fmt.Errorf("%w: not allowed: %.200s", errBadAnswer, b)
				}
				if err != nil {
					if ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, &err)
					}
					cancel()
					break
				}
				lats = append(lats, time.Since(t0))
			}
			per[w] = lats
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, *e
	}
	if err := ctx.Err(); err != nil && time.Now().Before(deadline) {
		return nil, err
	}
	return slices.Concat(per...), nil
}

// point is one (secrets, concurrency) result.
type point struct {
	secrets, concurrency int
	requests             int
	throughput           float64 // admissions per second
	p50, p99, max        time.Duration
	cpuPerAdmission      time.Duration // injector CPU per admission
}

func summarize(secrets, conc int, r loadRun) point {
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	p := point{secrets: secrets, concurrency: conc, requests: len(s)}
	if len(s) == 0 {
		return p
	}
	p.throughput = float64(len(s)) / r.elapsed.Seconds()
	p.p50, p.p99, p.max = quantile(s, 0.50), quantile(s, 0.99), s[len(s)-1]
	p.cpuPerAdmission = r.cpu / time.Duration(len(s))
	return p
}

// quantile of sorted s, nearest rank.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
