package node

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"syscall"
)

// janitorEnv, when set in a process's environment, makes this package's
// init run the janitor instead of the program: the janitor is the test (or
// demo) binary itself, started again, so no other binary has to be built.
const janitorEnv = "BLINKCHAMBER_NODE_JANITOR"

func init() {
	if path := os.Getenv(janitorEnv); path != "" {
		os.Exit(janitor(path))
	}
}

// janitor waits until its parent is gone (its stdin, the read end of a pipe
// only the parent holds, reaches EOF), then tears down whatever node state
// is still recorded. A parent that stopped the node removed the state
// first, so then there is nothing to do.
func janitor(statePath string) int {
	_, _ = io.Copy(io.Discard, os.Stdin)
	st, err := loadState(statePath)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("the process that started the node in %s is gone; tearing the node down", st.Dir)
	if err := teardown(st, log.Printf); err != nil {
		log.Print(err)
		return 1
	}
	log.Print("the node is torn down")
	return 0
}

// startJanitor starts the janitor in a session of its own, so that a
// Ctrl-C or a test timeout that kills our process group leaves it running
// to clean up. It holds the node lock (an inherited descriptor) until it
// exits.
func (c *Cluster) startJanitor(logPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.Close()
		return err
	}
	defer lf.Close()
	cmd := exec.Command(self)
	// Its own name, so that killing the test binary by name (pkill -f
	// pkg.test) does not take the janitor with it.
	cmd.Args = []string{"blinkchamber-node-janitor"}
	cmd.Env = append(os.Environ(), janitorEnv+"="+c.st.path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, lf, lf
	// The janitor inherits the node lock, so that no other node starts
	// while it tears this one down after our death.
	cmd.ExtraFiles = []*os.File{c.lock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the node's janitor: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	c.janitor = w
	return nil
}
