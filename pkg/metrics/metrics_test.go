package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

// TestRuntimeMetrics: the Go and process metrics are there, parse, and
// hold plausible values for this test process.
func TestRuntimeMetrics(t *testing.T) {
	r := NewRegistry()
	r.AddRuntime()
	text, _ := scrape(t, r)
	families := parse(t, text)
	for name, check := range map[string]func(float64) bool{
		"go_goroutines":                 func(v float64) bool { return v >= 1 },
		"go_threads":                    func(v float64) bool { return v >= 1 },
		"go_memstats_heap_alloc_bytes":  func(v float64) bool { return v > 0 },
		"go_memstats_sys_bytes":         func(v float64) bool { return v > 0 },
		"process_resident_memory_bytes": func(v float64) bool { return v > 1<<20 },
		"process_virtual_memory_bytes":  func(v float64) bool { return v > 1<<20 },
		"process_open_fds":              func(v float64) bool { return v >= 3 },
		"process_max_fds":               func(v float64) bool { return v >= 3 },
		"process_start_time_seconds":    func(v float64) bool { return v > 1.6e9 },
		"process_cpu_seconds_total":     func(v float64) bool { return v > 0 },
		"go_gc_cycles_total":            func(v float64) bool { return v >= 0 },
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
