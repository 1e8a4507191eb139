package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// command is the exact command line that reproduces the run.
func command(o options) string {
	cmd := fmt.Sprintf("go run ./test/bench/fleetbench -sizes %s -secrets %d -render-interval %s -token-ttl %s -settle %s -idle %s -timeout %s",
		joinInts(o.sizes, ","), o.secrets, o.interval, o.tokenTTL, o.settle, o.idle, o.timeout)
	if o.out != "" {
		cmd += " -out " + o.out
	}
	if o.plot != "" {
		cmd += " -plot " + o.plot
	}
	if o.agentSrc != "" {
		cmd += " -agent-src " + o.agentSrc
	}
	return cmd
}

// render writes the report; loads are the machine's load averages when the
// run began and ended.
func render(o options, rows []result, loads [2]string) string {
	var b strings.Builder
	memTotal, _ := procstat.MemInfoKiB("MemTotal")
	fmt.Fprintf(&b, "## Fleet: many agents against one Vault\n\n")
	fmt.Fprintf(&b, "Command: `%s`  \n", command(o))
	fmt.Fprintf(&b, "Machine: %d cores, %.1f GiB memory, Go %s, %s; shared with other work (load average %s at the start, %s at the end), so latencies are those of a loaded machine and CPU seconds per operation are the figures that carry over.  \n",
		runtime.NumCPU(), float64(memTotal)/(1<<20), runtime.Version(), time.Now().UTC().Format("2006-01-02"), loads[0], loads[1])
	fmt.Fprintf(&b, "Setup: one Vault %s dev server, one kube-apiserver %s with etcd %s, all on this machine. "+
		"Each agent is a real `cmd/agent` process with its own pod object and its own TokenRequest token bound to that pod "+
		"(so every login costs Vault one TokenReview), reading %d KV secret(s) re-read every %s, Vault tokens of %s. "+
		"All agents of a fleet are started at once (the worst case: a rollout or a node coming back). "+
		"They reach Vault through one counting proxy in the benchmark process, which records every request.\n\n",
		toolchain.Vault.Version, toolchain.KubeAPIServer.Version, toolchain.Etcd.Version, o.secrets, o.interval, o.tokenTTL)
	startTable(&b, rows)
	cpuTable(&b, rows)
	idleTable(&b, o, rows)
	burstTable(&b, rows)
	bend(&b, rows)
	if o.plot != "" {
		fmt.Fprintf(&b, "\n![time to all rendered and Vault CPU against fleet size](%s)\n", strings.TrimPrefix(o.plot, "docs/"))
	}
	return b.String()
}

func startTable(b *strings.Builder, rows []result) {
	fmt.Fprintf(b, "### Start\n\n")
	fmt.Fprintf(b, "\"All rendered\" is until the last agent rendered or gave up; an agent gives up (exits non-zero, for the kubelet to restart) when it has not rendered within %s, the startup probe's budget. \"Failed\" counts Vault answers other than 2xx, including requests an agent abandoned after the Vault client's 60 s timeout.\n\n", agent.FirstRenderTimeout)
	fmt.Fprintf(b, "| agents | all started | all rendered | all rendered / agents | each agent's render p50 / p95 | gave up | Vault requests | failed | peak req/s | login p50 / p95 at Vault | TokenReviews (mean latency at the API server) |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s / %s | %d | %s | %d | %d | %s / %s | %d (%s) |\n", r.size,
			ms(r.spawn), ms(r.all), ms(r.all/time.Duration(r.size)), ms(r.renderP50), ms(r.renderP95), r.gaveUp,
			kinds(r.startReqs), r.startFailed, r.startPeakRPS,
			ms(r.loginP50), ms(r.loginP95), r.reviews.count, ms(r.reviews.mean()))
	}
}

func cpuTable(b *strings.Builder, rows []result) {
	fmt.Fprintf(b, "\nCPU while the fleet starts (core-seconds from the first start to the last render; /proc/<pid>/stat):\n\n")
	fmt.Fprintf(b, "| agents | machine busy | Vault (mean / peak 1 s) | Vault per login | kube-apiserver | etcd | agents (per agent) | benchmark + proxy | other work on the machine |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		u := r.start
		fmt.Fprintf(b, "| %d | %.0f %% of %d cores | %.2f s (%.2f / %.2f cores) | %.1f ms | %.2f s | %.2f s | %.2f s (%.0f ms) | %.2f s | %.2f s |\n", r.size,
			pct(u.machineBusy, u.machineTotal), runtime.NumCPU(), u.vault, u.cores(u.vault), u.vaultPeak,
			1000*u.vault/float64(max(r.startReqs[classLogin], 1)), u.api, u.etcd, u.fleet, 1000*u.fleet/float64(r.size), u.own, u.others())
	}
}

