package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Images the rotation tests map to local programs.
const (
	counterImage = "example/counter:e2e"
	cliImage     = "ghcr.io/blinkchamber/blinkchamber:e2e"
	// counterName is the counter's program name, which the agent looks for.
	counterName = "bc-counter"
	rotationUID = int64(4242)
)

// rotationBins are the counter app and the blinkchamber CLI, built once,
// in a directory every container user may enter (the exec test runs the
// counter by its host path from inside the CLI's container). Call agentEnv
// first.
var rotationBins struct {
	once         sync.Once
	dir, counter string
	cli          string
	err          error
}

func buildRotationBins(t *testing.T) (counter, cli string) {
	t.Helper()
	rotationBins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		b := &rotationBins
		// Under the agent environment's directory, which stopAgentEnv
		// removes; it and this one must be enterable by the container user.
		b.dir = filepath.Join(shared.dir, "rotation")
		if b.err = os.Chmod(shared.dir, 0o711); b.err != nil {
			return
		}
		if b.err = os.Mkdir(b.dir, 0o755); b.err != nil {
			return
		}
		b.counter, b.cli = filepath.Join(b.dir, counterName), filepath.Join(b.dir, "blinkchamber")
		if b.err = goBuild(ctx, "./test/e2e/testdata/counter", b.counter); b.err != nil {
			return
		}
		b.err = goBuild(ctx, "./cmd/blinkchamber", b.cli)
	})
	if rotationBins.err != nil {
		t.Fatalf("building the rotation test programs: %v", rotationBins.err)
	}
	return rotationBins.counter, rotationBins.cli
}

func goBuild(ctx context.Context, pkg, out string) error {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// rotationPod is a pod of one app container running as rotationUID.
func rotationPod(ns, name, sa string, ann map[string]string, app corev1.Container) *corev1.Pod {
	app.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(rotationUID), RunAsGroup: ptr.To(rotationUID)}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{app}},
	}
}

// waitOutput waits until the container's output matches re and returns
// the match.
func waitOutput(t *testing.T, p *harness.Proc, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		m = rx.FindStringSubmatch(p.Output())
		return m != nil, nil
	})
	if err != nil {
		t.Fatalf("output never matched %q:\n%s", re, p.Output())
	}
	return m
}

