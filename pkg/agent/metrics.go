package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics, on its own registry (one
// agent per process; no global state).
type metrics struct {
	registry        *prometheus.Registry
	renders         *prometheus.CounterVec
	renderErrors    *prometheus.CounterVec
	commandFailures *prometheus.CounterVec
	signalled       *prometheus.CounterVec
	signalNoProcess *prometheus.CounterVec
	signalFailures  *prometheus.CounterVec
	reloadFailures  *prometheus.CounterVec
	logins          *prometheus.CounterVec
	tokenTTL        prometheus.Gauge
	tokenRenewals   prometheus.Counter
	renewals        prometheus.Counter
	lastRender      prometheus.Gauge
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_renders_total", Help: "Files written because their content changed, by secret name.",
		}, []string{"secret"}),
		renderErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_render_errors_total", Help: "Failed renders, by secret name.",
		}, []string{"secret"}),
		commandFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_command_failures_total", Help: "Per-secret commands that failed after a render.",
		}, []string{"secret"}),
		signalled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_signals_sent_total", Help: "Processes signalled after a render, by secret name.",
		}, []string{"secret"}),
		signalNoProcess: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_signal_no_process_total", Help: "Renders after which no process had the name to signal, by secret name.",
		}, []string{"secret"}),
		signalFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_signal_failures_total", Help: "Renders after which a process could not be signalled (e.g. another uid), by secret name.",
		}, []string{"secret"}),
		reloadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_reload_failures_total", Help: "Reload URL calls that failed every attempt, by secret name.",
		}, []string{"secret"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blinkchamber_agent_logins_total", Help: "Vault logins, by result.",
		}, []string{"result"}),
		tokenTTL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blinkchamber_agent_token_ttl_seconds", Help: "TTL of the Vault token at its last login or renewal.",
		}),
		tokenRenewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blinkchamber_agent_token_renewals_total", Help: "Vault token renewals.",
		}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blinkchamber_agent_lease_renewals_total", Help: "Secret lease renewals.",
		}),
		lastRender: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blinkchamber_agent_last_render_timestamp_seconds", Help: "Unix time of the last render in which every secret rendered.",
		}),
	}
	m.registry.MustRegister(m.renders, m.renderErrors, m.commandFailures, m.signalled, m.signalNoProcess,
		m.signalFailures, m.reloadFailures, m.logins, m.tokenTTL,
		m.tokenRenewals, m.renewals, m.lastRender,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(&agentCollector{agent: a})
	return m
}

// agentCollector reports values read at scrape time: leases and their
// remaining TTL, and the Vault requests made so far.
type agentCollector struct{ agent *Agent }

var (
	leaseTTLDesc = prometheus.NewDesc("blinkchamber_agent_lease_ttl_seconds",
		"Seconds left on each leased secret, by Vault path.", []string{"path"}, nil)
	leasesDesc = prometheus.NewDesc("blinkchamber_agent_leases",
		"Leased secrets the agent holds.", nil, nil)
	requestsDesc = prometheus.NewDesc("blinkchamber_agent_vault_requests_total",
		"HTTP requests sent to Vault.", nil, nil)
)

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaseTTLDesc
	ch <- leasesDesc
	ch <- requestsDesc
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.agent
	n := 0
	for _, e := range a.cache.snapshot() {
		if e.Expires.IsZero() {
			continue
		}
		n++
		ch <- prometheus.MustNewConstMetric(leaseTTLDesc, prometheus.GaugeValue, timeLeft(e.Expires), e.Req.Path)
	}
	ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(a.requests.Load()))
}

func timeLeft(t time.Time) float64 { return max(time.Until(t).Seconds(), 0) }
