package node

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Machine is what a node could change on this machine and must put back:
// mounts, cgroups, network links and routes, the sysctls the kubelet and
// kube-proxy tune, netfilter rules, fixed system paths, and processes of
// the node's programs. Two snapshots taken around a node's life must be
// equal.
type Machine struct {
	Mounts    []string
	Cgroups   []string
	Links     []string
	Routes    []string
	Sysctls   []string
	Netfilter string
	Paths     []string
	Processes []string
}

// nodePrograms are the executables of the node; none may outlive it.
var nodePrograms = map[string]bool{
	"containerd": true, "containerd-shim": true, "containerd-shim-runc-v2": true, "runc": true,
	"kubelet": true, "kube-proxy": true, "coredns": true,
	"kube-controller-manager": true, "kube-scheduler": true, "pause": true,
}

// dirPrefix starts every node directory's name; a process whose command
// line names one (etcd, kube-apiserver: other tests run their own too) is
// the node's.
const dirPrefix = "blinkchamber-node-"

// watchedSysctls are the machine-wide tunables the node's parts would write.
var watchedSysctls = append([]string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables",
	"net/netfilter/nf_conntrack_max",
}, kubeletSysctls...)

// Snapshot reads the machine's current state.
func Snapshot() (Machine, error) {
	var m Machine
	var err error
	if m.Mounts, err = mountTable(); err != nil {
		return m, err
	}
	m.Cgroups = cgroupTree()
	ifs, err := net.Interfaces()
	if err != nil {
		return m, err
	}
	for _, i := range ifs {
		m.Links = append(m.Links, i.Name)
	}
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return m, fmt.Errorf("listing routes: %w", err)
	}
	m.Routes = strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, s := range watchedSysctls {
		if v, err := os.ReadFile("/proc/sys/" + s); err == nil {
			m.Sysctls = append(m.Sysctls, s+"="+strings.TrimSpace(string(v)))
		}
	}
	m.Netfilter = netfilterRules()
	for _, p := range append(fixedPaths, "/opt/containerd", "/var/lib/containerd", "/etc/cni", "/opt/cni", "/run/netns", "/usr/libexec/kubernetes") {
		if _, err := os.Lstat(p); err == nil {
			m.Paths = append(m.Paths, p)
		}
	}
	m.Processes = nodeProcesses()
	return m, nil
}

// mountTable lists mount points with their source and type; IDs are left
// out, as they change with every remount elsewhere.
func mountTable() ([]string, error) {
	ms, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		// The process shim of package harness mounts in its own pod
		// directories while other test packages run beside this one.
		if !strings.Contains(m.Point, "/blinkchamber-pod-") {
			out = append(out, m.Point+" "+m.Type+" "+m.Source)
		}
	}
	sort.Strings(out)
	return out, nil
}

// cgroupTree lists cgroup directories two levels deep in every hierarchy
// (the node's root and its first children would show).
func cgroupTree() []string {
	var out []string
	for _, pat := range []string{"/sys/fs/cgroup/*/*/", "/sys/fs/cgroup/*/*/*/", "/sys/fs/cgroup/*/"} {
		ds, _ := filepath.Glob(pat)
		out = append(out, ds...)
	}
	sort.Strings(out)
	return out
}

// netfilterRules is the host's iptables ruleset through the backend the
// node's tools use (never iptables-legacy, whose tables cannot be removed
// once created), without packet counters.
func netfilterRules() string {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return fmt.Sprintf("(iptables-save failed: %v)", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func nodeProcesses() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if nodePrograms[filepath.Base(strings.TrimSuffix(exe, " (deleted)"))] || strings.Contains(string(cmdline), "/"+dirPrefix) {
			out = append(out, e.Name()+" "+exe)
		}
	}
	sort.Strings(out)
	return out
}

// Diff describes how after differs from m, or returns "".
func (m Machine) Diff(after Machine) string {
	var b strings.Builder
	diffList(&b, "mount", m.Mounts, after.Mounts)
	diffList(&b, "cgroup", m.Cgroups, after.Cgroups)
	diffList(&b, "link", m.Links, after.Links)
	diffList(&b, "route", m.Routes, after.Routes)
	diffList(&b, "sysctl", m.Sysctls, after.Sysctls)
	diffList(&b, "path", m.Paths, after.Paths)
	diffList(&b, "process", m.Processes, after.Processes)
	diffList(&b, "netfilter rule", strings.Split(m.Netfilter, "\n"), strings.Split(after.Netfilter, "\n"))
	return b.String()
}

func diffList(b *strings.Builder, what string, before, after []string) {
	had := map[string]int{}
	for _, s := range before {
		had[s]++
	}
	for _, s := range after {
		if had[s] > 0 {
			had[s]--
			continue
		}
		fmt.Fprintf(b, "new %s: %s\n", what, s)
	}
	for s, n := range had {
		for ; n > 0; n-- {
			fmt.Fprintf(b, "missing %s: %s\n", what, s)
		}
	}
}
