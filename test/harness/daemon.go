package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// daemon is a server process (Vault, PostgreSQL) whose output goes to a log
// file rather than to the test's output, where it would drown the test's own
// messages. The log is kept so that a failure can quote it.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been reaped
	err     error         // cmd.Wait's result; read only after done
	stopped bool          // stop was called, so an exit is expected
}

// startDaemon starts bin with args and exactly env, appending its output to
// logPath. cred, when not nil, runs it as another user.
func startDaemon(bin string, args, env []string, logPath string, cred *syscall.Credential) (*daemon, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log %s: %w", logPath, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed.
	defer logFile.Close()
	if cred != nil {
		if err := logFile.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("handing log %s to uid %d: %w", logPath, cred.Uid, err)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so that stop can reach anything it forked.
		Setpgid: true,
		// If the test binary dies without cleaning up, so does the server.
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// running reports whether the process has not exited yet.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// exitError describes an exit that nobody asked for, quoting the log.
func (d *daemon) exitError() error {
	return fmt.Errorf("%s exited: %v\n%s", d.cmd.Path, d.err, logTail(d.logPath, 3000))
}

// stop sends sig, waits up to grace for the process to exit, then kills its
// whole process group. It is safe to call twice. An error means the process
// had already died on its own, or had to be killed.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) error {
	if d.stopped {
		<-d.done
		return nil
	}
	d.stopped = true
	if !d.running() {
		return d.exitError()
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", d.cmd.Path, err)
	}
	return d.awaitExit(grace)
}

// awaitExit waits up to grace for an exit already asked for (by a signal or
// by a tool such as pg_ctl), then kills the process group.
func (d *daemon) awaitExit(grace time.Duration) error {
	d.stopped = true
	var err error
	select {
	case <-d.done:
	case <-time.After(grace):
		err = fmt.Errorf("%s did not exit within %s; killed", d.cmd.Path, grace)
	}
	// Whatever it forked goes too, even after a clean exit of the parent.
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
	return err
}

// logTail returns the last n bytes of a log file, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", path, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("--- last of %s ---\n%s", path, strings.TrimRight(string(b), "\n"))
}
