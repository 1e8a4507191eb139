package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*options)
		flag string // the flag the error must name; "" for valid
	}{
		{"defaults", func(*options) {}, ""},
		{"no soak", func(o *options) { o.soak, o.sampleEvery = 0, 0 }, ""},
		{"no secrets", func(o *options) { o.secrets = nil }, "-secrets"},
		{"zero secrets", func(o *options) { o.secrets = intList{0} }, "-secrets"},
		{"huge concurrency", func(o *options) { o.concurrency = intList{1, 5000} }, "-concurrency"},
		{"short duration", func(o *options) { o.duration = time.Millisecond }, "-duration"},
		{"negative warm-up", func(o *options) { o.warmup = -time.Second }, "-warmup"},
		{"sampling slower than the soak", func(o *options) { o.sampleEvery = time.Minute }, "-sample-every"},
		{"soak without workers", func(o *options) { o.soakConcurrency = 0 }, "-soak-concurrency"},
		{"soak without secrets", func(o *options) { o.soakSecrets = 0 }, "-soak-secrets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			tc.edit(&o)
			err := o.validate()
			if tc.flag == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errOptions) || !strings.Contains(err.Error(), tc.flag+":") {
				t.Fatalf("validate() = %v, want an error naming %s", err, tc.flag)
			}
		})
	}
}

func TestIntListSet(t *testing.T) {
	var l intList
	if err := l.Set("1, 16,64"); err != nil || l.String() != "1,16,64" {
		t.Fatalf("Set = %v, list %s", err, l.String())
	}
	if err := l.Set("1,x"); err == nil {
		t.Fatal("Set accepted a word")
	}
}

func TestQuantile(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile(%v) = %s, want %s", q, got, want)
		}
	}
	if got := quantile(s[:1], 0.99); got != time.Millisecond {
		t.Errorf("quantile of one = %s", got)
	}
}

func TestFlatness(t *testing.T) {
	samples := func(rss []int64, g []int) soakResult {
		var r soakResult
		for i := range rss {
			r.samples = append(r.samples, sample{at: time.Duration(i) * time.Second, rssKiB: rss[i], goroutines: g[i]})
		}
		return r
	}
	cases := []struct {
		name string
		r    soakResult
		flat bool
	}{
		{"steady", samples([]int64{40000, 41000, 40500, 41200}, []int{40, 44, 42, 43}), true},
		{"memory grows", samples([]int64{40000, 41000, 46000, 52000}, []int{40, 44, 42, 43}), false},
		{"one collection's peak late", samples([]int64{40000, 41000, 40500, 41200, 40800, 46000}, []int{40, 44, 42, 43, 42, 43}), true},
		{"memory creeps up", samples([]int64{40000, 40500, 41000, 44000, 45000, 46000}, []int{40, 44, 42, 43, 42, 43}), false},
		{"goroutines leak", samples([]int64{40000, 41000, 40500, 41200}, []int{40, 44, 60, 80}), false},
	}
	for _, tc := range cases {
		if got := tc.r.flatness().flat(); got != tc.flat {
			t.Errorf("%s: flat = %v, want %v (%+v)", tc.name, got, tc.flat, tc.r.flatness())
		}
	}
}

func TestParseBench(t *testing.T) {
	out := "goos: linux\nBenchmarkAdmission/secrets=3-2   \t    2000\t   612345 ns/op\t  401234 cpu-ns/op\t  223253 B/op\t    3179 allocs/op\nPASS\n"
	lines := parseBench(out)
	if len(lines) != 1 || lines[0].name != "BenchmarkAdmission/secrets=3-2" {
		t.Fatalf("parseBench = %+v", lines)
	}
	want := map[string]float64{"ns/op": 612345, "cpu-ns/op": 401234, "B/op": 223253, "allocs/op": 3179}
	for unit, v := range want {
		if lines[0].metrics[unit] != v {
			t.Errorf("%s = %v, want %v", unit, lines[0].metrics[unit], v)
		}
	}
}

func TestCumShares(t *testing.T) {
	top := `      flat  flat%   sum%        cum   cum%
         0     0%     0%      1.10s 32.54%  gomodules.xyz/jsonpatch/v2.CreatePatch
     0.01s   0.3%   0.3%      0.29s  8.58%  github.com/blinkchamber/blinkchamber/pkg/mutate.Mutate
`
	got := cumShares(top, profiled)
	if len(got) != 2 || got[0].percent != 8.58 || got[1].percent != 32.54 { // in the order of profiled
		t.Fatalf("cumShares = %+v", got)
	}
}

func TestInjectorGOGC(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "400": true, "off": true, "0": false, "lots": false} {
		o := defaultOptions()
		o.injectorGOGC = v
		if err := o.validate(); (err == nil) != ok {
			t.Errorf("-injector-gogc %q: %v", v, err)
		}
	}
}

// TestRenderReference: the verdict on the ceiling follows the numbers.
func TestRenderReference(t *testing.T) {
	at := func(rate float64) []point {
		return []point{{secrets: targetSecrets, concurrency: targetConcurrency, throughput: rate, p99: time.Millisecond}}
	}
	cases := []struct {
		name                string
		injector, reference float64
		want                string
	}{
		{"ceiling below the target", 2500, 4000, "cannot be met by removing our own work"},
		{"ceiling above the target", 2500, 9000, "its own work"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			renderReference(&b, at(tc.injector), at(tc.reference))
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("got %q, want it to contain %q", b.String(), tc.want)
			}
			if share := fmt.Sprintf("reached %.0f %%", 100*tc.injector/tc.reference); !strings.Contains(b.String(), share) {
				t.Errorf("got %q, want %q", b.String(), share)
			}
		})
	}
}

// TestRuntimeEnv: the injector runs with what the chart's Deployment sets
// (GOMEMLIMIT 80 % of its 128Mi limit), and the flag replaces only GOGC.
func TestRuntimeEnv(t *testing.T) {
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for gogc, want := range map[string][]string{
		"":    {"GOGC=400", "GOMEMLIMIT=102MiB"},
		"100": {"GOGC=100", "GOMEMLIMIT=102MiB"},
	} {
		got, err := runtimeEnv(repo, gogc)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("runtimeEnv(%q) = %q, %v; want %q", gogc, got, err, want)
		}
	}
}
