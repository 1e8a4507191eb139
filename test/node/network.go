package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The node's addresses. The node lives in a network namespace of its own,
// as a kind node lives in a container: pods, the pod bridge-less routes
// (CNI ptp), kube-proxy's rules and cluster DNS all stay inside it. The host
// reaches it through one veth pair; routes on the host send pod and service
// addresses into that pair and nowhere else. The node has no default route,
// so nothing in it can send packets off this machine.
const (
	hostLink    = "bcnode0"
	hostAddr    = "172.31.255.1"
	nodeAddr    = "172.31.255.2"
	linkCIDR    = "172.31.255.0/30"
	podCIDR     = "10.244.0.0/24"
	serviceCIDR = "10.96.0.0/24"
	// kubernetesServiceIP is the first address of serviceCIDR, which the API
	// server gives to the default/kubernetes Service.
	kubernetesServiceIP = "10.96.0.1"
)

// HostAddr is the host's address on the link into the node: a server the
// node's pods or containerd must reach (a registry) listens here.
const HostAddr = hostAddr

// checkAddressesFree refuses to start when the machine already routes any of
// the node's ranges: the node would capture or break that traffic.
func checkAddressesFree() error {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	var used []*net.IPNet
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 {
			if _, n, err := net.ParseCIDR(f[3]); err == nil {
				used = append(used, n)
			}
		}
	}
	for _, line := range strings.Split(string(routes), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(f[0], "/") {
			if _, n, err := net.ParseCIDR(f[0]); err == nil {
				used = append(used, n)
			}
		}
	}
	for _, mine := range []string{linkCIDR, podCIDR, serviceCIDR} {
		_, m, _ := net.ParseCIDR(mine)
		for _, u := range used {
			if u.Contains(m.IP) || m.Contains(u.IP) {
				return fmt.Errorf("the node's range %s overlaps %s, already on this machine; the local node cannot start beside it", mine, u)
			}
		}
	}
	return nil
}

// startNetwork creates the node's network namespace, held by a sleeping
// process, and the veth pair and routes into it.
func (c *Cluster) startNetwork() error {
	if err := checkAddressesFree(); err != nil {
		return err
	}
	holder, err := c.start("netns", []string{"unshare", "--net", "--", "sleep", "infinity"}, nil)
	if err != nil {
		return err
	}
	c.netns = fmt.Sprintf("/proc/%d/ns/net", holder.cmd.Process.Pid)
	if err := waitNewNetns(c.netns); err != nil {
		return err
	}
	c.st.Link = hostLink
	if err := c.st.save(); err != nil {
		return err
	}
	inNode := func(argv ...string) error {
		return run(append([]string{"nsenter", "--net=" + c.netns, "--"}, argv...)...)
	}
	steps := [][]string{
		{"ip", "link", "add", hostLink, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(holder.cmd.Process.Pid)},
		{"ip", "addr", "add", hostAddr + "/30", "dev", hostLink},
		{"ip", "link", "set", hostLink, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	nodeSteps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", nodeAddr + "/30", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		// The node routes between its pods, and between pods and the host.
		{"sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
	}
	for _, s := range nodeSteps {
		if err := inNode(s...); err != nil {
			return err
		}
	}
	for _, cidr := range []string{podCIDR, serviceCIDR} {
		if err := run("ip", "route", "add", cidr, "via", nodeAddr, "dev", hostLink); err != nil {
			return err
		}
	}
	return nil
}

// inNodeArgv wraps argv so that it runs in the node's network namespace.
func (c *Cluster) inNodeArgv(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + c.netns, "--"}, argv...)
}

// waitNewNetns waits until the holder has left the host's network
// namespace: unshare(1) is started, not yet unshared, when exec returns,
// and a veth peer moved into its pid before then lands on the host (seen
// as "File exists" for eth0 on a loaded machine).
func waitNewNetns(holder string) error {
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ns, err := os.Readlink(holder)
		if err != nil {
			return fmt.Errorf("the node's network namespace holder: %w", err)
		}
		if ns != host {
			return nil
		}
	}
	return errors.New("the node's network namespace holder did not leave the host's namespace in 10s")
}
