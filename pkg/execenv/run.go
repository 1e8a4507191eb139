package execenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// forwarded are the signals passed on to the app as they arrive; SIGTERM
// and SIGINT end ctx instead, which stops the app and then exec.
var forwarded = []os.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// Run starts the app with the env files' variables and supervises it. It
// returns the app's exit code (128+n when signal n ended it) once the app
// exits on its own, or once ctx ends and the app has been stopped. An error
// means the app could not be started.
func Run(ctx context.Context, o Options, log logr.Logger) (int, error) {
	if err := o.Validate(); err != nil {
		return 0, err
	}
	snap, err := o.read()
	if err != nil {
		return 0, err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	a, err := o.start(snap)
	if err != nil {
		return 0, err
	}
	log.Info("app started", "pid", a.cmd.Process.Pid, "variables", len(snap.vars), "onChange", o.OnChange.String())
	tick := time.NewTicker(o.PollInterval)
	defer tick.Stop()
	var lastProblem string
	for {
		select {
		case <-a.done:
			code := a.exitCode()
			log.Info("app exited", "code", code)
			return code, nil
		case <-ctx.Done():
			log.Info("stopping the app", "pid", a.cmd.Process.Pid)
			return a.stop(o.StopTimeout), nil
		case s := <-sigs:
			_ = a.cmd.Process.Signal(s)
		case <-tick.C:
			next, err := o.changed(snap)
			if err != nil {
				// Report a problem once, not at every poll; the app keeps
				// running with the variables it has.
				if err.Error() != lastProblem {
					log.Error(err, "env file changed but cannot be used; the app keeps its current variables")
					lastProblem = err.Error()
				}
				continue
			}
			if next == nil {
				continue
			}
			lastProblem = ""
			snap = next
			if a, err = o.apply(a, snap, log); err != nil {
				return 0, err
			}
		}
	}
}

// changed returns the files' new content, or nil when they are unchanged
// (same digest: nothing is parsed).
func (o *Options) changed(cur *snapshot) (*snapshot, error) {
	_, sum, err := o.load()
	if err != nil || sum == cur.sum {
		return nil, err
	}
	return o.read()
}

// apply acts on a change: signal the app, or restart it with the new
// variables.
func (o *Options) apply(a *app, snap *snapshot, log logr.Logger) (*app, error) {
	if o.OnChange.Signal != 0 {
		err := a.cmd.Process.Signal(o.OnChange.Signal)
		log.Info("env file changed; app signalled", "pid", a.cmd.Process.Pid, "signal", o.OnChange.String(), "error", fmt.Sprint(err))
		return a, nil
	}
	code := a.stop(o.StopTimeout)
	log.Info("env file changed; restarting the app", "previousExitCode", code, "variables", len(snap.vars))
	next, err := o.start(snap)
	if err != nil {
		return nil, err
	}
	log.Info("app started", "pid", next.cmd.Process.Pid, "variables", len(snap.vars), "onChange", o.OnChange.String())
	return next, nil
}

// app is one run of the app.
type app struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (o *Options) start(snap *snapshot) (*app, error) {
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Env = o.environ(snap)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, o.Stdout, o.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Command[0], err)
	}
	a := &app{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(a.done)
	}()
	return a, nil
}

// exitCode is the app's exit code, 128+n when signal n ended it.
func (a *app) exitCode() int {
	if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return a.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM, and SIGKILL when the app is still running after
// timeout; it returns the app's exit code.
func (a *app) stop(timeout time.Duration) int {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	return a.exitCode()
}
