package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// state is everything a node changed on the machine, written to disk after
// every change so that whoever tears the node down (Stop, the janitor after
// the test process died, or the next Start after the janitor died too)
// knows exactly what to undo, and nothing else.
type state struct {
	path string
	// Dir holds every file of the node; every mount the node makes is
	// under it.
	Dir string `json:"dir"`
	// Procs are the processes started, in start order.
	Procs []procRecord `json:"procs"`
	// Link is the host end of the veth pair into the node's network
	// namespace.
	Link string `json:"link,omitempty"`
	// CgroupRoot is the cgroup (in every hierarchy) that holds the node's
	// processes and containers.
	CgroupRoot string `json:"cgroupRoot,omitempty"`
	// Created are the fixed system paths that did not exist before the node
	// started (the kubelet and containerd use some whatever their flags say).
	Created []string `json:"created,omitempty"`
}

// procRecord names a process by pid and start time, so that a pid reused by
// another process after a crash is never signalled.
type procRecord struct {
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

func (s *state) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("recording the node's state: %w", err)
	}
	return os.Rename(tmp, s.path)
}

func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &state{path: path}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("reading the node state %s: %w", path, err)
	}
	return s, nil
}

func (s *state) addProc(name string, pid int) error {
	start, err := procStart(pid)
	if err != nil {
		return err
	}
	s.Procs = append(s.Procs, procRecord{Name: name, Pid: pid, Start: start})
	return s.save()
}

// procStart reads a process's start time (clock ticks since boot), field 22
// of /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the recorded process still runs (and is the same one).
func (p procRecord) alive() bool {
	st, err := procStart(p.Pid)
	return err == nil && st == p.Start
}

// fixedPaths are used by the kubelet, containerd and the CNI library
// whatever their configuration says.
var fixedPaths = []string{
	"/run/containerd",
	"/usr/libexec/kubernetes",
	"/var/lib/cni",
	"/var/lib/kubelet",
	"/var/log/containers",
	"/var/log/pods",
}

// recordFixedPaths notes which fixed paths are missing now, so that teardown
// removes exactly those.
func (s *state) recordFixedPaths() error {
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			s.Created = append(s.Created, p)
		} else if err != nil {
			return err
		}
	}
	return s.save()
}