// metric reads one sample of the agent's /metrics.
func metric(t *testing.T, run *harness.PodRun, sample string) string {
	t.Helper()
	_, body := get(t, run.HealthAddr(), "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestRotationActions runs one pod whose agent, after each secret changes,
// signals the app by name (shared process namespace), runs a command
// (pkill, another way to signal it), or POSTs to its reload URL; the app
// counts what it receives. Each rotation must reach the app exactly once,
// through its own secret's action only.
func TestRotationActions(t *testing.T) {
	e := agentEnv(t)
	counter, _ := buildRotationBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	values := map[string]string{"sig": "sig-v1-secret", "cmd": "cmd-v1-secret", "hook": "hook-v1-secret", "lost": "lost-v1-secret"}
	secrets := map[string]map[string]any{}
	for n, v := range values {
		secrets[n] = map[string]any{"value": v}
	}
	e.app(t, ctx, "rotate", "web", secrets)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{mutate.AnnotationInject: "true", mutate.AnnotationRenderInterval: "1s",
		mutate.PrefixSignal + "sig":     "SIGHUP:" + counterName,
		mutate.PrefixCommand + "cmd":    `["/usr/bin/pkill","-USR1","-x","` + counterName + `"]`,
		mutate.PrefixReloadURL + "hook": fmt.Sprintf("http://127.0.0.1:%d/-/reload", port),
		mutate.PrefixSignal + "lost":    "SIGHUP:no-such-app",
	}
	for n := range values {
		ann[mutate.PrefixSecret+n] = "secret/data/rotate/web/" + n
	}
	pod := rotationPod("rotate", "web", "web", ann, corev1.Container{Name: "app", Image: counterImage,
		Args: []string{"-listen", fmt.Sprintf("127.0.0.1:%d", port)}})
	if err := kube.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if sp := pod.Spec.ShareProcessNamespace; sp == nil || !*sp {
		t.Fatal("the injector did not turn on shareProcessNamespace for a signal-<name> annotation")
	}
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "rotate", "web", harness.ShimOptions{
		Binaries: map[string]string{agentImage: e.agentBin, counterImage: counter}, Stdout: out})
	app := run.Container("app")

	t.Run("the app and the agent share one PID namespace", func(t *testing.T) {
		m := waitOutput(t, app, `started pid=(\d+) pid1=(\S+) sees=(\S+) agent-environ=(\S+)`)
		if m[1] == "1" || m[2] != "sleep" {
			t.Errorf("app pid %s, pid 1 %q: want the pause process as PID 1", m[1], m[2])
		}
		if !strings.Contains(m[3], "blinkchamber-ag") || len(strings.Split(m[3], ",")) > 6 {
			t.Errorf("the app sees %s: want the pause process, the agent and itself only", m[3])
		}
		// Same uid, shared namespace: only the agent's non-dumpable mark
		// keeps the app out of its environment and memory.
		if m[4] != "denied" {
			t.Errorf("the app's access to the agent's /proc/<pid>/environ is %q, want denied", m[4])
		}
	})

	rotate := func(name, v string) {
		t.Helper()
		e.put(t, ctx, "rotate/web/"+name, map[string]any{"value": v})
		waitFile(t, filepath.Join(run.VolumeDir(mutate.SecretsVolume), name), "value: "+v+"\n", 10*time.Second)
	}
	t.Run("signal by name", func(t *testing.T) {
		rotate("sig", "sig-v2-secret")
		waitOutput(t, app, `signal SIGHUP count=1\n`)
	})
	t.Run("command", func(t *testing.T) {
		rotate("cmd", "cmd-v2-secret")
		waitOutput(t, app, `signal SIGUSR1 count=1\n`)
	})
	t.Run("reload URL", func(t *testing.T) {
		rotate("hook", "hook-v2-secret")
		waitOutput(t, app, `reload count=1\n`)
	})
	t.Run("no such process is reported", func(t *testing.T) {
		rotate("lost", "lost-v2-secret")
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return metric(t, run, `blinkchamber_agent_signal_no_process_total{secret="lost"}`) == "1", nil
		})
		if err != nil {
			t.Fatalf("signal_no_process_total{secret=lost} never reached 1")
		}
		if !strings.Contains(run.Container(mutate.AgentContainer).Output(), "no process to signal") {
			t.Errorf("the agent did not log the missing process")
		}
	})
	t.Run("each rotation reached the app once, by its own action", func(t *testing.T) {
		rotate("sig", "sig-v3-secret")
		waitOutput(t, app, `signal SIGHUP count=2\n`)
		got := app.Output()
		for _, extra := range []string{"SIGHUP count=3", "SIGUSR1 count=2", "reload count=2"} {
			if strings.Contains(got, extra) {
				t.Errorf("the app got more than one notice per rotation (%s):\n%s", extra, got)
			}
		}
		if v := metric(t, run, `blinkchamber_agent_signals_sent_total{secret="sig"}`); v != "2" {
			t.Errorf("signals_sent_total{secret=sig} = %q, want 2", v)
		}
	})
	assertNoLeak(t, out.String(), "sig-v1-secret", "sig-v2-secret", "sig-v3-secret", "cmd-v2-secret", "hook-v2-secret", "lost-v2-secret")
}

// TestRotationSignalRefusedForAnotherUID: the real webhook refuses a pod
// whose agent could not signal its app, saying what to set.
func TestRotationSignalRefusedForAnotherUID(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "rotate-uid", "web", nil)
	pod := rotationPod("rotate-uid", "web", "web", map[string]string{
		mutate.AnnotationInject: "true", mutate.PrefixSecret + "tls": "secret/data/rotate-uid/web/tls",
		mutate.PrefixSignal + "tls": "SIGHUP:nginx", mutate.AnnotationRunAsUser: "5000",
	}, corev1.Container{Name: "app", Image: counterImage})
	err := kube.Client.Create(ctx, pod)
	if err == nil || !strings.Contains(err.Error(), "blinkchamber.io/signal-tls") || !strings.Contains(err.Error(), "runs as uid 5000") ||
		!strings.Contains(err.Error(), mutate.AnnotationRunAsUser) {
		t.Fatalf("create: %v; want a refusal naming signal-tls, the uids and %s", err, mutate.AnnotationRunAsUser)
	}
}

