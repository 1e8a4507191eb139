// Package node runs a real single-node Kubernetes cluster on this machine
// for tests and the demo: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy and CoreDNS built from Go modules at
// the versions package toolchain pins, with Debian's containerd, runc and
// CNI plugins. The node lives in a network namespace of its own; every file
// is under one directory; and everything it changed on the machine is
// recorded, so that Stop, or a janitor process when the test process dies,
// or the next Start, puts the machine back as it was.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Options configure Start.
type Options struct {
	// Sandbox is the pause image every pod's sandbox runs, imported from its
	// archive before the kubelet starts.
	Sandbox Image
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Image is an image archive and the reference it holds.
type Image struct{ Ref, Archive string }

// Cluster is a running node and its control plane.
type Cluster struct {
	// Dir holds every file of the cluster.
	Dir string
	// Server is the API server's URL, reachable from the host and the node.
	Server string
	// Config, Client and Clientset act as a cluster administrator.
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface

	opts    Options
	st      *state
	pki     *pki
	procs   []*proc
	netns   string
	etcdURL string
	lock    *os.File // the machine's node lock, held while the node exists
	janitor *os.File // write end of the pipe the janitor waits on
	// before is the machine as the node found it, read under the lock.
	before Machine
}

const cgroupRoot = "blinkchamber-node"

// Start builds (or reuses) the binaries and starts a cluster with one Ready
// node. It fails with a clear error on a machine that cannot run a node.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if opts.Sandbox.Ref == "" || opts.Sandbox.Archive == "" {
		return nil, errors.New("node: Options.Sandbox names no pause image")
	}
	bins, err := ensureTools(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts}
	if err := c.claim(); err != nil {
		return nil, err
	}
	if err := c.boot(ctx, bins); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) step(format string, args ...any) {
	if c.opts.Progress != nil {
		fmt.Fprintf(c.opts.Progress, "node: "+format+"\n", args...)
	}
}

// claim takes the machine's node lock, cleans up after an earlier run that
// died with its janitor, and records the new node's directory.
func (c *Cluster) claim() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("the node's run directory: %w", err)
	}
	var err error
	if c.lock, err = toolchain.LockFile(LockPath()); err != nil {
		return err
	}
	if err := c.prepare(); err != nil {
		toolchain.UnlockFile(c.lock)
		return err
	}
	return nil
}

// RunDir holds the machine's node lock, the state of the node that holds
// it and its janitor's log. The kubelet and containerd use fixed paths
// (/run/containerd, /var/lib/kubelet/device-plugins), so only one node can
// run on a machine at a time, whichever tools cache it was built from: the
// lock is a machine path, not a cache path. It is under /run because what
// it guards (processes, mounts, namespaces) does not outlive a reboot.
const RunDir = "/run/blinkchamber-node"

// LockPath is the machine's node lock, held while a node exists, by its
// janitor too.
func LockPath() string { return filepath.Join(RunDir, "node.lock") }

// StatePath records the running node, for the cleanup after a run that
// died with its janitor.
func StatePath() string { return filepath.Join(RunDir, "node-state.json") }

func (c *Cluster) prepare() error {
	statePath := StatePath()
	if old, err := loadState(statePath); err == nil {
		c.step("cleaning up after an earlier node that was not stopped (%s)", old.Dir)
		if err := teardown(old, c.step); err != nil {
			return fmt.Errorf("cleaning up the earlier node: %w", err)
		}
	}
	var err error
	if c.before, err = Snapshot(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return err
	}
	c.Dir = dir
	c.st = &state{path: statePath, Dir: dir}
	if err := c.st.recordFixedPaths(); err != nil {
		return err
	}
	return c.startJanitor(filepath.Join(RunDir, "janitor.log"))
}

type binaries struct{ etcd, apiserver, kcm, scheduler, kubelet, proxy, dns string }

