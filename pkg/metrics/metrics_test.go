package metrics

import (
	"bufio"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, r *Registry) (string, http.Header) {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Header
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	renders := r.NewCounterVec("x_renders_total", "Files written,\nby secret \\ name.", "secret")
	renders.WithLabelValues("db").Inc()
	renders.WithLabelValues(`we"ird\name` + "\n").Add(2)
	renders.WithLabelValues("db").Add(-5) // a counter never goes down
	r.NewCounterVec("x_unused_total", "Never counted.", "secret")
	ttl := r.NewGauge("x_ttl_seconds", "TTL.")
	ttl.Set(3600)
	r.NewCounter("x_renewals_total", "Renewals.").Inc()
	r.NewFunc("x_lease_ttl_seconds", "Per path.", KindGauge, "path", func() []Sample {
		return []Sample{{LabelValue: "database/creds/app", Value: 12.5}}
	})
	r.NewFunc("x_empty", "No samples.", KindGauge, "path", func() []Sample { return nil })
	r.NewFunc("x_inf", "Special values.", KindGauge, "", func() []Sample { return []Sample{{Value: math.Inf(1)}} })
	r.NewFunc("x_big", "Large.", KindCounter, "", func() []Sample { return []Sample{{Value: 123456789}} })

	got, h := scrape(t, r)
	want := `# HELP x_renders_total Files written,\nby secret \\ name.
# TYPE x_renders_total counter
x_renders_total{secret="db"} 1
x_renders_total{secret="we\"ird\\name\n"} 2
# HELP x_ttl_seconds TTL.
# TYPE x_ttl_seconds gauge
x_ttl_seconds 3600
# HELP x_renewals_total Renewals.
# TYPE x_renewals_total counter
x_renewals_total 1
# HELP x_lease_ttl_seconds Per path.
# TYPE x_lease_ttl_seconds gauge
x_lease_ttl_seconds{path="database/creds/app"} 12.5
# HELP x_inf Special values.
# TYPE x_inf gauge
x_inf +Inf
# HELP x_big Large.
# TYPE x_big counter
x_big 1.23456789e+08
`
	if got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	// Prometheus's own parser reads it back, values and labels intact.
	families := parse(t, got)
	if v := families["x_renders_total"].Metric[1].Label[0].GetValue(); v != `we"ird\name`+"\n" {
		t.Errorf("label value read back as %q", v)
	}
	if v := families["x_big"].Metric[0].Counter.GetValue(); v != 123456789 {
		t.Errorf("x_big read back as %v", v)
	}
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the exposition: %v\n%s", err, text)
	}
	return families
}

// runtimeFamilies is every family the Prometheus client's default Go and
// process collectors expose on Linux (client_golang v1.25, Go 1.26), with
// its type: AddRuntime must expose exactly these.
var runtimeFamilies = map[string]dto.MetricType{
	"go_gc_duration_seconds":               dto.MetricType_SUMMARY,
	"go_gc_gogc_percent":                   dto.MetricType_GAUGE,
	"go_gc_gomemlimit_bytes":               dto.MetricType_GAUGE,
	"go_goroutines":                        dto.MetricType_GAUGE,
	"go_info":                              dto.MetricType_GAUGE,
	"go_memstats_alloc_bytes":              dto.MetricType_GAUGE,
	"go_memstats_alloc_bytes_total":        dto.MetricType_COUNTER,
	"go_memstats_buck_hash_sys_bytes":      dto.MetricType_GAUGE,
	"go_memstats_frees_total":              dto.MetricType_COUNTER,
	"go_memstats_gc_sys_bytes":             dto.MetricType_GAUGE,
	"go_memstats_heap_alloc_bytes":         dto.MetricType_GAUGE,
	"go_memstats_heap_idle_bytes":          dto.MetricType_GAUGE,
	"go_memstats_heap_inuse_bytes":         dto.MetricType_GAUGE,
	"go_memstats_heap_objects":             dto.MetricType_GAUGE,
	"go_memstats_heap_released_bytes":      dto.MetricType_GAUGE,
	"go_memstats_heap_sys_bytes":           dto.MetricType_GAUGE,
	"go_memstats_last_gc_time_seconds":     dto.MetricType_GAUGE,
	"go_memstats_mallocs_total":            dto.MetricType_COUNTER,
	"go_memstats_mcache_inuse_bytes":       dto.MetricType_GAUGE,
	"go_memstats_mcache_sys_bytes":         dto.MetricType_GAUGE,
	"go_memstats_mspan_inuse_bytes":        dto.MetricType_GAUGE,
	"go_memstats_mspan_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_next_gc_bytes":            dto.MetricType_GAUGE,
	"go_memstats_other_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_stack_inuse_bytes":        dto.MetricType_GAUGE,
	"go_memstats_stack_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_sys_bytes":                dto.MetricType_GAUGE,
	"go_sched_gomaxprocs_threads":          dto.MetricType_GAUGE,
	"go_threads":                           dto.MetricType_GAUGE,
	"process_cpu_seconds_total":            dto.MetricType_COUNTER,
	"process_max_fds":                      dto.MetricType_GAUGE,
	"process_network_receive_bytes_total":  dto.MetricType_COUNTER,
	"process_network_transmit_bytes_total": dto.MetricType_COUNTER,
	"process_open_fds":                     dto.MetricType_GAUGE,
	"process_resident_memory_bytes":        dto.MetricType_GAUGE,
	"process_start_time_seconds":           dto.MetricType_GAUGE,
	"process_virtual_memory_bytes":         dto.MetricType_GAUGE,
	"process_virtual_memory_max_bytes":     dto.MetricType_GAUGE,
}

