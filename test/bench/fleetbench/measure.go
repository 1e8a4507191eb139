package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
	"github.com/blinkchamber/blinkchamber/test/bench/report"
)

// result is one fleet size.
type result struct {
	size int
	// Start: from the first agent's start until every file of every agent
	// is written.
	spawn, all           time.Duration
	renderP50, renderP95 time.Duration // per agent, from its own start
	gaveUp               int           // agents that exited before rendering
	startReqs            map[class]int
	startFailed          int // answers other than 2xx
	startPeakRPS         int
	loginP50, loginP95   time.Duration // as the proxy saw Vault answer
	reviews              reviews
	start                usage
	// Idle: after the settle wait, for o.idle.
	idle        usage
	idleReqs    int
	idlePeakRPS int // most requests in any 1 s window
	idleClasses map[class]int
	idleSeconds []int // requests in each second of the window
	memory      procstat.Memory
	// After the fleet stopped: the same logins without the agents.
	burst burst
}

// usage is CPU spent over a phase, in seconds, and Vault's busiest second.
type usage struct {
	took                         time.Duration
	vault, api, etcd, own, fleet float64
	machineBusy, machineTotal    float64
	vaultPeak                    float64 // cores
}

func usageBetween(a, b sample, fleet float64, samples []sample) usage {
	return usage{took: b.at.Sub(a.at), vault: b.vault - a.vault, api: b.api - a.api, etcd: b.etcd - a.etcd,
		own: b.own - a.own, fleet: fleet, machineBusy: b.machine.Busy - a.machine.Busy,
		machineTotal: b.machine.Total - a.machine.Total,
		vaultPeak:    peakCores(samples, a.at, b.at, func(s sample) float64 { return s.vault })}
}

func (u usage) cores(cpu float64) float64 { return cpu / u.took.Seconds() }

// others is the machine's busy time this benchmark did not account for:
// other work on a shared machine.
func (u usage) others() float64 {
	return max(u.machineBusy-u.vault-u.api-u.etcd-u.fleet-u.own, 0)
}

func run(ctx context.Context, o options) error {
	crlog.SetLogger(logr.Discard())
	if err := checkLimits(o); err != nil {
		return err
	}
	if err := checkMemory(maxInt(o.sizes)); err != nil {
		return err
	}
	var loads [2]string
	loads[0], _ = procstat.LoadAverage()
	e, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	var rows []result
	for _, n := range o.sizes {
		r, err := e.fleet(ctx, o, n)
		if err != nil {
			return fmt.Errorf("fleet of %d: %w", n, err)
		}
		fmt.Fprintf(os.Stderr, "fleet of %d: all rendered in %s, Vault %.2f CPU s, idle %d requests (peak %d/s)\n",
			n, r.all.Round(time.Millisecond), r.start.vault, r.idleReqs, r.idlePeakRPS)
		rows = append(rows, r)
	}
	loads[1], _ = procstat.LoadAverage()
	text := render(o, rows, loads)
	fmt.Print(text)
	if o.plot != "" {
		if err := plotFleet(o.plot, rows); err != nil {
			return err
		}
	}
	if o.out != "" {
		return report.WriteSection(o.out, "fleet", []byte(text))
	}
	return nil
}

// checkLimits makes sure the largest fleet fits in this process's file
// descriptors: the proxy holds two connections per agent.
func checkLimits(o options) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	need := uint64(4*maxInt(o.sizes) + 256)
	if lim.Cur < need {
		return fmt.Errorf("%w: -sizes up to %d needs %d file descriptors; ulimit -n is %d", errOption, maxInt(o.sizes), need, lim.Cur)
	}
	return nil
}

// agentMemKiB is a generous estimate of what one agent takes from the
// machine (about 4 MiB of its own memory, page tables, kernel stacks), to
// refuse up front a fleet this shared machine cannot hold.
const agentMemKiB = 16 << 10

func checkMemory(n int) error {
	avail, err := procstat.MemInfoKiB("MemAvailable")
	if err != nil {
		return err
	}
	if need := int64(n) * agentMemKiB; avail < need {
		return fmt.Errorf("%w: -sizes: a fleet of %d needs about %d MiB; only %d MiB are available", errOption, n, need>>10, avail>>10)
	}
	return nil
}

