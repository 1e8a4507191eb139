package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
)

// machine is what the report says about where it ran.
type machine struct {
	cores              int
	memKiB             int64
	cpu                string
	loadStart, loadEnd string
	vault              string
	agentSource        string
	date               time.Time
}

// agentSource names the commit the agent was built from, and says so when
// the agent's packages had changes not committed yet.
func agentSource(ctx context.Context) string {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repoRoot()
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	head := git("rev-parse", "--short", "HEAD")
	if head == "" {
		return "an unknown commit"
	}
	if git("status", "--porcelain", "--", "cmd/agent", "pkg/agent", "pkg/template", "pkg/fsync") != "" {
		return "commit " + head + " with uncommitted changes to the agent's packages"
	}
	return "commit " + head
}

func readMachine() machine {
	m := machine{cores: runtime.NumCPU(), loadStart: loadAverage(), date: time.Now().UTC()}
	m.memKiB, _ = procstat.MemInfoKiB("MemTotal")
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAverage is the 1, 5 and 15 minute load of the machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (e *env) vaultVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, e.vaultBin, "version").Output()
	if err != nil {
		return "unknown"
	}
	// "Vault v1.21.0 (...), built ..." -> "v1.21.0"
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "unknown"
	}
	return f[1]
}

// memory reads VmRSS and RssAnon (KiB) of a process; the rest of its RSS is
// file-backed (the processes measured here share no memory): pages of its
// binary and libraries.
func memory(pid int) (rss, anon, file int64) {
	m, err := procstat.ReadMemory(pid)
	if err != nil {
		return 0, 0, 0
	}
	return m.RSS, m.Anon, m.RSS - m.Anon
}
