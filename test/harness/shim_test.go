package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

const (
	agentImage = "ghcr.io/blinkchamber/agent:shim-test"
	appImage   = "example/app:1.0"
	appUID     = 4242
	appGID     = 4343
	tmpfsMagic = 0x01021994
)

// TestShim runs pods shaped by the real injector (mutate.Mutate) through the
// shim with a small real program standing in for the agent's image.
func TestShim(t *testing.T) {
	k := KubeForTest(t)
	fake := buildFakeAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := k.Namespace(ctx, "shim", false, "app"); err != nil {
		t.Fatal(err)
	}
	binaries := map[string]string{agentImage: fake, appImage: fake}

	t.Run("native sidecar renders before the app starts", func(t *testing.T) {
		pod := createInjectedPod(t, ctx, k, "native", mutate.ModeNative, nil)
		var all syncBuffer // every container's lines, in the order written
		began := time.Now()
		run := k.RunPodForTest(t, "shim", pod.Name, ShimOptions{
			Binaries: binaries, Stdout: io.MultiWriter(lineLog{t}, &all),
			ExtraEnv: []string{"FAKEAGENT_READY_AFTER=1500ms", "FAKEAGENT_APP_STAY=1"},
		})
		if took := time.Since(began); took < 1500*time.Millisecond {
			t.Errorf("RunPod returned after %s, before the startup probe could pass", took)
		}
		agentProc, app := run.Container(mutate.AgentContainer), run.Container("app")
		if agentProc == nil || app == nil {
			t.Fatalf("containers run: agent=%v app=%v", agentProc != nil, app != nil)
		}
		waitOutput(t, app, "secrets mount:")
		assertContains(t, "app", app.Output(), "app uid=4242", "app read: rendered by uid 4242", "secrets mount: read-only")
		assertContains(t, "agent", agentProc.Output(),
			"uid=4242 gid=4343", "token aud=vault pod=native", "rootfs: read-only", "rendered hello")
		assertProbeGated(t, agentProc.Output())
		if !agentProc.Running() {
			t.Fatalf("native sidecar exited: %s", agentProc.Output())
		}

		assertRenderedFile(t, filepath.Join(run.VolumeDir(mutate.SecretsVolume), "hello"))
		assertTmpfs(t, run.VolumeDir(mutate.SecretsVolume), 16<<20)
		assertPodToken(t, run, pod)
		assertHealthRewritten(t, run)

		root := run.root
		if err := run.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		for _, p := range []*Proc{app, agentProc} {
			if code := p.ExitCode(); code != 0 {
				t.Errorf("%s exit code after SIGTERM = %d, want 0: %s", p.name, code, p.Output())
			}
		}
		appDone := strings.Index(all.String(), "[app] app terminating")
		agentDone := strings.Index(all.String(), "[blinkchamber-agent] terminating on SIGTERM")
		if appDone < 0 || agentDone < 0 || agentDone < appDone {
			t.Errorf("want the app to end before the sidecar is told to:\n%s", all.String())
		}
		assertCleanedUp(t, root, fake)
	})

	t.Run("plain init container completes before the app starts", func(t *testing.T) {
		pod := createInjectedPod(t, ctx, k, "init-only", mutate.ModeInitOnly, nil)
		run := k.RunPodForTest(t, "shim", pod.Name, ShimOptions{Binaries: binaries, Stdout: lineLog{t}})
		initProc := run.Container(mutate.InitContainer)
		if initProc == nil || initProc.Running() || initProc.ExitCode() != 0 {
			t.Fatalf("init container did not complete before RunPod returned: %+v", initProc)
		}
		app := run.Container("app")
		if err := app.Wait(); err != nil {
			t.Fatalf("app: %v\n%s", err, app.Output())
		}
		assertContains(t, "app", app.Output(), "app read: rendered by uid 4242")
	})

	t.Run("failing init container stops the pod with its output", func(t *testing.T) {
		pod := createInjectedPod(t, ctx, k, "init-fails", mutate.ModeInitOnly, nil)
		var out bytes.Buffer
		run, err := k.RunPod(ctx, "shim", pod.Name, ShimOptions{
			Binaries: binaries, Stdout: &out, ExtraEnv: []string{"FAKEAGENT_FAIL=permission denied on secret/data/x"},
		})
		if err == nil {
			run.Stop()
			t.Fatal("RunPod succeeded although the init container exited 3")
		}
		var ce *ContainerError
		if !errors.As(err, &ce) {
			t.Fatalf("error %T %v is not a *ContainerError", err, err)
		}
		if ce.Container != mutate.InitContainer || ce.ExitCode != 3 || !strings.Contains(ce.Output, "render failed: permission denied") {
			t.Errorf("ContainerError = %+v", ce)
		}
		if strings.Contains(out.String(), "[app]") {
			t.Errorf("the app started after a failed init container:\n%s", out.String())
		}
		assertNoProcess(t, filepath.Base(binaries[agentImage]))
	})

	t.Run("startup probe that never passes stops the pod", func(t *testing.T) {
		pod := createInjectedPod(t, ctx, k, "never-ready", mutate.ModeNative, func(p *corev1.Pod) {
			p.Spec.InitContainers[0].StartupProbe.FailureThreshold = 2
		})
		var out bytes.Buffer
		run, err := k.RunPod(ctx, "shim", pod.Name, ShimOptions{
			Binaries: binaries, Stdout: &out, ExtraEnv: []string{"FAKEAGENT_READY_AFTER=never"},
		})
		if err == nil {
			run.Stop()
			t.Fatal("RunPod succeeded although the startup probe never passed")
		}
		var ce *ContainerError
		if !errors.As(err, &ce) || ce.Container != mutate.AgentContainer || !strings.Contains(ce.Reason, "startup probe failed 2 times") {
			t.Fatalf("error = %v", err)
		}
		if strings.Contains(out.String(), "[app]") {
			t.Errorf("the app started before the agent was ready:\n%s", out.String())
		}
		assertNoProcess(t, filepath.Base(binaries[agentImage]))
	})
}

