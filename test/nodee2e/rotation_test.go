package nodee2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/images"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// TestRotationActions runs one pod whose agent, after each secret changes,
// signals the app by name (the injector shares the pod's process
// namespace), runs a command (in the agent's own image: the agent binary
// is all it has), or POSTs to the app's reload URL; the app counts what it
// gets. Each rotation must reach the app exactly once, through its own
// secret's action only, and a signal to no process is counted.
func TestRotationActions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const app = "rotate"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	names := []string{"sig", "cmd", "hook", "lost"}
	ann := map[string]string{mutate.AnnotationRenderInterval: "1s",
		mutate.PrefixSignal + "sig":     "SIGHUP:testapp",
		mutate.PrefixCommand + "cmd":    `["` + mutate.AgentBinary + `","version"]`,
		mutate.PrefixReloadURL + "hook": "http://127.0.0.1:8080/-/reload",
		mutate.PrefixSignal + "lost":    "SIGHUP:no-such-app",
	}
	var files []string
	for _, n := range names {
		put(t, ctx, vc, app, n, map[string]any{"value": randomSecret(n + "-v1")})
		ann[mutate.PrefixSecret+n] = stack.KVSecretPath(app, n)
		files = append(files, mutate.SecretsPath+"/"+n)
	}
	pod := deploy(t, ctx, app, st.AppTemplate(app, ann, append([]string{"watch", "-interval", "300ms", "-listen", "127.0.0.1:8080"}, files...)...))
	if sp := pod.Spec.ShareProcessNamespace; sp == nil || !*sp {
		t.Fatal("the injector did not turn on shareProcessNamespace for a signal-<name> annotation")
	}

	t.Run("the app and the agent share one PID namespace", func(t *testing.T) {
		start, err := st.WaitEvent(ctx, pod.Name, "the start line", func(e stack.Event) bool { return e.Event == "start" })
		must(t, err)
		// The kernel keeps 15 bytes of a process name.
		agent := mutate.AgentBinary[strings.LastIndex(mutate.AgentBinary, "/")+1:][:15]
		if start.PID == 1 || !slices.Contains(start.Procs, "pause") || !slices.Contains(start.Procs, agent) {
			t.Errorf("the app is pid %d and sees %v: want the pause process as PID 1 and the agent", start.PID, start.Procs)
		}
		// Same uid, shared namespace: only the agent's non-dumpable mark
		// keeps the app out of its environment and memory.
		if slices.Contains(start.Readable, agent) {
			t.Errorf("the app can read the agent's /proc/<pid>/environ")
		}
	})

	rotate := func(t *testing.T, name string) {
		t.Helper()
		v := randomSecret(name + "-v2")
		put(t, ctx, vc, app, name, map[string]any{"value": v})
		fileEvent(t, ctx, pod.Name, "app", mutate.SecretsPath+"/"+name, func(e stack.Event) bool { return e.SHA256 == digest("value: "+v+"\n") })
	}
	count := func(t *testing.T, event string, n int) {
		t.Helper()
		_, err := st.WaitEvent(ctx, pod.Name, fmt.Sprintf("%s count=%d", event, n), func(e stack.Event) bool { return e.Event == event && e.Count == n })
		must(t, err)
	}
	t.Run("signal by name", func(t *testing.T) {
		rotate(t, "sig")
		count(t, "sighup", 1)
	})
	t.Run("command", func(t *testing.T) {
		rotate(t, "cmd")
		waitLog(t, ctx, pod.Name, mutate.AgentContainer, `"command after render succeeded"`, `"secret":"cmd"`)
	})
	t.Run("reload URL", func(t *testing.T) {
		rotate(t, "hook")
		count(t, "reload", 1)
	})
	t.Run("no such process is counted", func(t *testing.T) {
		rotate(t, "lost")
		waitMetric(t, ctx, pod, `blinkchamber_agent_signal_no_process_total{secret="lost"} 1`)
		waitLog(t, ctx, pod.Name, mutate.AgentContainer, "no process to signal")
	})
	t.Run("each rotation reached the app once, by its own action", func(t *testing.T) {
		rotate(t, "sig")
		count(t, "sighup", 2)
		evs, err := st.Events(ctx, pod.Name)
		must(t, err)
		for _, e := range evs {
			if (e.Event == "sighup" && e.Count > 2) || (e.Event == "reload" && e.Count > 1) {
				t.Errorf("the app got more than one notice per rotation: %s count=%d", e.Event, e.Count)
			}
		}
		waitMetric(t, ctx, pod, `blinkchamber_agent_signals_sent_total{secret="sig"} 2`)
	})
}