func idleTable(b *strings.Builder, o options, rows []result) {
	fmt.Fprintf(b, "\n### Idle (%s, starting %s after the last render)\n\n", o.idle, o.settle)
	fmt.Fprintf(b, "| agents | Vault CPU | Vault requests/s (mean) | most in any 1 s | most / mean | by kind | agents' CPU | RSS (sum) | RssAnon (sum) | RssAnon per agent |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		u := r.idle
		mean := float64(r.idleReqs) / u.took.Seconds()
		fmt.Fprintf(b, "| %d | %.1f %% of a core | %.1f | %d | %.2f | %s | %.1f %% of a core | %s | %s | %.1f MiB |\n", r.size,
			100*u.cores(u.vault), mean, r.idlePeakRPS, safeDiv(float64(r.idlePeakRPS), mean), kinds(r.idleClasses),
			100*u.cores(u.fleet), mib(r.memory.RSS), mib(r.memory.Anon), float64(r.memory.Anon)/1024/float64(r.size))
	}
	fmt.Fprintf(b, "\nRSS counts the agent binary's shared pages once per process; RssAnon is what each agent has to itself. Vault requests in each second of the idle window:\n\n")
	for _, r := range rows {
		fmt.Fprintf(b, "- %d agents: %s\n", r.size, joinInts(r.idleSeconds, " "))
	}
}

func burstTable(b *strings.Builder, rows []result) {
	fmt.Fprintf(b, "\n### The same logins without the agents\n\n")
	fmt.Fprintf(b, "After each fleet stopped, this process logged in once with every agent's token, %d logins in flight, straight to Vault: what a login costs Vault and the API server when no agent is starting up beside them.\n\n", burstWorkers)
	fmt.Fprintf(b, "| tokens | took | logins/s | login p50 / p95 | Vault CPU per login | kube-apiserver CPU per login | etcd CPU per login | TokenReview mean at the API server |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		u := r.burst
		fmt.Fprintf(b, "| %d | %s | %.0f | %s / %s | %.1f ms | %.1f ms | %.1f ms | %s |\n", u.logins, ms(u.took), u.perSecond(),
			ms(u.p50), ms(u.p95), u.perLogin(u.vault), u.perLogin(u.api), u.perLogin(u.etcd), ms(u.reviews.mean()))
	}
}

// bend names the fleet size where the time per agent grows most and says,
// from measurements, who spent the CPU while each fleet started, whether
// Vault ran out of CPU, and what a login costs Vault and the API server.
func bend(b *strings.Builder, rows []result) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### Where it bends\n\n")
	worst, factor := 0, 0.0
	for i := 1; i < len(rows); i++ {
		f := perAgent(rows[i]) / perAgent(rows[i-1])
		if f > factor {
			worst, factor = i, f
		}
	}
	if worst > 0 {
		fmt.Fprintf(b, "- Time to all rendered per agent grows most from %d to %d agents: %s to %s (x%.1f).\n",
			rows[worst-1].size, rows[worst].size, ms(rows[worst-1].all/time.Duration(rows[worst-1].size)),
			ms(rows[worst].all/time.Duration(rows[worst].size)), factor)
	}
	for _, r := range rows {
		u := r.start
		fmt.Fprintf(b, "- %d agents: the machine was %.0f %% busy while they started; of that CPU the agents used %.0f %%, Vault %.0f %% (busiest second %.2f of %d cores), kube-apiserver %.0f %%, etcd %.0f %%, this benchmark %.0f %%, other work %.0f %%. "+
			"A login took %s (p50) at Vault, the TokenReview behind it %s (mean) at the API server%s.\n",
			r.size, pct(u.machineBusy, u.machineTotal), pct(u.fleet, u.machineBusy), pct(u.vault, u.machineBusy), u.vaultPeak, runtime.NumCPU(),
			pct(u.api, u.machineBusy), pct(u.etcd, u.machineBusy), pct(u.own, u.machineBusy), pct(u.others(), u.machineBusy),
			ms(r.loginP50), ms(r.reviews.mean()), gaveUpNote(r))
	}
	last := rows[len(rows)-1].burst
	if vault := last.perLogin(last.vault); vault > 0 {
		fmt.Fprintf(b, "- Logins alone (%d tokens): %.1f ms of Vault CPU and %.1f ms of API server CPU each, so one core of Vault serves about %.0f logins/s and one core of API server about %.0f TokenReviews/s; %.0f logins/s were reached here with %d in flight.\n",
			last.logins, vault, last.perLogin(last.api), 1000/vault, 1000/max(last.perLogin(last.api), 0.001), last.perSecond(), burstWorkers)
	}
}

func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, sep)
}

func gaveUpNote(r result) string {
	if r.gaveUp == 0 {
		return ""
	}
	return fmt.Sprintf("; %d of %d agents gave up before rendering", r.gaveUp, r.size)
}

func perAgent(r result) float64 { return r.all.Seconds() / float64(r.size) }

func kinds(m map[class]int) string {
	var parts []string
	for _, c := range []class{classRead, classLogin, classLeaseRenew, classTokenRenew, classLookup, classOther} {
		if m[c] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, m[c]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func pct(a, b float64) float64 { return 100 * safeDiv(a, b) }

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
