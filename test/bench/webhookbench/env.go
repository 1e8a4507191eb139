package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// binaries are the three programs of the Dockerfile, built its way.
type binaries struct{ injector, agent, cli, decodeOnly string }

// build compiles the commands with the Dockerfile's flags (static,
// stripped, trimmed, VERSION=dev) into dir.
func build(ctx context.Context, repo, dir string) (binaries, error) {
	b := binaries{
		injector: filepath.Join(dir, "blinkchamber-injector"),
		agent:    filepath.Join(dir, "blinkchamber-agent"),
		cli:      filepath.Join(dir, "blinkchamber"),
		// Not weighed: the decode-only reference webhook (see decodeonly).
		decodeOnly: filepath.Join(dir, "decodeonly"),
	}
	const mod = "github.com/blinkchamber/blinkchamber"
	for _, c := range []struct{ out, ldflags, pkg string }{
		{b.agent, "-s -w -X " + mod + "/pkg/agent.Version=dev", "./cmd/agent"},
		{b.injector, "-s -w", "./cmd/injector"},
		{b.cli, "-s -w -X " + mod + "/pkg/cli.Version=dev", "./cmd/blinkchamber"},
		{b.decodeOnly, "-s -w", "./test/bench/webhookbench/decodeonly"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", c.ldflags, "-o", c.out, c.pkg)
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("building %s: %w\n%s", c.pkg, err, out)
		}
	}
	return b, nil
}

// served is the injector process and what the load generator needs to
// reach it.
type served struct {
	cmd        *exec.Cmd
	url        string // the mutate endpoint
	metricsURL string
	pprofURL   string // the injector's /debug/pprof/ (empty for others)
	caPEM      []byte
	name       string // for messages: "injector", "decode-only webhook"
	logPath    string
	exited     chan error
}

// start runs cmd with its output in logPath and watches for its exit.
func (s *served) start(cmd *exec.Cmd) error {
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	s.cmd, s.exited = cmd, make(chan error, 1)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting the %s: %w", s.name, err)
	}
	go func() { s.exited <- s.cmd.Wait(); logf.Close() }()
	return nil
}

// startInjector runs the built injector as its own process with mounted
// certificates (cert-manager style), talking to kube through a kubeconfig,
// with the default mode resolved from the API server as in a cluster.
// runtime is added to its environment (GOGC, GOMEMLIMIT).
func startInjector(ctx context.Context, bin, dir string, kube *harness.Kube, runtime []string) (*served, error) {
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := kube.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	caPEM, err := harness.ServingCertDir(certDir)
	if err != nil {
		return nil, err
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = harness.FreePort(); err != nil {
			return nil, err
		}
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	s := &served{
		url: "https://" + addr(ports[0]) + injector.Path, metricsURL: "http://" + addr(ports[1]) + "/metrics",
		pprofURL: "http://" + addr(ports[3]) + "/debug/pprof/",
		caPEM:    caPEM, name: "injector", logPath: filepath.Join(dir, "injector.log"),
	}
	cmd := exec.Command(bin,
		"--host", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--cert-dir", certDir,
		"--agent-image", "ghcr.io/blinkchamber/agent:dev", "--vault-addr", "https://vault.vault.svc:8200",
		"--metrics-bind-address", addr(ports[1]), "--health-probe-bind-address", addr(ports[2]),
		"--pprof-bind-address", addr(ports[3]))
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), runtime...)
	if err := s.start(cmd); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, http.DefaultClient, "http://"+addr(ports[2])+"/readyz"); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *served) waitReady(ctx context.Context, c *http.Client, readyz string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			return fmt.Errorf("%s exited before it was ready: %v (log: %s)", s.name, err, s.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s never ready at %s: %w (log: %s)", s.name, readyz, ctx.Err(), s.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// client trusts the served process's CA (the injector's certificates). With h2 every worker shares one
// HTTP/2 connection, as the kube-apiserver's webhook client does; without,
// each worker keeps its own HTTP/1.1 connection.
func (s *served) client(conns int, h2 bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.caPEM) {
		return nil, fmt.Errorf("no CA certificate in the %s's PEM", s.name)
	}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}
	return &http.Client{Transport: t, Timeout: 10 * time.Second}, nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *served) stop() error {
	if s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("%s ignored SIGTERM (log: %s)", s.name, s.logPath)
	}
}

func repoRoot() (string, error) { return toolchain.RepoRoot() }
