package main

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func validOptions() options {
	return options{sizes: []int{10}, secrets: 1, interval: 5 * time.Second, tokenTTL: time.Hour,
		settle: 5 * time.Second, idle: time.Minute, timeout: 5 * time.Minute}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*options)
		field  string // "" when valid
	}{
		{"defaults", func(*options) {}, ""},
		{"no secrets", func(o *options) { o.secrets = 0 }, "-secrets"},
		{"interval below the agent's minimum", func(o *options) { o.interval = 100 * time.Millisecond }, "-render-interval"},
		{"short token ttl", func(o *options) { o.tokenTTL = time.Second }, "-token-ttl"},
		{"negative settle", func(o *options) { o.settle = -time.Second }, "-settle"},
		{"idle shorter than two intervals", func(o *options) { o.interval = 10 * time.Second; o.idle = 15 * time.Second }, "-idle"},
		{"short timeout", func(o *options) { o.timeout = time.Second }, "-timeout"},
		{"plot not png", func(o *options) { o.plot = "fleet.svg" }, "-plot"},
		{"agent source without cmd/agent", func(o *options) { o.agentSrc = t.TempDir() }, "-agent-src"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.change(&o)
			err := o.validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, errOption) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("validate = %v, want an errOption naming %s", err, tt.field)
			}
		})
	}
}

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"10,100,500", []int{10, 100, 500}},
		{" 7 ", []int{7}},
		{"0", nil},
		{"10,x", nil},
		{"5000", nil},
	}
	for _, tt := range tests {
		got, err := parseSizes(tt.in)
		if tt.want == nil {
			if !errors.Is(err, errOption) {
				t.Errorf("parseSizes(%q) = %v, %v; want errOption", tt.in, got, err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) || got[0] != tt.want[0] || got[len(got)-1] != tt.want[len(tt.want)-1] {
			t.Errorf("parseSizes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestPeakPerSecond(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms ...int) []request {
		var out []request
		for _, m := range ms {
			out = append(out, request{at: t0.Add(time.Duration(m) * time.Millisecond)})
		}
		return out
	}
	tests := []struct {
		name string
		reqs []request
		want int
	}{
		{"none", nil, 0},
		{"one per second", at(0, 1000, 2000, 3000), 1},
		{"a burst across a second boundary", at(0, 900, 1100, 1500, 2600), 3},
		{"unsorted", at(3000, 10, 20, 2990), 2},
	}
	for _, tt := range tests {
		if got := peakPerSecond(tt.reqs); got != tt.want {
			t.Errorf("%s: peakPerSecond = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for p, want := range map[int]time.Duration{50: 5, 95: 10, 100: 10, 1: 1} {
		if got := percentile(ds, p); got != want {
			t.Errorf("percentile(%d) = %d, want %d", p, got, want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing = %d, want 0", got)
	}
}

func TestPeakCores(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var samples []sample
	// 0.5 cores for 4 s, then 2 cores for 1 s, sampled every 250 ms.
	cpu := 0.0
	for i := range 21 {
		samples = append(samples, sample{at: t0.Add(time.Duration(i) * samplePeriod), vault: cpu})
		if i < 16 {
			cpu += 0.5 * samplePeriod.Seconds()
		} else {
			cpu += 2 * samplePeriod.Seconds()
		}
	}
	got := peakCores(samples, t0, t0.Add(10*time.Second), func(s sample) float64 { return s.vault })
	if got < 1.99 || got > 2.01 {
		t.Errorf("peakCores = %.3f, want 2", got)
	}
}

func TestParseTokenReviews(t *testing.T) {
	metrics := `# HELP apiserver_request_duration_seconds x
apiserver_request_duration_seconds_bucket{component="apiserver",group="authentication.k8s.io",resource="tokenreviews",verb="POST",le="0.05"} 3
apiserver_request_duration_seconds_sum{component="apiserver",group="authentication.k8s.io",resource="tokenreviews",scope="cluster",verb="POST",version="v1"} 0.75
apiserver_request_duration_seconds_count{component="apiserver",group="authentication.k8s.io",resource="tokenreviews",scope="cluster",verb="POST",version="v1"} 5
apiserver_request_duration_seconds_sum{component="apiserver",resource="pods",verb="POST"} 9
apiserver_request_duration_seconds_count{component="apiserver",resource="pods",verb="POST"} 90
`
	r, err := parseTokenReviews([]byte(metrics))
	if err != nil || r.count != 5 || r.mean() != 150*time.Millisecond {
		t.Errorf("parseTokenReviews = %+v (mean %s), %v; want 5 reviews of 150ms", r, r.mean(), err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		method, path string
		want         class
	}{
		{http.MethodPut, "/v1/auth/kubernetes/login", classLogin},
		{http.MethodGet, "/v1/secret/data/fleet/s00", classRead},
		{http.MethodPut, "/v1/sys/leases/renew", classLeaseRenew},
		{http.MethodPut, "/v1/auth/token/renew-self", classTokenRenew},
		{http.MethodGet, "/v1/auth/token/lookup-self", classLookup},
		{http.MethodPost, "/v1/auth/token/revoke-self", classOther},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, "http://vault"+tt.path, nil)
		if got := classify(r); got != tt.want {
			t.Errorf("classify(%s %s) = %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestEach(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	if err := each(100, 8, func(i int) error { mu.Lock(); seen[i]++; mu.Unlock(); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if seen[i] != 1 {
			t.Fatalf("item %d ran %d times, want once", i, seen[i])
		}
	}
	boom := errors.New("boom")
	var ran atomic.Int64
	err := each(1000, 4, func(i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		// Slow enough that the others see the stop long before the end.
		time.Sleep(time.Millisecond)
		return nil
	})
	if !errors.Is(err, boom) || ran.Load() == 1000 {
		t.Fatalf("each = %v after %d of 1000 items, want boom and an early stop", err, ran.Load())
	}
}
