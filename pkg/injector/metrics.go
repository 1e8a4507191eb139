package injector

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the injector's Prometheus metrics.
type Metrics struct {
	admissions *prometheus.CounterVec
	latency    *prometheus.HistogramVec
}

// NewMetrics registers the injector's metrics with reg. Registering twice
// (several injectors in one test process) reuses the first collectors.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_injector_admissions_total",
			Help: "Pod admissions by namespace, outcome (injected, skipped, denied, error) and reason code.",
		}, []string{"namespace", "outcome", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blinkchamber_injector_admission_duration_seconds",
			Help:    "Time to answer one pod admission, by outcome.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"outcome"}),
	}
	var err error
	if m.admissions, err = register(reg, m.admissions); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *Metrics) observe(namespace, outcome, reason string, d time.Duration) {
	m.admissions.WithLabelValues(namespace, outcome, reason).Inc()
	m.latency.WithLabelValues(outcome).Observe(d.Seconds())
}
