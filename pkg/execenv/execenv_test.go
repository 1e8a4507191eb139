package execenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

// The test binary doubles as the app: with appEnv set it writes what it
// sees of DB_PASSWORD to $APP_DIR/env-<pid>, appends a line to
// $APP_DIR/hup-<pid> for every SIGHUP, and exits 0 on SIGTERM (or with
// $APP_EXIT at once).
const appEnv = "EXECENV_TEST_APP"

func TestMain(m *testing.M) {
	if os.Getenv(appEnv) == "1" {
		os.Exit(fakeApp())
	}
	os.Exit(m.Run())
}

func fakeApp() int {
	if c := os.Getenv("APP_EXIT"); c != "" {
		n, _ := strconv.Atoi(c)
		return n
	}
	dir, pid := os.Getenv("APP_DIR"), os.Getpid()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("env-%d", pid)), []byte(os.Getenv("DB_PASSWORD")), 0o600); err != nil {
		return 3
	}
	for s := range sigs {
		if s == syscall.SIGTERM {
			return 0
		}
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("hup-%d", pid)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return 4
		}
		fmt.Fprintln(f, "hup")
		f.Close()
	}
	return 0
}

// logLines collects Run's log lines from its goroutine.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type harness struct {
	t       *testing.T
	dir     string
	envFile string
	logs    *logLines
	cancel  context.CancelFunc
	result  chan runResult
}

type runResult struct {
	code int
	err  error
}

// writeEnv replaces the env file atomically, as the agent does.
func (h *harness) writeEnv(content string) {
	h.t.Helper()
	tmp := h.envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.envFile); err != nil {
		h.t.Fatal(err)
	}
}

func start(t *testing.T, onChange string, extraEnv ...string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, envFile: filepath.Join(dir, "app.env"), logs: &logLines{}, result: make(chan runResult, 1)}
	h.writeEnv("DB_PASSWORD='first s3cret value'\nDB_USER=app\n")
	oc, err := ParseOnChange(onChange)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		EnvFiles: []string{h.envFile}, OnChange: oc, Command: []string{self, "-test.run=^$"},
		PollInterval: 100 * time.Millisecond, StopTimeout: 10 * time.Second,
		BaseEnv: append(append(os.Environ(), appEnv+"=1", "APP_DIR="+dir, "DB_PASSWORD=from-base"), extraEnv...),
		// The fake app prints nothing; exec's own output is its log.
		Stdout: io.Discard, Stderr: io.Discard,
	}
	log := funcr.New(h.logs.add, funcr.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		code, err := Run(ctx, o, log)
		h.result <- runResult{code, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.result:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
		for _, v := range []string{"first s3cret value", "second s3cret value", "broken s3cret"} {
			if strings.Contains(h.logs.String(), v) {
				t.Errorf("a secret value reached the logs:\n%s", h.logs)
			}
		}
	})
	return h
}

// waitApp waits for a run of the app other than not that saw want, and
// returns its pid.
func (h *harness) waitApp(want string, not int) int {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(h.dir, "env-*"))
		for _, f := range files {
			pid, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(f), "env-"))
			if b, _ := os.ReadFile(f); pid != not && string(b) == want && syscall.Kill(pid, 0) == nil {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("no app run saw the expected value; logs:\n%s", h.logs)
	return 0
}

func TestRestartOnChange(t *testing.T) {
	h := start(t, "restart")
	first := h.waitApp("first s3cret value", 0)
	h.writeEnv("DB_PASSWORD='second s3cret value'\n")
	second := h.waitApp("second s3cret value", first)
	if syscall.Kill(first, 0) == nil {
		t.Errorf("the first run (pid %d) still runs after the restart", first)
	}
	// The value is in the app's environment, never in its argument list.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", second))
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", second))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte("s3cret")) {
		t.Errorf("the app's argument list holds the secret")
	}
	if !bytes.Contains(environ, []byte("DB_PASSWORD=second s3cret value\x00")) || bytes.Contains(environ, []byte("from-base")) {
		t.Errorf("the app's environment lacks the new value or keeps the base one")
	}
	if bytes.Contains(environ, []byte("DB_USER=")) {
		t.Errorf("a variable removed from the file is still set after the restart")
	}
	h.cancel()
	if r := <-h.result; r.err != nil || r.code != 0 {
		t.Errorf("Run = %d, %v; want 0 (the app exits 0 on SIGTERM)", r.code, r.err)
	}
	h.result <- runResult{} // for the cleanup
}