// TestExecEnvFile renders a secret in the env format and runs the app
// under `blinkchamber exec`: the app gets the values as environment
// variables, and a rotation restarts it with the new ones. No value may
// reach a log or an argument list.
func TestExecEnvFile(t *testing.T) {
	e := agentEnv(t)
	counter, cli := buildRotationBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	first, second := `first pa55 'quoted' $HOME "x"`, "second-pa55\nwith a newline"
	e.app(t, ctx, "envexec", "api", map[string]map[string]any{
		"app": {"DB_PASSWORD": first, "API_KEY": "api-key-v1-secret"},
		"bad": {"db-password": "bad-key-secret"},
	})
	ann := map[string]string{mutate.AnnotationInject: "true", mutate.AnnotationRenderInterval: "1s",
		mutate.PrefixSecret + "app": "secret/data/envexec/api/app", mutate.PrefixFormat + "app": "env", mutate.PrefixFile + "app": "app.env"}
	app := corev1.Container{Name: "app", Image: cliImage,
		Command: []string{"/usr/local/bin/blinkchamber", "exec", "--env-file", mutate.SecretsPath + "/app.env", "--poll-interval", "200ms",
			"--", counter, "-env", "DB_PASSWORD,API_KEY"}}
	if err := kube.Client.Create(ctx, rotationPod("envexec", "api", "api", ann, app)); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "envexec", "api", harness.ShimOptions{
		Binaries: map[string]string{agentImage: e.agentBin, cliImage: cli}, Stdout: out})
	proc := run.Container("app")

	pid1 := waitOutput(t, proc, `started pid=(\d+) `)[1]
	waitOutput(t, proc, `env DB_PASSWORD sha256=`+digest(first))
	waitOutput(t, proc, `env API_KEY sha256=`+digest("api-key-v1-secret"))
	assertArgvClean(t, pid1, first)

	e.put(t, ctx, "envexec/api/app", map[string]any{"DB_PASSWORD": second, "API_KEY": "api-key-v2-secret"})
	waitOutput(t, proc, `env DB_PASSWORD sha256=`+digest(second))
	m := regexp.MustCompile(`started pid=(\d+) `).FindAllStringSubmatch(proc.Output(), -1)
	if len(m) != 2 || m[1][1] == pid1 {
		t.Fatalf("want exactly one restart of the app, with a new pid; got starts %v", m)
	}
	assertArgvClean(t, m[1][1], second)
	if !proc.Running() {
		t.Errorf("blinkchamber exec itself exited; it should restart the app in place")
	}
	assertNoLeak(t, out.String(), first, second, "api-key-v1-secret", "api-key-v2-secret")

	t.Run("a key that is not a variable name fails the render, naming it", func(t *testing.T) {
		ann := map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "bad": "secret/data/envexec/api/bad", mutate.PrefixFormat + "bad": "env"}
		if err := kube.Client.Create(ctx, rotationPod("envexec", "bad", "api", ann, corev1.Container{Name: "app", Image: counterImage})); err != nil {
			t.Fatal(err)
		}
		_, err := kube.RunPod(ctx, "envexec", "bad", harness.ShimOptions{Binaries: map[string]string{agentImage: e.agentBin}})
		var ce *harness.ContainerError
		if !errors.As(err, &ce) {
			t.Fatalf("RunPod: %v; want the agent to fail the first render", err)
		}
		if ce.ExitCode != agent.ExitTemplate || !strings.Contains(ce.Output, `db-password`) || !strings.Contains(ce.Output, "not a valid environment variable name") {
			t.Errorf("exit code %d, output:\n%s\nwant exit %d naming the key", ce.ExitCode, ce.Output, agent.ExitTemplate)
		}
		assertNoLeak(t, ce.Output, "bad-key-secret")
	})
}

func digest(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

// assertArgvClean checks that the app process (a pid of the host's PID
// namespace: this pod does not share its own) has the value in its
// environment and not in its argument list.
func assertArgvClean(t *testing.T, pid, value string) {
	t.Helper()
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("pid %q", pid)
	}
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), value) {
		t.Errorf("the app's argument list holds the secret value")
	}
	if !strings.Contains(string(environ), "DB_PASSWORD="+value+"\x00") {
		t.Errorf("the app's environment does not hold the value (the check above would prove nothing)")
	}
}
