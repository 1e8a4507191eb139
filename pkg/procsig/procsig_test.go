package procsig

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary act as a process that counts SIGHUPs,
// printing "ready" and then "hup N" for each one.
const childEnv = "PROCSIG_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		counter()
		return
	}
	os.Exit(m.Run())
}

func counter() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGHUP)
	fmt.Println("ready")
	for n := 1; ; n++ {
		<-ch
		fmt.Printf("hup %d\n", n)
	}
}

type child struct {
	cmd   *exec.Cmd
	lines chan string
}

// startChild runs the test binary under the program name name (a link in a
// temp dir, so both comm and argv[0] carry it).
func startChild(t *testing.T, name string) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			c.lines <- s.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c.expect(t, "ready")
	return c
}

func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-c.lines:
		if got != want {
			t.Fatalf("child printed %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("child never printed %q", want)
	}
}

func TestSendSignalsEveryMatch(t *testing.T) {
	a := startChild(t, "bc-counter")
	b := startChild(t, "bc-counter")
	other := startChild(t, "bc-other")
	for round := 1; round <= 2; round++ {
		r, err := Send("/proc", "bc-counter", syscall.SIGHUP)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(r.Signalled)
		want := []int{a.cmd.Process.Pid, b.cmd.Process.Pid}
		slices.Sort(want)
		if !slices.Equal(r.Signalled, want) {
			t.Fatalf("signalled %v, want %v", r.Signalled, want)
		}
		a.expect(t, fmt.Sprintf("hup %d", round))
		b.expect(t, fmt.Sprintf("hup %d", round))
	}
	select {
	case l := <-other.lines:
		t.Fatalf("a process of another name got a signal: %q", l)
	default:
	}
}

// TestFindByArgv0 finds a process whose name is longer than the kernel
// keeps in comm by the basename of its argv[0].
func TestFindByArgv0(t *testing.T) {
	c := startChild(t, "blinkchamber-long-program-name")
	pids, err := Find("/proc", "blinkchamber-long-program-name")
	if err != nil || !slices.Contains(pids, c.cmd.Process.Pid) {
		t.Fatalf("Find = %v, %v; want pid %d", pids, err, c.cmd.Process.Pid)
	}
	// The truncated comm alone must not match a longer name it is a prefix of.
	pids, err = Find("/proc", "blinkchamber-long-program-name-2")
	if err != nil || slices.Contains(pids, c.cmd.Process.Pid) {
		t.Fatalf("Find of another name = %v, %v", pids, err)
	}
}

func TestSendNoProcess(t *testing.T) {
	_, err := Send("/proc", "no-such-program-xyz", syscall.SIGHUP)
	if !errors.Is(err, ErrNoProcess) {
		t.Fatalf("error %v, want ErrNoProcess", err)
	}
}

func TestFindNeverSelf(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pids, err := Find("/proc", filepath.Base(self))
	if err != nil || slices.Contains(pids, os.Getpid()) {
		t.Fatalf("Find listed the caller: %v, %v", pids, err)
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"SIGHUP", "SIGHUP", true}, {"hup", "SIGHUP", true}, {"Usr1", "SIGUSR1", true}, {"SIGTERM", "SIGTERM", true},
		{"SIGKILL", "", false}, {"STOP", "", false}, {"9", "", false}, {"", "", false},
	} {
		_, name, err := ParseSignal(tc.in)
		if (err == nil) != tc.ok || name != tc.want {
			t.Errorf("ParseSignal(%q) = %q, %v", tc.in, name, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownSignal) {
			t.Errorf("ParseSignal(%q): %v is not ErrUnknownSignal", tc.in, err)
		}
	}
}

func TestValidateProcessName(t *testing.T) {
	for name, ok := range map[string]bool{"nginx": true, "php-fpm8.2": true, "": false, "/usr/sbin/nginx": false, "a b": false, strings.Repeat("x", 256): false} {
		if err := ValidateProcessName(name); (err == nil) != ok {
			t.Errorf("ValidateProcessName(%.20q) = %v", name, err)
		}
	}
}
