package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/images"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// sandbox is the pause image for these tests; set by TestMain.
var sandbox Image

func startForTest(t *testing.T) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Sandbox: sandbox, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestNodeRunsPodsAndLeavesNoTrace starts the node, runs a pod on it,
// stops the node and checks that the machine is exactly as it was.
func TestNodeRunsPodsAndLeavesNoTrace(t *testing.T) {
	c := startForTest(t)
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: sandbox.Ref, ImagePullPolicy: corev1.PullNever}},
		},
	}
	if _, err := c.Clientset.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := c.poll(ctx, "the pod to run", func(ctx context.Context) (bool, error) {
		p, err := c.Clientset.CoreV1().Pods("default").Get(ctx, "probe", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatal(err, "\n", tail(filepath.Join(c.Dir, "logs", "kubelet.log"), 4000), "\n", tail(filepath.Join(c.Dir, "logs", "containerd.log"), 3000))
	}
	// Stop compares the machine with what the node found (ErrMachineChanged).
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestJanitorCleansUpAfterKilledProcess starts a node in a child process,
// kills that process with SIGKILL (no cleanup code can run), and checks
// that the janitor puts the machine back.
func TestJanitorCleansUpAfterKilledProcess(t *testing.T) {
	if path := os.Getenv("BLINKCHAMBER_NODE_CHILD"); path != "" {
		c := startForTest(t)
		b, err := json.Marshal(c.before)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("NODE READY\n")
		time.Sleep(time.Hour)
		return
	}
	beforeFile := filepath.Join(t.TempDir(), "before.json")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run", "^TestJanitorCleansUpAfterKilledProcess$", "-test.v")
	child.Env = append(os.Environ(), "BLINKCHAMBER_NODE_CHILD="+beforeFile)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "NODE READY" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = child.Wait()
			t.Fatal("the child process ended before its node was ready")
		}
	case <-time.After(10 * time.Minute):
		_ = child.Process.Kill()
		t.Fatal("the child's node was not ready in 10 minutes")
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	// The janitor holds the node lock until it is done.
	lock, err := toolchain.LockFile(LockPath())
	if err != nil {
		t.Fatal(err)
	}
	defer toolchain.UnlockFile(lock)
	if _, err := os.Stat(StatePath()); !os.IsNotExist(err) {
		t.Fatalf("the janitor left the node's state (%v):\n%s", err, tail(filepath.Join(RunDir, "janitor.log"), 3000))
	}
	var before Machine
	b, err := os.ReadFile(beforeFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &before); err != nil {
		t.Fatal(err)
	}
	after, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(after); d != "" {
		t.Fatalf("the machine changed:\n%s", d)
	}
}

// TestMachineDiff: each kind of change a node could leave shows in Diff.
func TestMachineDiff(t *testing.T) {
	base := Machine{Mounts: []string{"/ ext4 /dev/vda"}, Cgroups: []string{"/sys/fs/cgroup/cpu/"}, Links: []string{"lo"},
		Routes: []string{"default via 192.0.2.1"}, Sysctls: []string{"net/ipv4/ip_forward=0"}, Netfilter: "*filter",
		Paths: nil, Processes: nil}
	for _, tc := range []struct {
		name   string
		change func(m *Machine)
		want   string
	}{
		{"unchanged", func(*Machine) {}, ""},
		{"mount left", func(m *Machine) { m.Mounts = append(m.Mounts, "/tmp/x tmpfs tmpfs") }, "new mount: /tmp/x tmpfs tmpfs\n"},
		{"cgroup left", func(m *Machine) { m.Cgroups = append(m.Cgroups, "/sys/fs/cgroup/cpu/blinkchamber-node/") }, "new cgroup: /sys/fs/cgroup/cpu/blinkchamber-node/\n"},
		{"link left", func(m *Machine) { m.Links = append(m.Links, "bcnode0") }, "new link: bcnode0\n"},
		{"route gone", func(m *Machine) { m.Routes = nil }, "missing route: default via 192.0.2.1\n"},
		{"sysctl changed", func(m *Machine) { m.Sysctls = []string{"net/ipv4/ip_forward=1"} }, "new sysctl: net/ipv4/ip_forward=1\nmissing sysctl: net/ipv4/ip_forward=0\n"},
		{"rule added", func(m *Machine) { m.Netfilter += "\n-A KUBE-SERVICES" }, "new netfilter rule: -A KUBE-SERVICES\n"},
		{"path left", func(m *Machine) { m.Paths = []string{"/run/containerd"} }, "new path: /run/containerd\n"},
		{"process left", func(m *Machine) { m.Processes = []string{"42 /usr/bin/containerd"} }, "new process: 42 /usr/bin/containerd\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := base
			after.Mounts = append([]string(nil), base.Mounts...)
			tc.change(&after)
			if got := base.Diff(after); got != tc.want {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMain(m *testing.M) {
	crlog.SetLogger(logr.Discard())
	dir, err := images.DefaultDir()
	if err == nil {
		var set *images.Set
		if set, err = images.Build(context.Background(), images.Options{Dir: dir, Progress: os.Stderr}); err == nil {
			p := set.Images[images.Pause]
			sandbox = Image{Ref: p.Ref, Archive: p.Archive}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the pause image:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
