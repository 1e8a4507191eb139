package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/leakform"
)

const agentImage = "ghcr.io/blinkchamber/agent:e2e"

// vaultEnv is one Vault (file storage, so it survives restarts) with
// kubernetes auth against the package's API server, and the agent binary,
// shared by the agent tests.
type vaultEnv struct {
	vault    *harness.Vault
	agentBin string
}

var shared struct {
	once sync.Once
	env  *vaultEnv
	err  error
	dir  string
}

func agentEnv(t *testing.T) *vaultEnv {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		shared.dir, shared.err = os.MkdirTemp("", "blinkchamber-e2e-")
		if shared.err != nil {
			return
		}
		e := &vaultEnv{agentBin: filepath.Join(shared.dir, "blinkchamber-agent")}
		if shared.err = harness.BuildAgent(ctx, e.agentBin); shared.err != nil {
			return
		}
		if e.vault, shared.err = harness.StartVault(ctx, os.Stderr, filepath.Join(shared.dir, "vault")); shared.err != nil {
			return
		}
		shared.err = e.vault.ConfigureKubernetesAuth(ctx, kube)
		shared.env = e
	})
	if shared.err != nil {
		t.Fatalf("agent environment: %v", shared.err)
	}
	return shared.env
}

func stopAgentEnv() {
	if shared.env != nil {
		_ = shared.env.vault.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// startAgentInjector runs the injector pointed at the shared Vault, with a
// webhook for every labelled namespace, for the duration of one test.
func startAgentInjector(t *testing.T, ctx context.Context, e *vaultEnv) {
	t.Helper()
	startInjector(t, ctx, e.vault.Addr(), "blinkchamber-e2e-agent", nil)
}

// app creates a labelled namespace with ServiceAccount sa, a Vault role
// named sa reading secret/data/<ns>/<sa>/*, and the KV secrets given.
func (e *vaultEnv) app(t *testing.T, ctx context.Context, ns, sa string, secrets map[string]map[string]any) {
	t.Helper()
	if err := kube.Namespace(ctx, ns, true, sa); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`path "secret/data/%s/%s/*" { capabilities = ["read"] }`, ns, sa)
	if err := e.vault.AppRole(ctx, sa, ns, sa, policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	for name, data := range secrets {
		e.put(t, ctx, ns+"/"+sa+"/"+name, data)
	}
}

func (e *vaultEnv) put(t *testing.T, ctx context.Context, path string, data map[string]any) {
	t.Helper()
	if _, err := e.vault.Client().KVv2("secret").Put(ctx, path, data); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

// createPod creates an annotated pod through the real webhook.
func createPod(t *testing.T, ctx context.Context, ns, name, sa string, ann map[string]string) {
	t.Helper()
	pod := appPod(name, ann)
	pod.Namespace, pod.Spec.ServiceAccountName = ns, sa
	pod.Spec.Containers = pod.Spec.Containers[:1]
	if err := kube.Client.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	if pod.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		t.Fatalf("pod %s/%s was not injected", ns, name)
	}
}

func (e *vaultEnv) shim(out io.Writer) harness.ShimOptions {
	return harness.ShimOptions{Binaries: map[string]string{agentImage: e.agentBin}, Stdout: out}
}

// syncBuffer collects every container's output for the secret-leak scan.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFile(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	var got []byte
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, within, true, func(context.Context) (bool, error) {
		got, _ = os.ReadFile(path)
		return string(got) == want, nil
	})
	if err != nil {
		t.Fatalf("%s never held the expected content within %s; last content %d bytes", filepath.Base(path), within, len(got))
	}
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// assertNoLeak fails when any of the values appears in the output in any
// derived form (leakform: substrings of 8 bytes or more, case, reversal,
// hex, base64, percent-encoding, quoting). Values under 8 bytes cannot be
// scanned for: a test that registers one fails, so that no test believes
// it checked what it did not.
func assertNoLeak(t *testing.T, output string, values ...string) {
	t.Helper()
	m := leakform.New()
	for i, v := range values {
		if !m.Add(fmt.Sprintf("value %d (%d bytes)", i, len(v)), v) {
			t.Errorf("value %d is %d bytes, too short for the leak scan; use a longer, random one", i, len(v))
		}
	}
	for _, err := range harness.FindLeaks(m, "the output", []byte(output)) {
		t.Error(err)
	}
}

// TestAgentRendersRotatesAndRecovers covers, on one pod created through the
// real webhook and run by the shim: files with content (1; their modes and
// owners are checked on the real node), KV
// rotation within the render interval + 1 s with unchanged files left alone
// (2), token revocation and re-login (3), and a 15 s Vault outage (4).
func TestAgentRendersRotatesAndRecovers(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "web", "web", map[string]map[string]any{
		"db":  {"username": "web", "password": "initial-db-password"},
		"api": {"key": "initial-api-key"},
	})
	createPod(t, ctx, "web", "web", "web", map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.PrefixSecret + "db":      "secret/data/web/web/db",
		mutate.PrefixSecret + "api":     "secret/data/web/web/api",
		mutate.PrefixPerms + "api":      "0440",
		mutate.AnnotationRenderInterval: "1s",
	})
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "web", "web", e.shim(out))
	dir := run.VolumeDir(mutate.SecretsVolume)

	t.Run("files rendered", func(t *testing.T) {
		waitFile(t, filepath.Join(dir, "db"), "password: initial-db-password\nusername: web\n", 5*time.Second)
		waitFile(t, filepath.Join(dir, "api"), "key: initial-api-key\n", 5*time.Second)
		if code, body := get(t, run.HealthAddr(), "/readyz"); code != http.StatusOK {
			t.Errorf("readyz = %d %s", code, body)
		}
	})

	t.Run("rotation within interval plus one second", func(t *testing.T) {
		before, _ := os.Stat(filepath.Join(dir, "api"))
		e.put(t, ctx, "web/web/db", map[string]any{"username": "web", "password": "rotated-db-password"})
		waitFile(t, filepath.Join(dir, "db"), "password: rotated-db-password\nusername: web\n", 2*time.Second)
		after, _ := os.Stat(filepath.Join(dir, "api"))
		if !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("the unchanged api file was rewritten")
		}
	})

	t.Run("token revoked, agent logs in again", func(t *testing.T) {
		// Every token issued by kubernetes logins, the agent's among them.
		if err := e.vault.Client().Sys().RevokePrefixWithContext(ctx, "auth/kubernetes/login"); err != nil {
			t.Fatal(err)
		}
		e.put(t, ctx, "web/web/db", map[string]any{"username": "web", "password": "after-revoke-password"})
		waitFile(t, filepath.Join(dir, "db"), "password: after-revoke-password\nusername: web\n", 20*time.Second)
		_, metrics := get(t, run.HealthAddr(), "/metrics")
		if !strings.Contains(metrics, `blinkchamber_agent_logins_total{result="success"} 2`) {
			t.Errorf("want exactly two successful logins in metrics:\n%s", grep(metrics, "logins_total"))
		}
	})

	t.Run("vault down 15 s then back", func(t *testing.T) {
		if err := e.vault.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		var code int
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			code, _ = get(t, run.HealthAddr(), "/readyz")
			return code == http.StatusServiceUnavailable, nil
		})
		if err != nil {
			t.Errorf("readyz never reported the outage (last %d)", code)
		}
		time.Sleep(time.Until(stopped.Add(15 * time.Second)))
		waitFile(t, filepath.Join(dir, "db"), "password: after-revoke-password\nusername: web\n", time.Second)
		if !run.Container(mutate.AgentContainer).Running() {
			t.Fatal("the agent exited during the outage")
		}
		if err := e.vault.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		e.put(t, ctx, "web/web/db", map[string]any{"username": "web", "password": "after-outage-password"})
		waitFile(t, filepath.Join(dir, "db"), "password: after-outage-password\nusername: web\n", 45*time.Second)
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			code, _ = get(t, run.HealthAddr(), "/readyz")
			return code == http.StatusOK, nil
		})
		if err != nil {
			t.Errorf("readyz did not recover (last %d)", code)
		}
	})

	t.Run("no secret value or token in the agent's output", func(t *testing.T) {
		token, _ := os.ReadFile(filepath.Join(run.VolumeDir(mutate.TokenVolume), mutate.TokenFile))
		assertNoLeak(t, out.String(), "initial-db-password", "initial-api-key", "rotated-db-password",
			"after-revoke-password", "after-outage-password", string(token))
		if !strings.Contains(out.String(), `"msg":"rendered"`) {
			t.Errorf("the scanned output has no render log lines: the scan saw nothing")
		}
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAgentRefusesHandEditedTemplate: a template edited by hand into the
// agent's config (past the webhook's checks) is refused at agent start,
// naming the secret and the function. (The refusals of pods, by Vault and
// by the template, run on the real node: test/nodee2e.)
func TestAgentRefusesHandEditedTemplate(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := agent.Config{Mode: agent.ModeInit, Vault: agent.Vault{Address: e.vault.Addr(), AuthPath: "auth/kubernetes", Role: "billing"},
		TokenFile: "/nonexistent/token", SecretsDir: t.TempDir(), RenderInterval: agent.Duration{Duration: time.Second},
		HealthAddr: "127.0.0.1:1", Secrets: []agent.Secret{{Name: "x", Template: `{{ plugin "/bin/sh" "-c" "id" }}`, File: "x", Perms: 0o400}}}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, e.agentBin, "run")
	cmd.Env = []string{agent.ConfigEnv + "=" + enc}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != agent.ExitConfig {
		t.Fatalf("exit = %v, want code %d; output %s", err, agent.ExitConfig, out)
	}
	for _, w := range []string{"secrets[0].template", `"plugin" runs an arbitrary command`} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("output lacks %q: %s", w, out)
		}
	}
}

