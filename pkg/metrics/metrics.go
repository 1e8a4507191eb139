// Package metrics is the agent's Prometheus endpoint: counters and gauges,
// with at most one label, written in the Prometheus text exposition format
// (version 0.0.4), plus the Go runtime and process metrics operators
// expect.
//
// It replaces the Prometheus client library in the agent, which runs in
// every pod: that library encodes through protobuf and registers its
// descriptors at start, and its code and data were a measured part of the
// agent's resident memory (docs/benchmarks.md). The agent needs none of
// what it adds beyond this text.
package metrics

import (
	"bufio"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metrics in the order they were added and writes them.
type Registry struct {
	mu      sync.Mutex
	writers []func(*bufio.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(w func(*bufio.Writer)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writers = append(r.writers, w)
}

// Handler serves every metric in the text exposition format.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		b := bufio.NewWriter(w)
		r.WriteTo(b)
		_ = b.Flush()
	})
}

// WriteTo writes every metric to b.
func (r *Registry) WriteTo(b *bufio.Writer) {
	r.mu.Lock()
	writers := slices.Clone(r.writers)
	r.mu.Unlock()
	for _, w := range writers {
		w(b)
	}
}

// value is a float64 updated atomically.
type value struct{ bits atomic.Uint64 }

func (v *value) load() float64 { return math.Float64frombits(v.bits.Load()) }

func (v *value) set(f float64) { v.bits.Store(math.Float64bits(f)) }

func (v *value) add(f float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+f)) {
			return
		}
	}
}

// Counter only goes up.
type Counter struct{ v value }

// Inc adds one.
func (c *Counter) Inc() { c.v.add(1) }

// Add adds d, which must not be negative (a counter never goes down).
func (c *Counter) Add(d float64) {
	if d > 0 {
		c.v.add(d)
	}
}

// Value is the current count.
func (c *Counter) Value() float64 { return c.v.load() }

// Gauge is a value that is set.
type Gauge struct{ v value }

// Set sets the value.
func (g *Gauge) Set(f float64) { g.v.set(f) }

// SetToCurrentTime sets the value to the Unix time in seconds.
func (g *Gauge) SetToCurrentTime() { g.Set(float64(time.Now().UnixNano()) / 1e9) }

// Value is the current value.
func (g *Gauge) Value() float64 { return g.v.load() }

// NewCounter adds a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := &Counter{}
	r.addSingle(name, help, KindCounter, &c.v)
	return c
}

// NewGauge adds a gauge without labels.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := &Gauge{}
	r.addSingle(name, help, KindGauge, &g.v)
	return g
}

func (r *Registry) addSingle(name, help string, kind Kind, v *value) {
	r.add(func(b *bufio.Writer) {
		header(b, name, help, string(kind))
		sample(b, name, "", "", v.load())
	})
}

// CounterVec is a counter per value of one label.
type CounterVec struct {
	mu sync.Mutex
	m  map[string]*Counter
}

// NewCounterVec adds a counter with one label; a label value appears once
// it has been counted.
func (r *Registry) NewCounterVec(name, help, label string) *CounterVec {
	v := &CounterVec{m: map[string]*Counter{}}
	r.add(func(b *bufio.Writer) {
		v.mu.Lock()
		keys := make([]string, 0, len(v.m))
		for k := range v.m {
			keys = append(keys, k)
		}
		v.mu.Unlock()
		if len(keys) == 0 {
			return
		}
		slices.Sort(keys)
		header(b, name, help, "counter")
		for _, k := range keys {
			sample(b, name, label, k, v.WithLabelValues(k).Value())
		}
	})
	return v
}

// WithLabelValues is the counter for one label value.
func (v *CounterVec) WithLabelValues(value string) *Counter {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[value]
	if !ok {
		c = &Counter{}
		v.m[value] = c
	}
	return c
}

// Sample is one value of a metric read at scrape time.
type Sample struct {
	LabelValue string // "" when the metric has no label
	Value      float64
}

// Kind is a metric's Prometheus type.
type Kind string

const (
	KindCounter Kind = "counter"
	KindGauge   Kind = "gauge"
)

// NewFunc adds a metric whose samples read is called for at each scrape;
// label names the label of samples that carry one. A metric with no
// samples is left out.
func (r *Registry) NewFunc(name, help string, kind Kind, label string, read func() []Sample) {
	r.add(func(b *bufio.Writer) {
		samples := read()
		if len(samples) == 0 {
			return
		}
		header(b, name, help, string(kind))
		for _, s := range samples {
			l := label
			if s.LabelValue == "" {
				l = ""
			}
			sample(b, name, l, s.LabelValue, s.Value)
		}
	})
}

func header(b *bufio.Writer, name, help, kind string) {
	b.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	b.WriteString("# TYPE " + name + " " + kind + "\n")
}

func sample(b *bufio.Writer, name, label, labelValue string, v float64) {
	b.WriteString(name)
	if label != "" {
		b.WriteString("{" + label + `="` + labelEscaper.Replace(labelValue) + `"}`)
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatFloat writes a value as Prometheus's own text encoder does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