// TestRuntimeFamilies: the exposition holds exactly the client's Go and
// process families, each with the client's type, and RuntimeNames (what
// the README lists) names the same set.
func TestRuntimeFamilies(t *testing.T) {
	r := NewRegistry()
	r.AddRuntime()
	text, _ := scrape(t, r)
	families := parse(t, text)
	for name, want := range runtimeFamilies {
		f, ok := families[name]
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case f.GetType() != want:
			t.Errorf("%s is a %v, want a %v", name, f.GetType(), want)
		}
	}
	for name := range families {
		if _, ok := runtimeFamilies[name]; !ok {
			t.Errorf("%s is not one of the client's families", name)
		}
	}
	if got, want := slices.Sorted(slices.Values(RuntimeNames)), slices.Sorted(maps.Keys(runtimeFamilies)); !slices.Equal(got, want) {
		t.Errorf("RuntimeNames:\n%v\nwant:\n%v", got, want)
	}
}

// TestRuntimeMetrics: the Go and process metrics hold plausible values
// for this test process, after at least one garbage collection, and the
// collector's settings as they were set.
func TestRuntimeMetrics(t *testing.T) {
	const gogc, limit = 73, 1 << 40
	defer debug.SetGCPercent(debug.SetGCPercent(gogc))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(limit))
	runtime.GC()
	r := NewRegistry()
	r.AddRuntime()
	text, _ := scrape(t, r)
	families := parse(t, text)
	for name, check := range map[string]func(float64) bool{
		"go_goroutines":                    func(v float64) bool { return v >= 1 },
		"go_threads":                       func(v float64) bool { return v >= 1 },
		"go_memstats_heap_alloc_bytes":     func(v float64) bool { return v > 0 },
		"go_memstats_alloc_bytes_total":    func(v float64) bool { return v > 0 },
		"go_memstats_heap_objects":         func(v float64) bool { return v > 0 },
		"go_memstats_mallocs_total":        func(v float64) bool { return v > 0 },
		"go_memstats_sys_bytes":            func(v float64) bool { return v > 0 },
		"go_memstats_last_gc_time_seconds": func(v float64) bool { return v > 1.6e9 },
		"go_gc_gogc_percent":               func(v float64) bool { return v == gogc },
		"go_gc_gomemlimit_bytes":           func(v float64) bool { return v == limit },
		"go_sched_gomaxprocs_threads":      func(v float64) bool { return v == float64(runtime.GOMAXPROCS(0)) },
		"process_resident_memory_bytes":    func(v float64) bool { return v > 1<<20 },
		"process_virtual_memory_bytes":     func(v float64) bool { return v > 1<<20 },
		"process_virtual_memory_max_bytes": func(v float64) bool { return v > 1<<20 },
		"process_open_fds":                 func(v float64) bool { return v >= 3 },
		"process_max_fds":                  func(v float64) bool { return v >= 3 },
		"process_start_time_seconds":       func(v float64) bool { return v > 1.6e9 },
		"process_cpu_seconds_total":        func(v float64) bool { return v > 0 },
	} {
		f, ok := families[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		m := f.Metric[0]
		v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if !check(v) {
			t.Errorf("%s = %v, implausible", name, v)
		}
	}
	gc := families["go_gc_duration_seconds"].GetMetric()[0].GetSummary()
	if gc.GetSampleCount() < 1 || gc.GetSampleSum() <= 0 {
		t.Errorf("go_gc_duration_seconds: %d collections, %v s of pauses after runtime.GC()", gc.GetSampleCount(), gc.GetSampleSum())
	}
	var qs []float64
	for _, q := range gc.GetQuantile() {
		qs = append(qs, q.GetQuantile())
		if q.GetValue() < 0 || q.GetValue() > gc.GetSampleSum() {
			t.Errorf("go_gc_duration_seconds quantile %v = %v, outside 0..sum", q.GetQuantile(), q.GetValue())
		}
	}
	if !slices.Equal(qs, []float64{0, 0.25, 0.5, 0.75, 1}) {
		t.Errorf("go_gc_duration_seconds quantiles %v, want the client's 0, 0.25, 0.5, 0.75, 1", qs)
	}
	if v := families["go_info"].Metric[0].Label[0].GetValue(); !strings.HasPrefix(v, "go") {
		t.Errorf("go_info version %q", v)
	}
}

func TestWriteToBuffers(t *testing.T) {
	r := NewRegistry()
	r.NewGauge("g", "A gauge.").SetToCurrentTime()
	var b strings.Builder
	w := bufio.NewWriter(&b)
	r.WriteTo(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	families := parse(t, b.String())
	if v := families["g"].Metric[0].Gauge.GetValue(); v < 1.6e9 {
		t.Errorf("SetToCurrentTime set %v", v)
	}
}

// TestSameFamiliesAsTheClient: against the Prometheus client's own default
// Go and process collectors, in this process: the same families, each with
// the same type and help text.
func TestSameFamiliesAsTheClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	theirs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	r.AddRuntime()
	text, _ := scrape(t, r)
	ours := parse(t, text)
	for _, f := range theirs {
		o, ok := ours[f.GetName()]
		if !ok {
			t.Errorf("%s (%v) missing", f.GetName(), f.GetType())
			continue
		}
		if o.GetType() != f.GetType() || o.GetHelp() != f.GetHelp() {
			t.Errorf("%s: ours a %v %q; the client's a %v %q", f.GetName(), o.GetType(), o.GetHelp(), f.GetType(), f.GetHelp())
		}
		delete(ours, f.GetName())
	}
	for name := range ours {
		t.Errorf("%s is not one of the client's families", name)
	}
}
