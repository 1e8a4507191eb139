package harness

// Process sharing (pod.spec.shareProcessNamespace). On a node, a pod that
// shares its process namespace has one PID namespace for all its
// containers, whose PID 1 is the pause (infra) container; every container
// sees, and with the same uid may signal, the others' processes, and its
// /proc lists the pod's processes only. The shim does the same: a pause
// process (sleep) is started in a new PID namespace before any container,
// every container process (and exec probe) is started into that namespace
// with setns, and its mount namespace gets a /proc of its own for it.
//
// A pod that does not share its process namespace keeps the shim's older
// behaviour: its processes stay in the host's PID namespace (a node would
// give each container its own, with the app as PID 1). Tests that need a
// container to see only its own processes must not rely on the shim there.

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// podPIDNamespace is the pod's shared PID namespace, held by its pause
// process, and the launcher that starts processes into it.
type podPIDNamespace struct {
	pause  *exec.Cmd
	done   chan struct{}
	starts chan startRequest
}

type startRequest struct {
	cmd     *exec.Cmd
	started chan error
}

func sharesProcesses(r *PodRun) bool {
	s := r.pod.Spec.ShareProcessNamespace
	return s != nil && *s
}

// startPIDNamespace starts the pause process of a pod that shares its
// process namespace, and its launcher; it does nothing for other pods.
func (r *PodRun) startPIDNamespace() error {
	if !sharesProcesses(r) {
		return nil
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return fmt.Errorf("the shim's pause process needs sleep (coreutils): %w", err)
	}
	// setpriv, not SysProcAttr.Pdeathsig, asks for SIGKILL when the shim
	// dies: Go's child kills itself at once when getppid() is not the
	// parent's pid, and in a new PID namespace getppid() is 0.
	cmd := exec.Command(r.tools.setpriv, "--pdeathsig=KILL", "--", sleep, "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the pod's pause process in a new PID namespace: %w", err)
	}
	ns := &podPIDNamespace{pause: cmd, done: make(chan struct{}), starts: make(chan startRequest)}
	go func() { _ = cmd.Wait(); close(ns.done) }()
	r.pidns = ns
	ready := make(chan error, 1)
	go ns.launch(ready)
	return <-ready
}

// launch starts the pod's processes from one OS thread that has joined the
// pod's PID namespace: setns(CLONE_NEWPID) puts a thread's future children
// there, and a thread cannot go back. The goroutine keeps that thread
// locked and never returns, even after the pod stops: a thread that ends
// fires the pdeathsig of every process it ever forked, and the thread may
// have forked other tests' servers (Vault) before. One parked thread per
// such pod is the price.
func (ns *podPIDNamespace) launch(ready chan<- error) {
	runtime.LockOSThread()
	if err := ns.enter(); err != nil {
		runtime.UnlockOSThread() // still in the host's namespace: reusable
		ready <- err
		return
	}
	ready <- nil
	for req := range ns.starts {
		req.started <- req.cmd.Start()
	}
	select {}
}

// stopPIDNamespace ends the pause process, last, as the kubelet removes the
// infra container after the others. The kernel kills whatever is left in
// the namespace with it.
func (r *PodRun) stopPIDNamespace() {
	if r.pidns == nil {
		return
	}
	close(r.pidns.starts)
	// sleep as PID 1 has no handler for SIGTERM: only SIGKILL ends it.
	_ = r.pidns.pause.Process.Kill()
	<-r.pidns.done
}

// procfsMode tells mountScript whether to mount a /proc for the pod's PID
// namespace.
func (r *PodRun) procfsMode() string {
	if r.pidns != nil {
		return "new"
	}
	return "host"
}

// startProcess starts cmd, in the pod's PID namespace when it has one, and
// returns a channel that receives cmd.Wait's result (any thread may wait
// for a child of another).
func (r *PodRun) startProcess(cmd *exec.Cmd) (<-chan error, error) {
	var err error
	if r.pidns == nil {
		err = cmd.Start()
	} else {
		// As for the pause process: setpriv in the container's command
		// sets the pdeathsig; Go's own would kill the child (getppid() is
		// 0 in the pod's namespace).
		cmd.SysProcAttr.Pdeathsig = 0
		req := startRequest{cmd: cmd, started: make(chan error, 1)}
		r.pidns.starts <- req
		err = <-req.started
	}
	if err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return waited, nil
}

// enter moves the calling thread's future children into the namespace.
func (ns *podPIDNamespace) enter() error {
	f, err := os.Open("/proc/" + strconv.Itoa(ns.pause.Process.Pid) + "/ns/pid")
	if err != nil {
		return fmt.Errorf("opening the pod's PID namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWPID); err != nil {
		return fmt.Errorf("joining the pod's PID namespace: %w", err)
	}
	return nil
}
