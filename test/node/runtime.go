package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The runtime parts come from Debian's packages (hack/system-deps.sh).
const (
	containerdBin = "/usr/bin/containerd"
	ctrBin        = "/usr/bin/ctr"
	runcBin       = "/usr/sbin/runc"
	cniBinDir     = "/usr/lib/cni"
)

func (c *Cluster) containerdDir(p ...string) string {
	return filepath.Join(append([]string{c.Dir, "containerd"}, p...)...)
}

// Socket is containerd's CRI and API socket.
func (c *Cluster) Socket() string { return c.containerdDir("containerd.sock") }

// containerdConfig is containerd 1.6's configuration. Everything it keeps is
// under the node's directory; restrict_oom_score_adj is required where root
// lacks CAP_SYS_RESOURCE (runc fails every sandbox otherwise), and the opt
// plugin, which would create /opt/containerd, is off.
func (c *Cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, c.containerdDir("root"), c.containerdDir("state"), c.Socket(), c.containerdDir("ttrpc.sock"),
		c.opts.Sandbox.Ref, runcBin, cniBinDir, c.cniDir("net.d"), c.containerdDir("certs.d"))
}

func (c *Cluster) cniDir(p ...string) string {
	return filepath.Join(append([]string{c.Dir, "cni"}, p...)...)
}

// cniConfig gives each pod a veth pair into the node's namespace with a /32
// route (ptp): traffic between pods and to services is routed by the node,
// through kube-proxy's rules, with no bridge and no br_netfilter needed.
func (c *Cluster) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "blinkchamber",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, podCIDR, c.cniDir("ipam"))
}

// startContainerd runs containerd in the node's network namespace (so the
// CNI plugins it runs put pod links there) and in the host's mount
// namespace (so it sees the volumes the kubelet mounts).
func (c *Cluster) startContainerd(ctx context.Context) error {
	if err := mkdirs(c.containerdDir("certs.d"), c.cniDir("net.d"), c.cniDir("ipam")); err != nil {
		return err
	}
	cfg := c.containerdDir("config.toml")
	if err := os.WriteFile(cfg, []byte(c.containerdConfig()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.cniDir("net.d", "10-blinkchamber.conflist"), []byte(c.cniConfig()), 0o644); err != nil {
		return err
	}
	p, err := c.start("containerd", c.inNodeArgv(containerdBin, "--config", cfg), nil)
	if err != nil {
		return err
	}
	return c.poll(ctx, "containerd to serve", func(ctx context.Context) (bool, error) {
		if !p.running() {
			return false, p.failure()
		}
		return c.ctr(ctx, "version") == nil, nil
	})
}

// ctr runs containerd's own client against the node's containerd, in the
// namespace the CRI plugin uses.
func (c *Cluster) ctr(ctx context.Context, args ...string) error {
	argv := append([]string{"--address", c.Socket(), "--namespace", "k8s.io"}, args...)
	out, err := exec.CommandContext(ctx, ctrBin, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ImportImage loads an image archive (docker-archive or OCI layout tar) into
// the node's containerd, as `ctr images import` does, for images that are
// not pulled from a registry (the pause image: there is no registry.k8s.io
// to pull it from).
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return c.ctr(ctx, "images", "import", archive)
}

// TrustRegistry lets containerd pull from a plain-HTTP registry at host
// (HOST:PORT), as an air-gapped mirror on the local network would be
// configured (hosts.toml in containerd's certs.d).
func (c *Cluster) TrustRegistry(host string) error {
	d := c.containerdDir("certs.d", host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	toml := fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, host)
	return os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644)
}