// fleet starts n agents at once and measures them.
func (e *env) fleet(ctx context.Context, o options, n int) (result, error) {
	r := result{size: n}
	fleet := make([]*member, n)
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(e.dir, fmt.Sprintf("f%d", n), fmt.Sprintf("%04d", i))
	}
	if err := e.identities(ctx, n, dirs); err != nil {
		return r, err
	}
	p, addr, err := startProxy(e.vault.Addr())
	if err != nil {
		return r, err
	}
	defer p.close()
	for i, d := range dirs {
		cmd, err := e.command(d, addr, o)
		if err != nil {
			return r, err
		}
		fleet[i] = &member{dir: d, cmd: cmd}
	}
	defer stopAll(fleet)
	rev0, err := e.tokenReviews(ctx)
	if err != nil {
		return r, err
	}
	smp := e.startSampler()
	s0 := e.sample()
	if err := startAll(fleet); err != nil {
		smp.close()
		return r, err
	}
	r.spawn = time.Since(s0.at)
	err = waitRendered(ctx, fleet, o.secrets, o.timeout)
	s1 := e.sample()
	startFleetCPU := fleetCPU(fleet)
	if err != nil {
		smp.close()
		return r, err
	}
	rev1, err := e.tokenReviews(ctx)
	if err != nil {
		smp.close()
		return r, err
	}
	r.all = s1.at.Sub(s0.at)
	r.reviews = rev1.minus(rev0)
	var example string
	r.renderP50, r.renderP95, r.gaveUp, example = renderPercentiles(fleet)
	if r.gaveUp > 0 {
		fmt.Fprintf(os.Stderr, "fleet of %d: %d agents gave up before rendering; the log of one:\n%s\n", n, r.gaveUp, example)
	}
	r.startReqs, r.startFailed, r.startPeakRPS, r.loginP50, r.loginP95 = requestStats(p.between(s0.at, s1.at))

	time.Sleep(o.settle)
	i0, cpu0 := e.sample(), fleetCPU(fleet)
	select {
	case <-ctx.Done():
		smp.close()
		return r, ctx.Err()
	case <-time.After(o.idle):
	}
	i1, cpu1 := e.sample(), fleetCPU(fleet)
	// The phase boundaries are samples too, so a short phase has a peak.
	samples := append(smp.close(), s0, s1, i0, i1)
	sort.Slice(samples, func(i, j int) bool { return samples[i].at.Before(samples[j].at) })
	r.start = usageBetween(s0, s1, startFleetCPU, samples)
	r.idle = usageBetween(i0, i1, cpu1-cpu0, samples)
	idle := p.between(i0.at, i1.at)
	r.idleReqs, r.idlePeakRPS = len(idle), peakPerSecond(idle)
	r.idleSeconds = perSecond(idle, i0.at, i1.at)
	r.idleClasses, _, _, _, _ = requestStats(idle)
	if r.memory, err = fleetMemory(fleet); err != nil {
		return r, err
	}
	stopAll(fleet)
	r.burst, err = e.loginBurst(ctx, dirs)
	return r, err
}

// renderPercentiles are over the agents that rendered; gaveUp counts the
// others and keeps one's log for the report.
func renderPercentiles(fleet []*member) (p50, p95 time.Duration, gaveUp int, example string) {
	var ds []time.Duration
	for _, m := range fleet {
		if m.gaveUp {
			gaveUp++
			example = m.logTail()
			continue
		}
		ds = append(ds, m.rendered)
	}
	return percentile(ds, 50), percentile(ds, 95), gaveUp, example
}

// requestStats counts requests by class, failures, the busiest second and
// the login latencies.
func requestStats(reqs []request) (byClass map[class]int, failed, peak int, loginP50, loginP95 time.Duration) {
	byClass = map[class]int{}
	var logins []time.Duration
	for _, r := range reqs {
		byClass[r.class]++
		if r.status < 200 || r.status > 299 {
			failed++
		}
		if r.class == classLogin {
			logins = append(logins, r.took)
		}
	}
	return byClass, failed, peakPerSecond(reqs), percentile(logins, 50), percentile(logins, 95)
}

// peakPerSecond is the most requests that started within any 1 s window.
func peakPerSecond(reqs []request) int {
	at := make([]time.Time, len(reqs))
	for i, r := range reqs {
		at[i] = r.at
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	peak, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= time.Second {
			j++
		}
		peak = max(peak, i-j+1)
	}
	return peak
}

// perSecond counts the requests in each whole second from from to to.
func perSecond(reqs []request, from, to time.Time) []int {
	out := make([]int, int(to.Sub(from)/time.Second))
	for _, r := range reqs {
		if i := int(r.at.Sub(from) / time.Second); i >= 0 && i < len(out) {
			out[i]++
		}
	}
	return out
}

// percentile is the nearest-rank percentile; 0 for no values.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := (p*len(s) + 99) / 100
	return s[max(k-1, 0)]
}

func maxInt(ns []int) int {
	m := 0
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}