// createInjectedPod creates a pod as the injector would have admitted it:
// the app pod below, mutated by mutate.Mutate in the given mode.
func createInjectedPod(t *testing.T, ctx context.Context, k *Kube, name string, mode mutate.Mode, edit func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shim", Annotations: map[string]string{
			mutate.AnnotationInject: "true", mutate.AnnotationMode: string(mode),
			mutate.PrefixSecret + "db": "secret/data/shim/app/db",
		}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers: []corev1.Container{{
				Name: "app", Image: appImage,
				Command:         []string{"/app"},
				Args:            []string{"app", mutate.SecretsPath + "/hello"},
				SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(appUID)), RunAsGroup: ptr.To(int64(appGID))},
			}},
		},
	}
	opts := mutate.DefaultOptions()
	opts.AgentImage, opts.VaultAddr = agentImage, "http://127.0.0.1:8200"
	if _, err := mutate.Mutate(pod, opts); err != nil {
		t.Fatalf("mutating: %v", err)
	}
	if edit != nil {
		edit(pod)
	}
	created, err := k.Clientset.CoreV1().Pods("shim").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	return created
}

// buildFakeAgent builds testdata/fakeagent, the stand-in for the agent's
// image.
func buildFakeAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakeagent")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/fakeagent").CombinedOutput()
	if err != nil {
		t.Fatalf("building fakeagent: %v\n%s", err, out)
	}
	return bin
}

