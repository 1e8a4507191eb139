package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// NodeName is the one node's name.
const NodeName = "blinkchamber-node"

// The kubelet writes these host sysctls at start (its kernel tunables). It
// runs with a private copy of each file bound over the real one in a mount
// namespace of its own, so the host's values never change.
var kubeletSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

func (c *Cluster) kubeletDir(p ...string) string {
	return filepath.Join(append([]string{c.Dir, "kubelet"}, p...)...)
}

func (c *Cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
# Its own iptables chains would go into the node's namespace, but nothing
# here needs them.
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://%s
failSwapOn: false
address: %s
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization:
  mode: Webhook
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %s
volumePluginDir: %s
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
`, c.st.CgroupRoot, c.Socket(), nodeAddr,
		c.pki.path("kubelet-serving.crt"), c.pki.path("kubelet-serving.key"), c.pki.caFile(),
		nodeAddr, c.kubeletDir("resolv.conf"), c.kubeletDir("volume-plugins"))
}

// startKubelet runs the kubelet in the node's network namespace and a mount
// namespace of its own. Its root directory is a shared bind mount, so the
// volumes it mounts there (tmpfs for memory emptyDirs and projected
// tokens) propagate back to the host's mount namespace where containerd
// bind-mounts them into containers.
func (c *Cluster) startKubelet(ctx context.Context, bin string) error {
	root := c.kubeletDir("root")
	if err := mkdirs(root, c.kubeletDir("sysctl"), c.kubeletDir("volume-plugins")); err != nil {
		return err
	}
	if err := syscall.Mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting the kubelet's root %s: %w", root, err)
	}
	if err := syscall.Mount("", root, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("sharing the kubelet's root %s: %w", root, err)
	}
	if err := c.pki.serving("kubelet-serving", []net.IP{net.ParseIP(nodeAddr)}, []string{NodeName}); err != nil {
		return err
	}
	// Pods with dnsPolicy Default get this; it names cluster DNS only, so
	// no query leaves the node.
	if err := os.WriteFile(c.kubeletDir("resolv.conf"), []byte("nameserver "+nodeAddr+"\n"), 0o644); err != nil {
		return err
	}
	cfg := c.kubeletDir("config.yaml")
	if err := os.WriteFile(cfg, []byte(c.kubeletConfig()), 0o644); err != nil {
		return err
	}
	script, err := c.sysctlShield()
	if err != nil {
		return err
	}
	argv := c.inNodeArgv("unshare", "--mount", "--propagation", "unchanged", "--",
		"sh", "-ec", script, "kubelet", bin,
		"--config", cfg,
		"--kubeconfig", c.kubeconfig(kubeletID),
		"--root-dir", root,
		"--cert-dir", c.kubeletDir("pki"),
		"--hostname-override", NodeName,
		"--node-ip", nodeAddr,
		"--v=1")
	_, err = c.start("kubelet", argv, nil)
	return err
}

// sysctlShield returns a shell script (run as the kubelet's parent in its
// new mount namespace) that binds a copy of each tunable over the real one,
// then runs the kubelet. /proc is made private first, so on a host whose
// mounts are shared the binds still stay in the kubelet's namespace.
func (c *Cluster) sysctlShield() (string, error) {
	var b strings.Builder
	b.WriteString("mount --make-rprivate /proc\n")
	for _, s := range kubeletSysctls {
		real := "/proc/sys/" + s
		v, err := os.ReadFile(real)
		if err != nil {
			continue // not on this kernel
		}
		fake := c.kubeletDir("sysctl", strings.ReplaceAll(s, "/", "."))
		if err := os.WriteFile(fake, v, 0o644); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "mount --bind %s %s\n", fake, real)
	}
	b.WriteString("exec \"$@\"\n")
	return b.String(), nil
}
