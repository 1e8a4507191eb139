package agent

import (
	"sort"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/metrics"
)

// agentMetrics are the agent's Prometheus metrics, on its own registry (one
// agent per process; no global state).
type agentMetrics struct {
	registry        *metrics.Registry
	renders         *metrics.CounterVec
	renderErrors    *metrics.CounterVec
	commandFailures *metrics.CounterVec
	signalled       *metrics.CounterVec
	signalNoProcess *metrics.CounterVec
	signalFailures  *metrics.CounterVec
	reloadFailures  *metrics.CounterVec
	logins          *metrics.CounterVec
	tokenTTL        *metrics.Gauge
	tokenRenewals   *metrics.Counter
	renewals        *metrics.Counter
	lastRender      *metrics.Gauge
	filesRestored   *metrics.CounterVec
}

func newMetrics(a *Agent) *agentMetrics {
	r := metrics.NewRegistry()
	m := &agentMetrics{
		registry:        r,
		renders:         r.NewCounterVec("blinkchamber_agent_renders_total", "Files written because their content changed, by secret name.", "secret"),
		renderErrors:    r.NewCounterVec("blinkchamber_agent_render_errors_total", "Failed renders, by secret name.", "secret"),
		commandFailures: r.NewCounterVec("blinkchamber_agent_command_failures_total", "Per-secret commands that failed after a render.", "secret"),
		signalled:       r.NewCounterVec("blinkchamber_agent_signals_sent_total", "Processes signalled after a render, by secret name.", "secret"),
		signalNoProcess: r.NewCounterVec("blinkchamber_agent_signal_no_process_total", "Renders after which no process had the name to signal, by secret name.", "secret"),
		signalFailures:  r.NewCounterVec("blinkchamber_agent_signal_failures_total", "Renders after which a process could not be signalled (e.g. another uid), by secret name.", "secret"),
		reloadFailures:  r.NewCounterVec("blinkchamber_agent_reload_failures_total", "Reload URL calls that failed every attempt, by secret name.", "secret"),
		logins:          r.NewCounterVec("blinkchamber_agent_logins_total", "Vault logins, by result.", "result"),
		tokenTTL:        r.NewGauge("blinkchamber_agent_token_ttl_seconds", "TTL of the Vault token at its last login or renewal."),
		tokenRenewals:   r.NewCounter("blinkchamber_agent_token_renewals_total", "Vault token renewals."),
		renewals:        r.NewCounter("blinkchamber_agent_lease_renewals_total", "Secret lease renewals."),
		lastRender:      r.NewGauge("blinkchamber_agent_last_render_timestamp_seconds", "Unix time of the last render in which every secret rendered."),
		filesRestored:   r.NewCounterVec("blinkchamber_agent_files_restored_total", "Rendered files found replaced or changed by something other than the agent, and written again, by secret name.", "secret"),
	}
	// Read at scrape time, so a render stuck in a system call shows.
	r.NewFunc("blinkchamber_agent_render_in_progress_seconds", "Seconds each render under way has run, by secret name.", metrics.KindGauge, "secret",
		func() []metrics.Sample { return renderAges(a) })
	r.NewFunc("blinkchamber_agent_renders_stuck", "Renders under way for longer than the render interval.", metrics.KindGauge, "",
		func() []metrics.Sample { return []metrics.Sample{{Value: float64(stuckRenders(a))}} })
	// Read at scrape time: leases and their remaining TTL, and the Vault
	// requests made so far.
	r.NewFunc("blinkchamber_agent_lease_ttl_seconds", "Seconds left on each leased secret, by Vault path (computed paths by fingerprint).", metrics.KindGauge, "path",
		func() []metrics.Sample { return leaseTTLs(a) })
	r.NewFunc("blinkchamber_agent_leases", "Leased secrets the agent holds.", metrics.KindGauge, "",
		func() []metrics.Sample { return []metrics.Sample{{Value: float64(len(leaseTTLs(a)))}} })
	r.NewFunc("blinkchamber_agent_vault_requests_total", "HTTP requests sent to Vault.", metrics.KindCounter, "",
		func() []metrics.Sample { return []metrics.Sample{{Value: float64(a.requests.Load())}} })
	r.AddRuntime()
	return m
}

// leaseTTLs is the time left on each leased secret.
func leaseTTLs(a *Agent) []metrics.Sample {
	var out []metrics.Sample
	for _, e := range a.cache.snapshot() {
		if !e.Expires.IsZero() {
			out = append(out, metrics.Sample{LabelValue: a.describe.label(e.Req), Value: timeLeft(e.Expires)})
		}
	}
	return out
}

func timeLeft(t time.Time) float64 { return max(time.Until(t).Seconds(), 0) }

func renderAges(a *Agent) []metrics.Sample {
	var out []metrics.Sample
	for name, age := range a.status.renderAges() {
		out = append(out, metrics.Sample{LabelValue: name, Value: age.Seconds()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LabelValue < out[j].LabelValue })
	return out
}

func stuckRenders(a *Agent) int {
	n := 0
	for _, age := range a.status.renderAges() {
		if age > a.cfg.RenderInterval.Duration {
			n++
		}
	}
	return n
}
