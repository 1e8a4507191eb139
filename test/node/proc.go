package node

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one long-running part of the node, its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// start runs argv as part name, logging to logs/<name>.log, records it in
// the state and moves it into the node's cgroup (so that whatever it forks,
// such as containerd's shims, is found and accounted for).
func (c *Cluster) start(name string, argv []string, env []string) (*proc, error) {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group; the janitor, not a parent-death signal, cleans
	// up after a crash, since a killed containerd would leave its shims.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if err := c.st.addProc(name, cmd.Process.Pid); err != nil {
		return p, err
	}
	c.procs = append(c.procs, p)
	return p, c.joinCgroup(cmd.Process.Pid)
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// failure describes an unexpected exit, quoting the end of the log.
func (p *proc) failure() error {
	return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, tail(p.logPath, 3000))
}

func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", path, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("--- last of %s ---\n%s", path, strings.TrimRight(string(b), "\n"))
}

// run runs a short command and returns its error with its output.
func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// joinCgroup moves pid into the node's "system" cgroup in every hierarchy.
func (c *Cluster) joinCgroup(pid int) error {
	for _, d := range cgroupDirs(c.st.CgroupRoot) {
		procs := filepath.Join(d, "system", "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving pid %d into %s: %w", pid, procs, err)
		}
	}
	return nil
}

// makeCgroups creates root and root/system in every hierarchy; cpuset needs
// its cpus and mems copied from the parent before a process may join.
func (c *Cluster) makeCgroups(root string) error {
	c.st.CgroupRoot = root
	if err := c.st.save(); err != nil {
		return err
	}
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	if isCgroup2("/sys/fs/cgroup") {
		hs = []string{"/sys/fs/cgroup"}
	}
	for _, h := range hs {
		if !isCgroupMount(h) {
			continue
		}
		for _, d := range []string{filepath.Join(h, root), filepath.Join(h, root, "system")} {
			if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("creating cgroup %s: %w", d, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
				if err != nil {
					continue // not the cpuset hierarchy
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", f, d, err)
				}
			}
		}
	}
	return nil
}

func isCgroupMount(p string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(p, &st) == nil && (st.Type == 0x27e0eb || st.Type == 0x63677270)
}
