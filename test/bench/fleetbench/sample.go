package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
)

// sample is the CPU seconds used so far by each server, this process (the
// counting proxy) and the whole machine.
type sample struct {
	at                    time.Time
	vault, api, etcd, own float64
	machine               procstat.Machine
}

func (e *env) sample() sample {
	m, _ := procstat.ReadMachine()
	return sample{at: time.Now(), vault: procstat.CPUSeconds(e.vaultPID), api: procstat.CPUSeconds(e.apiPID),
		etcd: procstat.CPUSeconds(e.etcdPID), own: procstat.CPUSeconds(os.Getpid()), machine: m}
}

// sampler samples every samplePeriod, for peaks over 1 s.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

const samplePeriod = 250 * time.Millisecond

func (e *env) startSampler() *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(samplePeriod)
		defer t.Stop()
		for {
			smp := e.sample()
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) close() []sample {
	close(s.stop)
	<-s.done
	return s.samples
}

// peakCores is the highest CPU use (in cores) of what get reads, over any
// window of at least 1 s between samples taken in [from, to].
func peakCores(samples []sample, from, to time.Time, get func(sample) float64) float64 {
	var in []sample
	for _, s := range samples {
		if !s.at.Before(from) && !s.at.After(to) {
			in = append(in, s)
		}
	}
	peak := 0.0
	j := 0
	for i := range in {
		for j < len(in) && in[j].at.Sub(in[i].at) < time.Second {
			j++
		}
		if j == len(in) {
			break
		}
		peak = max(peak, (get(in[j])-get(in[i]))/in[j].at.Sub(in[i].at).Seconds())
	}
	return peak
}

// reviews is the API server's own account of the TokenReview calls it
// served (Vault makes one per login): how many and their summed latency.
type reviews struct {
	count int64
	sum   float64
}

// tokenReviews reads apiserver_request_duration_seconds for POST
// tokenreviews from the API server's /metrics.
func (e *env) tokenReviews(ctx context.Context) (reviews, error) {
	b, err := e.cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return reviews{}, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	return parseTokenReviews(b)
}

func parseTokenReviews(b []byte) (reviews, error) {
	var r reviews
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.Contains(rest, `resource="tokenreviews"`) || !strings.Contains(rest, `verb="POST"`) {
			continue
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return r, fmt.Errorf("API server metric %s: %w", name, err)
		}
		switch name {
		case "apiserver_request_duration_seconds_sum":
			r.sum += v
		case "apiserver_request_duration_seconds_count":
			r.count += int64(v)
		}
	}
	return r, sc.Err()
}

func (r reviews) minus(o reviews) reviews {
	return reviews{count: r.count - o.count, sum: r.sum - o.sum}
}

func (r reviews) mean() time.Duration {
	if r.count == 0 {
		return 0
	}
	return time.Duration(r.sum / float64(r.count) * float64(time.Second))
}
