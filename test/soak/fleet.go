package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// member is one agent process.
type member struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	log    *os.File
	dir    string
	health string
}

type fleet struct{ members []*member }

func startFleet(ctx context.Context, o options, e *env, bin, dir string) (*fleet, error) {
	f := &fleet{}
	for i := range o.agents {
		if err := e.put(ctx, i, fmt.Sprintf("soakval-0-%d", i)); err != nil {
			return f, err
		}
		m, err := startMember(o, e, bin, filepath.Join(dir, "agents", strconv.Itoa(i)), i)
		if err != nil {
			return f, err
		}
		f.members = append(f.members, m)
	}
	deadline := time.Now().Add(agent.FirstRenderTimeout)
	for i, m := range f.members {
		for {
			if got, _ := os.ReadFile(filepath.Join(m.dir, "value")); string(got) == fmt.Sprintf("soakval-0-%d", i) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return f, fmt.Errorf("agent %d never rendered its first file", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return f, nil
}

func startMember(o options, e *env, bin, dir string, i int) (*member, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	m := &member{dir: filepath.Join(dir, "secrets"), health: "127.0.0.1:" + strconv.Itoa(port)}
	if err := os.Mkdir(m.dir, 0o700); err != nil {
		return nil, err
	}
	cfg := agent.Config{
		Mode:           agent.ModeNative,
		Vault:          agent.Vault{Address: e.vault.Addr(), AuthPath: "auth/kubernetes", Role: role},
		TokenFile:      e.tokenFile,
		SecretsDir:     m.dir,
		RenderInterval: agent.Duration{Duration: o.interval},
		HealthAddr:     m.health,
		Secrets: []agent.Secret{{Name: "value", File: "value", Perms: 0o400,
			Template: fmt.Sprintf(`{{ with secret "secret/data/%s" }}{{ .Data.data.value }}{{ end }}`, secretPath(i))}},
	}
	enc, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	if m.log, err = os.Create(filepath.Join(dir, "agent.log")); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, "run")
	m.cmd.Env = []string{agent.ConfigEnv + "=" + enc}
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting agent %d: %w", i, err)
	}
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	return m, nil
}

func (m *member) running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (f *fleet) stop() {
	for _, m := range f.members {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range f.members {
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		_ = m.log.Close()
	}
}

// sample is what /proc and /metrics say about one agent.
type sample struct {
	rssKiB, threads, fds, goroutines int
}

func (m *member) sample() (sample, error) {
	pid := m.cmd.Process.Pid
	var s sample
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKiB, _ = strconv.Atoi(fields[0])
		case "Threads":
			s.threads, _ = strconv.Atoi(fields[0])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	metrics, err := scrape(m.health)
	if err != nil {
		return s, err
	}
	s.goroutines = int(metricSum(metrics, "go_goroutines"))
	return s, nil
}

var client = &http.Client{Timeout: 5 * time.Second}

func scrape(addr string) (string, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status)
	}
	return string(b), nil
}

// metricSum adds every sample of a metric (all label sets).
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