// TestExecEnvFile renders a secret in the env format and runs the app
// under `blinkchamber exec` (the CLI is in the test app's image): the app
// gets the values as environment variables, not in its argument list, and
// a rotation restarts it, in the same container, with the new ones. No
// value reaches a log.
func TestExecEnvFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "envexec"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	first, second := `first pa55 'quoted' $HOME "x" `+randomSecret("a"), "second-pa55\nwith a newline "+randomSecret("b")
	key1, key2 := randomSecret("api-key-v1"), randomSecret("api-key-v2")
	put(t, ctx, vc, app, "app", map[string]any{"DB_PASSWORD": first, "API_KEY": key1})
	tmpl := st.AppTemplate(app, map[string]string{mutate.AnnotationRenderInterval: "1s",
		mutate.PrefixSecret + "app": stack.KVSecretPath(app, "app"), mutate.PrefixFormat + "app": "env", mutate.PrefixFile + "app": "app.env"})
	tmpl.Spec.Containers[0].Command = []string{images.CLIPath, "exec", "--env-file", mutate.SecretsPath + "/app.env", "--poll-interval", "200ms",
		"--", "/testapp", "env", "DB_PASSWORD", "API_KEY"}
	pod := deploy(t, ctx, app, tmpl)

	env := func(name, value string) {
		t.Helper()
		e, err := st.WaitEvent(ctx, pod.Name, name+" with the value's digest", func(e stack.Event) bool {
			return e.Event == "env" && e.Name == name && e.SHA256 == digest(value)
		})
		must(t, err)
		if e.InArgs {
			t.Errorf("the app's argument list holds the value of %s", name)
		}
	}
	env("DB_PASSWORD", first)
	env("API_KEY", key1)
	put(t, ctx, vc, app, "app", map[string]any{"DB_PASSWORD": second, "API_KEY": key2})
	env("DB_PASSWORD", second)
	env("API_KEY", key2)
	evs, err := st.Events(ctx, pod.Name)
	must(t, err)
	var pids []int
	for _, e := range evs {
		if e.Event == "start" {
			pids = append(pids, e.PID)
		}
	}
	if len(pids) != 2 || pids[0] == pids[1] {
		t.Errorf("want exactly one restart of the app, with a new pid; got starts with pids %v", pids)
	}
	p, err := st.ReadyPod(ctx, app)
	must(t, err)
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "app" && cs.RestartCount != 0 {
			t.Errorf("the app container restarted %d times; blinkchamber exec should restart the app in place", cs.RestartCount)
		}
	}
	scan := harness.NewLeakScan(nil)
	for i, v := range []string{first, second, key1, key2} {
		scan.Secret(fmt.Sprintf("value %d", i), v)
	}
	scan.Source("app log", func(ctx context.Context) ([]byte, error) { return st.ContainerLog(ctx, pod.Name, "app") })
	scan.Source("agent log", func(ctx context.Context) ([]byte, error) {
		return st.ContainerLog(ctx, pod.Name, mutate.AgentContainer)
	})
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
}

// waitLog waits until a container's log holds a line with every part.
func waitLog(t *testing.T, ctx context.Context, pod, container string, parts ...string) {
	t.Helper()
	var log []byte
	for {
		log, _ = st.ContainerLog(ctx, pod, container)
		for _, line := range strings.Split(string(log), "\n") {
			if containsAll(line, parts) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no line of %s's log holds %q:\n%s", container, parts, log)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