// TestNativeStartupProbe: the startup probe fails until the first render
// and passes after it. Vault is down when the agent starts, so the first
// render waits for it.
func TestNativeStartupProbe(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "probe", "probe", map[string]map[string]any{"db": {"password": "probe-pw"}})
	createPod(t, ctx, "probe", "probe", "probe", map[string]string{
		mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/probe/probe/db",
	})
	if err := e.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = e.vault.Restart(context.Background())
		}
	})
	started := make(chan error, 1)
	var run *harness.PodRun
	go func() {
		var err error
		run, err = kube.RunPod(ctx, "probe", "probe", e.shim(nil))
		started <- err
	}()
	// RunPod returns only once the startup probe has passed: it must not
	// while Vault is down.
	select {
	case err := <-started:
		t.Fatalf("the pod started before its first render (err %v)", err)
	case <-time.After(8 * time.Second):
	}
	if err := e.vault.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the startup probe never passed after Vault came back")
	}
	t.Cleanup(func() { _ = run.Stop() })
	got, err := os.ReadFile(filepath.Join(run.VolumeDir(mutate.SecretsVolume), "db"))
	if err != nil || string(got) != "password: probe-pw\n" {
		t.Fatalf("file after the probe passed: %q %v", got, err)
	}
}

// tokensOfRole lists the accessors of live tokens issued to a kubernetes
// role.
func tokensOfRole(t *testing.T, ctx context.Context, e *vaultEnv, role string) []string {
	t.Helper()
	out, err := harness.TokensOfRole(ctx, e.vault.Client(), role)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
