// Package procsig finds processes by name through /proc and signals them.
// The agent uses it to tell an app in the same pod (shareProcessNamespace)
// that its secret file changed.
package procsig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// commLen is the length the kernel keeps of a process name
// (TASK_COMM_LEN - 1).
const commLen = 15

// Signals a secret change may send: the reload and graceful-stop signals.
// KILL and STOP are not a way to tell an app anything.
var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGTERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
	"SIGWINCH": syscall.SIGWINCH,
}

// ErrUnknownSignal is wrapped by ParseSignal.
var ErrUnknownSignal = errors.New("unknown or refused signal")

// ParseSignal reads a signal name, with or without SIG, in any case, and
// returns it with its canonical name ("SIGHUP").
func ParseSignal(s string) (syscall.Signal, string, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig, ok := signals[name]
	if !ok {
		return 0, "", fmt.Errorf("%w %q; use one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH", ErrUnknownSignal, s)
	}
	return sig, name, nil
}

// ValidateProcessName accepts what Find can match: a non-empty program
// name without path separators, spaces or NUL.
func ValidateProcessName(name string) error {
	switch {
	case name == "":
		return errors.New("the process name is empty")
	case len(name) > 255:
		return errors.New("the process name is longer than 255 bytes")
	case strings.ContainsAny(name, "/ \t\r\n\x00"):
		return errors.New("the process name must be a program name (the basename), without / or spaces")
	}
	return nil
}

// Find lists the processes under procDir (normally /proc) named name: their
// kernel name (comm, at most 15 bytes) equals it, or the basename of their
// argv[0] does. The calling process is never listed. Processes that vanish
// while being read are skipped.
func Find(procDir, name string) ([]int, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if matches(filepath.Join(procDir, e.Name()), name) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func matches(dir, name string) bool {
	if len(name) <= commLen {
		if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil && string(bytes.TrimSuffix(comm, []byte("\n"))) == name {
			return true
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(cmdline) == 0 {
		return false // gone, or a kernel thread
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(argv0)) == name
}

// Result is what Send did.
type Result struct {
	// Signalled are the processes the signal was delivered to.
	Signalled []int
	// Denied are the processes the kernel refused to signal (EPERM): they
	// run as another user and the sender lacks CAP_KILL.
	Denied []int
}

// ErrNoProcess is returned by Send when no process has the name.
var ErrNoProcess = errors.New("no process with that name")

// ErrDenied is returned by Send when a process could not be signalled for
// lack of permission.
var ErrDenied = errors.New("not permitted to signal the process (it runs as another user)")

// Send delivers sig to every process Find lists. It fails with ErrNoProcess
// when there is none, and with ErrDenied when some were refused; the others
// are signalled all the same.
func Send(procDir, name string, sig syscall.Signal) (Result, error) {
	var r Result
	pids, err := Find(procDir, name)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, pid := range pids {
		switch err := syscall.Kill(pid, sig); {
		case err == nil:
			r.Signalled = append(r.Signalled, pid)
		case errors.Is(err, syscall.ESRCH): // exited meanwhile
		case errors.Is(err, syscall.EPERM):
			r.Denied = append(r.Denied, pid)
		default:
			errs = append(errs, fmt.Errorf("signalling pid %d: %w", pid, err))
		}
	}
	if len(r.Denied) > 0 {
		errs = append(errs, fmt.Errorf("%w: pids %v", ErrDenied, r.Denied))
	}
	if len(r.Signalled) == 0 && len(errs) == 0 {
		return r, fmt.Errorf("%w: %q", ErrNoProcess, name)
	}
	return r, errors.Join(errs...)
}
