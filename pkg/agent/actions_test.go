package agent

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/go-logr/logr"

	"github.com/blinkchamber/blinkchamber/pkg/envfile"
)

func TestParseSignalAction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *Signal
	}{
		{"SIGHUP:nginx", &Signal{"SIGHUP", "nginx"}},
		{"usr2:php-fpm", &Signal{"SIGUSR2", "php-fpm"}},
		{"SIGHUP", nil},
		{"SIGKILL:nginx", nil},
		{"HUP:/usr/sbin/nginx", nil},
		{"HUP:", nil},
	} {
		got, err := ParseSignal(tc.in)
		if (err == nil) != (tc.want != nil) || tc.want != nil && *got != *tc.want {
			t.Errorf("ParseSignal(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateReloadURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://localhost:8080/-/reload": true, "http://127.0.0.1/reload": true, "http://127.1.2.3:9/x": true,
		"https://[::1]:8443/reload": true, "http://10.0.0.1/reload": false, "http://example.com/reload": false,
		"http://localhost.example.com/": false, "http://u:p@localhost/": false, "ftp://localhost/": false,
		"localhost:8080/reload": false, "http://[::ffff:10.0.0.1]/": false,
	} {
		if err := ValidateReloadURL(u); (err == nil) != ok {
			t.Errorf("ValidateReloadURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestSecretActionsValidated(t *testing.T) {
	c := actionsConfig()
	c.Secrets[0].Format = "yaml"
	c.Secrets[0].Signal = &Signal{Signal: "SIGKILL", Process: "x"}
	c.Secrets[0].ReloadURL = "http://10.1.1.1/"
	errs := c.Validate()
	for _, f := range []string{"secrets[0].format", "secrets[0].signal", "secrets[0].reloadURL"} {
		if !strings.Contains(errs.ToAggregate().Error(), f) {
			t.Errorf("no error on %s: %v", f, errs)
		}
	}
}

func actionsConfig() *Config {
	return &Config{
		Mode:           ModeNative,
		Vault:          Vault{Address: "http://127.0.0.1:1", AuthPath: "auth/kubernetes", Role: "app"},
		TokenFile:      "/t/token",
		SecretsDir:     "/s",
		RenderInterval: Duration{MinRenderInterval},
		HealthAddr:     "127.0.0.1:8099",
		Secrets:        []Secret{{Name: "db", Template: "x", File: "db", Perms: 0o400}},
	}
}

// testAgent is an agent that contacts nothing, logging to a buffer.
func testAgent(t *testing.T) (*Agent, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	a, err := New(actionsConfig(), newLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	return a, &logs
}

func TestEncodeEnvFormat(t *testing.T) {
	s := Secret{Name: "db", Format: FormatEnv}
	out, err := s.encode([]byte(`{"USER":"app","PASSWORD":"it's-s3cret"}`))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := envfile.Parse(out)
	if err != nil || len(vars) != 2 || vars[0] != (envfile.Var{Name: "PASSWORD", Value: "it's-s3cret"}) {
		t.Fatalf("env file %q parses as %v, %v", out, vars, err)
	}
	_, err = s.encode([]byte(`{"db-password":"s3cret-value"}`))
	if !errors.Is(err, envfile.ErrInvalidName) || !errors.Is(err, ErrTemplate) || !IsPermanent(err) {
		t.Fatalf("error %v: want a permanent template error wrapping envfile.ErrInvalidName", err)
	}
	if !strings.Contains(err.Error(), `"db-password"`) || strings.Contains(err.Error(), "s3cret-value") {
		t.Errorf("error %q must name the key and not the value", err)
	}
	plain := Secret{Name: "db"}
	if out, _ := plain.encode([]byte("as is")); string(out) != "as is" {
		t.Errorf("no format changed the output: %q", out)
	}
}

// TestSignalAfterChange signals a real process found by name, and counts a
// render after which no process has the name.
func TestSignalAfterChange(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	bin := filepath.Join(t.TempDir(), "bc-agent-target")
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	a, logs := testAgent(t)
	a.afterChange(context.Background(), Secret{Name: "db", Signal: &Signal{Signal: "SIGTERM", Process: "bc-agent-target"}})
	err = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("target ended with %v, want killed by SIGTERM", err)
	}
	if n := a.metrics.signalled.WithLabelValues("db").Value(); n != 1 {
		t.Errorf("signals_sent_total = %v, want 1", n)
	}
	a.afterChange(context.Background(), Secret{Name: "db", Signal: &Signal{Signal: "SIGHUP", Process: "bc-agent-target"}})
	if n := a.metrics.signalNoProcess.WithLabelValues("db").Value(); n != 1 {
		t.Errorf("signal_no_process_total = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "no process to signal") {
		t.Errorf("no log line for the missing process:\n%s", logs)
	}
}

// TestReloadRetries calls a real HTTP server that fails twice, then
// succeeds; and one that always fails, which is counted.
func TestReloadRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	a, _ := testAgent(t)
	a.afterChange(context.Background(), Secret{Name: "cfg", ReloadURL: srv.URL + "/-/reload"})
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (two failures, then success)", n)
	}
	if n := a.metrics.reloadFailures.WithLabelValues("cfg").Value(); n != 0 {
		t.Errorf("reload_failures_total = %v after a success", n)
	}

	var failing atomic.Int32
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failing.Add(1)
		http.Redirect(w, r, "http://example.com/", http.StatusFound)
	}))
	defer bad.Close()
	a.afterChange(context.Background(), Secret{Name: "cfg", ReloadURL: bad.URL})
	if n := failing.Load(); n != ReloadAttempts {
		t.Errorf("%d calls, want %d", n, ReloadAttempts)
	}
	if n := a.metrics.reloadFailures.WithLabelValues("cfg").Value(); n != 1 {
		t.Errorf("reload_failures_total = %v, want 1", n)
	}
}

// FuzzValidateReloadURL: whatever is accepted, the request Go's client
// makes goes to a loopback host.
func FuzzValidateReloadURL(f *testing.F) {
	for _, s := range []string{"http://localhost:8080/-/reload", "http://127.0.0.1@evil.example/", "http://[::1]/", "http://localhost%2eevil.example/", "HTTP://LOCALHOST/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateReloadURL(raw) != nil {
			return
		}
		req, err := http.NewRequest(http.MethodPost, raw, nil)
		if err != nil {
			t.Fatalf("accepted %q, which http.NewRequest refuses: %v", raw, err)
		}
		host := req.URL.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			t.Fatalf("accepted %q, whose request goes to %q", raw, host)
		}
	})
}

// TestProgramOnTheVolumesRefused: the agent never runs a file of its own
// volumes, whatever path reaches it (here through /proc/self/root, which
// the admission check of the path's text cannot see).
func TestProgramOnTheVolumesRefused(t *testing.T) {
	cfg := validConfig()
	cfg.SecretsDir = t.TempDir()
	a, err := New(&cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(cfg.SecretsDir, "x")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{prog, "/proc/self/root" + prog} {
		if err := a.checkProgram(p); !errors.Is(err, ErrProgramInVolume) {
			t.Errorf("%s: %v, want ErrProgramInVolume", p, err)
		}
	}
}