func TestSignalOnChange(t *testing.T) {
	h := start(t, "signal:SIGHUP")
	pid := h.waitApp("first s3cret value", 0)
	hups := filepath.Join(h.dir, fmt.Sprintf("hup-%d", pid))
	for round := 1; round <= 2; round++ {
		h.writeEnv(fmt.Sprintf("DB_PASSWORD='second s3cret value'\nROUND=%d\n", round))
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(hups)
			if strings.Count(string(b), "hup") == round {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the app counted %d SIGHUPs; logs:\n%s", round, strings.Count(string(b), "hup"), h.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if syscall.Kill(pid, 0) != nil {
		t.Errorf("the app was restarted; it should only be signalled")
	}
}

// TestUnusableChangeKeepsApp: a broken env file is reported without its
// content and the app keeps running; a good one is then applied.
func TestUnusableChangeKeepsApp(t *testing.T) {
	h := start(t, "restart")
	pid := h.waitApp("first s3cret value", 0)
	h.writeEnv("DB_PASSWORD='broken s3cret\n")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(h.logs.String(), "cannot be used") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for the broken file; logs:\n%s", h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(h.logs.String(), "line 1") || syscall.Kill(pid, 0) != nil {
		t.Errorf("want the app still running and the error naming line 1; logs:\n%s", h.logs)
	}
	h.writeEnv("DB_PASSWORD='second s3cret value'\n")
	h.waitApp("second s3cret value", pid)
}

func TestAppExitCode(t *testing.T) {
	h := start(t, "restart", "APP_EXIT=7")
	select {
	case r := <-h.result:
		if r.err != nil || r.code != 7 {
			t.Errorf("Run = %d, %v; want the app's exit code 7", r.code, r.err)
		}
		h.result <- r
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return when the app exited")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("PASSWORD=hunter2 hunter3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Options{Command: []string{"/bin/true"}, OnChange: Restart, PollInterval: time.Second, StopTimeout: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no env file flag", func(o *Options) {}, "--env-file"},
		{"no command", func(o *Options) { o.EnvFiles = []string{bad}; o.Command = nil }, "no command"},
		{"poll too fast", func(o *Options) { o.EnvFiles = []string{bad}; o.PollInterval = time.Millisecond }, "--poll-interval"},
		{"missing file", func(o *Options) { o.EnvFiles = []string{filepath.Join(dir, "none.env")} }, "no such file"},
		{"bad file", func(o *Options) { o.EnvFiles = []string{bad} }, "line 1: key PASSWORD"},
		{"no such program", func(o *Options) {
			good := filepath.Join(dir, "good.env")
			_ = os.WriteFile(good, []byte("A=1\n"), 0o600)
			o.EnvFiles, o.Command = []string{good}, []string{filepath.Join(dir, "no-such-program")}
		}, "starting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			_, err := Run(context.Background(), o, funcr.New(func(string, string) {}, funcr.Options{}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter") {
				t.Errorf("error %q quotes a value", err)
			}
		})
	}
}

func TestParseOnChange(t *testing.T) {
	for in, want := range map[string]string{"restart": "restart", "signal:SIGHUP": "signal:SIGHUP", "signal:usr1": "signal:SIGUSR1", "signal:KILL": "", "reload": "", "signal:": ""} {
		got, err := ParseOnChange(in)
		if (err == nil) != (want != "") || got.String() != want {
			t.Errorf("ParseOnChange(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