func ensureTools(ctx context.Context, progress io.Writer) (binaries, error) {
	var b binaries
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return b, err
	}
	for _, t := range []struct {
		tool toolchain.Tool
		dst  *string
	}{
		{toolchain.Etcd, &b.etcd}, {toolchain.KubeAPIServer, &b.apiserver},
		{toolchain.KubeControllerManager, &b.kcm}, {toolchain.KubeScheduler, &b.scheduler},
		{toolchain.Kubelet, &b.kubelet}, {toolchain.KubeProxy, &b.proxy}, {toolchain.CoreDNS, &b.dns},
	} {
		if *t.dst, err = t.tool.Ensure(ctx, repo, progress); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (c *Cluster) boot(ctx context.Context, bins binaries) error {
	var err error
	if c.pki, err = newPKI(filepath.Join(c.Dir, "pki")); err != nil {
		return err
	}
	c.step("cgroups and network namespace")
	if err := c.makeCgroups(cgroupRoot); err != nil {
		return err
	}
	if err := c.startNetwork(); err != nil {
		return err
	}
	c.step("etcd and kube-apiserver")
	if err := c.startEtcd(bins.etcd); err != nil {
		return err
	}
	if err := c.startAPIServer(bins.apiserver); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	if err := c.waitAPI(ctx); err != nil {
		return err
	}
	c.step("kube-controller-manager and kube-scheduler")
	if err := c.startControllerManager(bins.kcm); err != nil {
		return err
	}
	if err := c.startScheduler(bins.scheduler); err != nil {
		return err
	}
	c.step("containerd")
	if err := c.startContainerd(ctx); err != nil {
		return err
	}
	if err := c.ImportImage(ctx, c.opts.Sandbox.Archive); err != nil {
		return fmt.Errorf("importing the pause image: %w", err)
	}
	c.step("kube-proxy and CoreDNS")
	if err := c.startKubeProxy(bins.proxy); err != nil {
		return err
	}
	if err := c.startDNS(ctx, bins.dns); err != nil {
		return err
	}
	c.step("kubelet")
	if err := c.startKubelet(ctx, bins.kubelet); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// connect builds the administrator's clients from its kubeconfig.
func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return err
	}
	c.Config = cfg
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	c.Client, err = client.New(cfg, client.Options{})
	return err
}

// Kubeconfig is the administrator's kubeconfig, for kubectl, helm and the
// blinkchamber CLI.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig(adminID) }

// waitReady waits for the node to be Ready and for the controllers to have
// made what every namespace's pods need (the default ServiceAccount and
// the kube-root-ca.crt ConfigMap).
func (c *Cluster) waitReady(ctx context.Context) error {
	err := c.poll(ctx, "the node to be Ready", func(ctx context.Context) (bool, error) {
		n, err := c.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	return c.poll(ctx, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := c.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		_, err = c.Clientset.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
}

// poll calls fn every 200 ms until it reports done, fails, a part of the
// node exits, or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, fn func(context.Context) (bool, error)) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		done, err := fn(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		for _, p := range c.procs {
			if !p.running() {
				return fmt.Errorf("waiting for %s: %w", what, p.failure())
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// ErrMachineChanged means the machine was not as the node found it after
// the node stopped.
var ErrMachineChanged = errors.New("the node left the machine changed")

// Stop tears the cluster down and checks that the machine is as the node
// found it (ErrMachineChanged, with what differs, if not). It is safe to
// call more than once.
func (c *Cluster) Stop() error {
	if c.st == nil {
		return nil
	}
	c.step("stopping")
	err := teardown(c.st, c.step)
	c.st = nil
	if c.janitor != nil {
		c.janitor.Close() // the janitor finds no state and exits
	}
	// Still under the lock: no other node can have started meanwhile.
	after, serr := Snapshot()
	if serr != nil {
		err = errors.Join(err, serr)
	} else if d := c.before.Diff(after); d != "" {
		err = errors.Join(err, fmt.Errorf("%w:\n%s", ErrMachineChanged, d))
	}
	toolchain.UnlockFile(c.lock)
	return err
}

// Preflight says why this machine cannot run a node, or nil.
func Preflight() error {
	var problems []error
	if os.Geteuid() != 0 {
		problems = append(problems, errors.New("it must run as root (it mounts, creates cgroups and network namespaces)"))
	}
	if !isCgroupMount("/sys/fs/cgroup") && !isCgroupMount("/sys/fs/cgroup/memory") {
		problems = append(problems, errors.New("no cgroup hierarchy is mounted at /sys/fs/cgroup"))
	}
	for _, bin := range []string{containerdBin, ctrBin, runcBin, filepath.Join(cniBinDir, "ptp"), filepath.Join(cniBinDir, "host-local"), filepath.Join(cniBinDir, "loopback")} {
		if _, err := os.Stat(bin); err != nil {
			problems = append(problems, fmt.Errorf("%s is missing (run `make deps`)", bin))
		}
	}
	for _, cmd := range []string{"nsenter", "unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			problems = append(problems, fmt.Errorf("%s is not on PATH (run `make deps`)", cmd))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("this machine cannot run the local node: %w", err)
	}
	return nil
}

// Processes lists the node's running parts by name (etcd, kube-apiserver,
// kubelet, containerd, ...) with their pids, for measurements.
func (c *Cluster) Processes() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs {
		if p.running() {
			out[p.name] = p.cmd.Process.Pid
		}
	}
	return out
}

// PodsMemory is the memory charged to the node's pods (the kubelet's
// kubepods cgroup, v1 memory hierarchy): resident anonymous memory plus
// page cache, in bytes; 0 where it cannot be read.
func (c *Cluster) PodsMemory() int64 {
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", cgroupRoot, "kubepods", "memory.usage_in_bytes"))
	if err != nil {
		return 0
	}
	var n int64
	_, _ = fmt.Sscan(string(b), &n)
	return n
}
