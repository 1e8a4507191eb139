package node

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// teardown undoes everything s records, in the order that lets each step
// succeed: processes (ours, then anything left in our cgroups or naming our
// directory, such as containerd's shims and the containers), mounts, the
// veth pair, cgroups, fixed system paths, and the directory. It keeps going
// past failures and reports them all: a half-done teardown is worse than a
// loud one.
func teardown(s *state, logf func(string, ...any)) error {
	var errs []error
	note := func(err error) {
		if err != nil {
			logf("teardown: %v", err)
			errs = append(errs, err)
		}
	}
	stopRecorded(s.Procs, logf)
	note(killStrays(s, logf))
	note(unmountUnder(s.Dir))
	note(deleteLink(s.Link))
	note(removeCgroups(s.CgroupRoot))
	for _, p := range s.Created {
		note(os.RemoveAll(p))
	}
	if s.Dir != "" {
		note(os.RemoveAll(s.Dir))
	}
	if len(errs) == 0 {
		note(os.Remove(s.path))
	}
	return errors.Join(errs...)
}

// stopRecorded asks every recorded process to stop, newest first, and kills
// those still there after a grace period.
func stopRecorded(procs []procRecord, logf func(string, ...any)) {
	for i := len(procs) - 1; i >= 0; i-- {
		if p := procs[i]; p.alive() {
			_ = syscall.Kill(p.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range procs {
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p.alive() {
			logf("teardown: %s (pid %d) ignored SIGTERM; killing it", p.Name, p.Pid)
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
}

// killStrays kills what the node's processes started and left behind:
// every process in the node's cgroups (containers, shims) and every process
// whose command line names the node's directory. It waits until they are
// gone, as unmounting and removing cgroups need.
func killStrays(s *state, logf func(string, ...any)) error {
	for attempt := 0; ; attempt++ {
		pids := strayPids(s)
		if len(pids) == 0 {
			return nil
		}
		if attempt == 100 {
			return fmt.Errorf("processes %v of the node would not die", pids)
		}
		if attempt == 0 {
			logf("teardown: killing %d processes left by the node", len(pids))
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func strayPids(s *state) []int {
	seen := map[int]bool{}
	for _, dir := range cgroupDirs(s.CgroupRoot) {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	if s.Dir != "" {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && strings.Contains(string(b), s.Dir) {
				seen[pid] = true
			}
		}
	}
	delete(seen, os.Getpid())
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	ms, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	// A mount can hide another at the same point; repeat until none is left.
	for round := 0; round < 10; round++ {
		mps, err := mountsUnder(dir)
		if err != nil || len(mps) == 0 {
			return err
		}
		for _, mp := range mps {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("unmounting %s: %w", mp, err)
			}
		}
	}
	mps, _ := mountsUnder(dir)
	return fmt.Errorf("mounts left under %s: %v", dir, mps)
}

func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // gone with the network namespace
	}
	return run("ip", "link", "del", name)
}

// cgroupDirs is root's directory in every mounted cgroup hierarchy that has
// it (the v1 controllers, the named systemd hierarchy, the unified one).
func cgroupDirs(root string) []string {
	if root == "" {
		return nil
	}
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	if isCgroup2("/sys/fs/cgroup") {
		hs = []string{"/sys/fs/cgroup"}
	}
	var out []string
	for _, h := range hs {
		d := filepath.Join(h, root)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

func isCgroup2(p string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(p, &st) == nil && st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// removeCgroups removes root's directories depth first; a cgroup directory
// can only go once it has no processes and no children.
func removeCgroups(root string) error {
	var errs []error
	for _, d := range cgroupDirs(root) {
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, p := range dirs {
			var err error
			for i := 0; i < 50; i++ {
				if err = syscall.Rmdir(p); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}
