package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
)

// member is one agent process of a fleet.
type member struct {
	dir     string
	cmd     *exec.Cmd
	started time.Time
	// rendered is how long after its start every file was there; 0 until.
	rendered time.Duration
	// gaveUp: the agent exited before rendering (its first-render deadline).
	gaveUp bool
	done   chan struct{}
}

// command builds an agent's command exactly as the injector would run it:
// the whole config in one variable, GOMEMLIMIT at 80 % of a 64 MiB limit.
func (e *env) command(dir, vaultAddr string, o options) (*exec.Cmd, error) {
	cfg := agent.Config{
		Mode:           agent.ModeNative,
		Vault:          agent.Vault{Address: vaultAddr, AuthPath: "auth/kubernetes", Role: fleetSA},
		TokenFile:      filepath.Join(dir, "token"),
		SecretsDir:     filepath.Join(dir, "out"),
		RenderInterval: agent.Duration{Duration: o.interval},
		// Port 0: the kernel gives each of hundreds of agents its own port.
		HealthAddr: "127.0.0.1:0",
	}
	for i := range o.secrets {
		cfg.Secrets = append(cfg.Secrets, agent.Secret{Name: secretName(i), File: secretName(i), Perms: 0o400,
			Template: `{{ with secret "secret/data/fleet/` + secretName(i) + `" }}username={{ .Data.data.username }}
password={{ .Data.data.password }}
{{ end }}`})
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	enc, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.agentBin, "run")
	cmd.Env = []string{agent.ConfigEnv + "=" + enc, "GOMEMLIMIT=51MiB"}
	// If this benchmark dies, its agents die with it: no strays.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// start runs the member's agent with its output in dir/log.
func (m *member) start() error {
	logf, err := os.Create(filepath.Join(m.dir, "log"))
	if err != nil {
		return err
	}
	// The child has its own copy of the descriptor; ours would only count
	// against this process's limit.
	defer logf.Close()
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("starting agent in %s: %w", m.dir, err)
	}
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	return nil
}

// starters is how many agents are started in parallel: starting one waits
// until its process has executed, which on a loaded machine takes long.
const starters = 8

// startAll starts every member, starters at a time, as kubelets on many
// nodes would.
func startAll(fleet []*member) error {
	return each(len(fleet), starters, func(i int) error { return fleet[i].start() })
}

// each runs f for 0..n-1, workers at a time; the first error stops the
// workers and is returned.
func each(n, workers int, f func(int) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					next.Store(int64(n)) // no more work
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (m *member) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *member) allWritten(secrets int) bool {
	for i := range secrets {
		st, err := os.Stat(filepath.Join(m.dir, "out", secretName(i)))
		if err != nil || st.Size() == 0 {
			return false
		}
	}
	return true
}

func (m *member) logTail() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// waitRendered polls until every member has written all its files or given
// up (exited), and records when each did. An agent giving up is a result,
// not an error: it is what an overloaded Vault does to a fleet.
func waitRendered(ctx context.Context, fleet []*member, secrets int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	left := append([]*member(nil), fleet...)
	for len(left) > 0 {
		now := time.Now()
		rest := left[:0]
		for _, m := range left {
			switch {
			case m.allWritten(secrets):
				m.rendered = now.Sub(m.started)
			case m.exited():
				m.gaveUp = true
			default:
				rest = append(rest, m)
			}
		}
		left = rest
		if len(left) == 0 {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("%d of %d agents had not rendered after %s; one of them:\n%s", len(left), len(fleet), timeout, left[0].logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// stopAll sends every agent SIGTERM, then kills those still running after
// a grace period, and reaps them all. A second call finds them reaped.
func stopAll(fleet []*member) {
	for _, m := range fleet {
		if m.done != nil && !m.exited() {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	grace := time.After(15 * time.Second)
	for _, m := range fleet {
		if m.done == nil {
			continue
		}
		select {
		case <-m.done:
		case <-grace:
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
}

// fleetCPU sums the members' CPU seconds so far, of those that exited too.
func fleetCPU(fleet []*member) float64 {
	var s float64
	for _, m := range fleet {
		if m.exited() {
			s += (m.cmd.ProcessState.UserTime() + m.cmd.ProcessState.SystemTime()).Seconds()
			continue
		}
		s += procstat.CPUSeconds(m.cmd.Process.Pid)
	}
	return s
}

// fleetMemory sums the running members' resident memory (KiB).
func fleetMemory(fleet []*member) (procstat.Memory, error) {
	var sum procstat.Memory
	for _, m := range fleet {
		if m.exited() {
			continue
		}
		mem, err := procstat.ReadMemory(m.cmd.Process.Pid)
		if err != nil {
			return sum, fmt.Errorf("memory of agent %d: %w", m.cmd.Process.Pid, err)
		}
		sum.RSS += mem.RSS
		sum.Anon += mem.Anon
	}
	return sum, nil
}