// waitOutput waits until a running container has printed want.
func waitOutput(t *testing.T, p *Proc, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Output(), want); {
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("%s never printed %q:\n%s", p.name, want, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertContains(t *testing.T, who, output string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(output, w) {
			t.Errorf("%s output lacks %q:\n%s", who, w, output)
		}
	}
}

// assertProbeGated checks that the startup probe was refused at least once
// before it passed: the shim really waited on it.
func assertProbeGated(t *testing.T, agentOutput string) {
	t.Helper()
	refused, passed := strings.Index(agentOutput, "startupz 503"), strings.Index(agentOutput, "startupz 200")
	if refused < 0 || passed < 0 || refused > passed {
		t.Errorf("want a refused startup probe before a passing one:\n%s", agentOutput)
	}
}

func assertRenderedFile(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("rendered file: %v", err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != appUID || sys.Gid != appGID || st.Mode().Perm() != 0o400 {
		t.Errorf("rendered file %d:%d %v, want %d:%d -r--------", sys.Uid, sys.Gid, st.Mode().Perm(), appUID, appGID)
	}
}

func assertTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != tmpfsMagic {
		t.Errorf("%s is on filesystem type %#x, want tmpfs", dir, fs.Type)
	}
	if got := int64(fs.Blocks) * fs.Bsize; got != size {
		t.Errorf("tmpfs size = %d, want the volume's sizeLimit %d", got, size)
	}
}

// assertPodToken checks the projected token as the kubelet would write it:
// a JWT for audience vault bound to this pod, owned by the uid all
// containers share (the kubelet's FsUser rule) with mode 0600.
func assertPodToken(t *testing.T, run *PodRun, pod *corev1.Pod) {
	t.Helper()
	path := filepath.Join(run.VolumeDir(mutate.TokenVolume), mutate.TokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtClaims(t, string(b))
	if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "vault" {
		t.Errorf("token aud = %v, want [vault]", claims["aud"])
	}
	k8s, _ := claims["kubernetes.io"].(map[string]any)
	bound, _ := k8s["pod"].(map[string]any)
	if bound["name"] != pod.Name || bound["uid"] != string(pod.UID) {
		t.Errorf("token bound to %v, want pod %s/%s", bound, pod.Name, pod.UID)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != float64(mutate.TokenExpiration) {
		t.Errorf("token lifetime %v s, want %d", exp-iat, mutate.TokenExpiration)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != appUID || st.Mode().Perm() != 0o600 {
		t.Errorf("token file uid %d mode %v, want %d -rw-------", uid, st.Mode().Perm(), appUID)
	}
	if target, err := os.Readlink(path); err != nil || target != "..data/"+mutate.TokenFile {
		t.Errorf("token path is not the kubelet's ..data symlink: %q, %v", target, err)
	}
}

func jwtClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(jwt), ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// assertHealthRewritten checks that the agent listens on the pod's own
// health port, not on the injected 8099.
func assertHealthRewritten(t *testing.T, run *PodRun) {
	t.Helper()
	if run.HealthAddr() == "127.0.0.1:8099" || !strings.HasPrefix(run.HealthAddr(), "127.0.0.1:") {
		t.Errorf("HealthAddr() = %q", run.HealthAddr())
	}
	resp, err := http.Get("http://" + run.HealthAddr() + "/startupz")
	if err != nil {
		t.Fatalf("agent health at %s: %v", run.HealthAddr(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/startupz = %d", resp.StatusCode)
	}
}

// assertCleanedUp checks that nothing of the pod is left: no process of
// the image, no mount, no directory.
func assertCleanedUp(t *testing.T, root, bin string) {
	t.Helper()
	assertNoProcess(t, filepath.Base(bin))
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mountinfo), root) {
		t.Errorf("mounts under %s remain:\n%s", root, mountinfo)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir %s remains: %v", root, err)
	}
}

// assertNoProcess fails if a live process runs an executable named name.
func assertNoProcess(t *testing.T, name string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue // not a process, or gone
		}
		if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == name {
			pid, _ := strconv.Atoi(e.Name())
			if st, err := readProcState(pid); err == nil && st != "Z" {
				t.Errorf("process %s (%s) still running", e.Name(), exe)
			}
		}
	}
}

func TestTokenFileOwnership(t *testing.T) {
	uid := func(u int64) *corev1.SecurityContext { return &corev1.SecurityContext{RunAsUser: &u} }
	pod := func(psc *corev1.PodSecurityContext, scs ...*corev1.SecurityContext) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: psc}}
		p.Spec.InitContainers = []corev1.Container{{Name: "agent", SecurityContext: scs[0]}}
		for _, sc := range scs[1:] {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", SecurityContext: sc})
		}
		return p
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		mode os.FileMode
		uid  int
	}{
		{"containers share a uid", pod(nil, uid(4242), uid(4242)), 0o600, 4242},
		{"pod-level uid", pod(&corev1.PodSecurityContext{RunAsUser: ptr.To(int64(7))}, nil, nil), 0o600, 7},
		{"uids differ: defaultMode, root-owned", pod(nil, uid(4242), uid(1000)), 0o440, 0},
		{"app has no uid: defaultMode, root-owned", pod(nil, uid(65532), nil), 0o440, 0},
		{"fsGroup: 0600 root-owned, before the group is applied", pod(&corev1.PodSecurityContext{FSGroup: ptr.To(int64(2000))}, uid(1), uid(2)), 0o600, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mode, uid := tokenFileOwnership(tc.pod, ptr.To(int32(0o440)))
			if mode != tc.mode || uid != tc.uid {
				t.Errorf("got %v uid %d, want %v uid %d", mode, uid, tc.mode, tc.uid)
			}
		})
	}
}

// TestApplyFSGroup checks the kubelet's fsGroup rule on a projected
// (read-only) volume: a 0600 token becomes 0640 owned by the group, and
// directories get the setgid bit.
func TestApplyFSGroup(t *testing.T) {
	dir := t.TempDir()
	if err := writeAtomicLayout(dir, map[string]projectedFile{"token": {data: []byte("x"), mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if err := applyFSGroup(dir, 2000, true); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if gid := st.Sys().(*syscall.Stat_t).Gid; gid != 2000 || st.Mode().Perm() != 0o640 {
		t.Errorf("token gid %d mode %v, want 2000 -rw-r-----", gid, st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode()&os.ModeSetgid == 0 || dst.Sys().(*syscall.Stat_t).Gid != 2000 {
		t.Errorf("volume dir mode %v gid %d, want setgid and gid 2000", dst.Mode(), dst.Sys().(*syscall.Stat_t).Gid)
	}
}

func TestRewriteHealthAddr(t *testing.T) {
	in := `{"mode":"native","healthAddr":"127.0.0.1:8099","renderInterval":"5s","secrets":[{"name":"db","perms":"0400"}],"n":12345678901234567890}`
	out, err := rewriteHealthAddr(in, "127.0.0.1:40001")
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	if err := json.Unmarshal([]byte(in), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &after); err != nil {
		t.Fatal(err)
	}
	if after["healthAddr"] != "127.0.0.1:40001" {
		t.Errorf("healthAddr = %v", after["healthAddr"])
	}
	before["healthAddr"] = after["healthAddr"]
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if !bytes.Equal(b1, b2) {
		t.Errorf("other fields changed:\n%s\n%s", b1, b2)
	}
	if !strings.Contains(out, "12345678901234567890") {
		t.Errorf("a large number lost precision: %s", out)
	}
	if _, err := rewriteHealthAddr("not json", "x"); err == nil {
		t.Error("invalid JSON accepted")
	}
}

// lineLog logs each line a container writes (the shim writes whole lines)
// without the trailing newline t.Log would double.
type lineLog struct{ t testing.TB }

func (l lineLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
