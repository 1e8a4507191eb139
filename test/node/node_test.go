package node

import (
	"bufio"
	"context"
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

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// sandbox is the pause image for these tests; set by TestMain.
var sandbox = Image{Ref: "blinkchamber.local/pause:3.10", Archive: os.Getenv("BLINKCHAMBER_PAUSE_ARCHIVE")}

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
	before, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
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
	err = c.poll(ctx, "the pod to run", func(ctx context.Context) (bool, error) {
		p, err := c.Clientset.CoreV1().Pods("default").Get(ctx, "probe", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatal(err, "\n", tail(filepath.Join(c.Dir, "logs", "kubelet.log"), 4000), "\n", tail(filepath.Join(c.Dir, "logs", "containerd.log"), 3000))
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	after, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(after); d != "" {
		t.Fatalf("the machine changed:\n%s", d)
	}
}

// TestJanitorCleansUpAfterKilledProcess starts a node in a child process,
// kills that process with SIGKILL (no cleanup code can run), and checks
// that the janitor puts the machine back.
func TestJanitorCleansUpAfterKilledProcess(t *testing.T) {
	if os.Getenv("BLINKCHAMBER_NODE_CHILD") != "" {
		c := startForTest(t)
		_ = c
		os.Stdout.WriteString("NODE READY\n")
		time.Sleep(time.Hour)
		return
	}
	before, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run", "^TestJanitorCleansUpAfterKilledProcess$", "-test.v")
	child.Env = append(os.Environ(), "BLINKCHAMBER_NODE_CHILD=1")
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
	cache, err := toolchain.CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := os.Stat(filepath.Join(cache, "node-state.json"))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the janitor did not finish in 2 minutes:\n%s", tail(filepath.Join(cache, "node-janitor.log"), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	after, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(after); d != "" {
		t.Fatalf("the machine changed:\n%s", d)
	}
}

func TestMain(m *testing.M) {
	crlog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
