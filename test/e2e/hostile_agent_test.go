package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// randomSecret is a value long and random enough for the leak scan's
// substring search: letters and digits, so it can stand in a Vault path.
func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// flagged is a template that does nothing until secret/data/lk/lk/flag
// says on=yes, then runs body: the agent starts cleanly, and the failures
// body provokes happen in its refresh loop, where readiness reports them.
func flagged(body string) string {
	return `{{ with secret "secret/data/lk/lk/flag" }}{{ if eq .Data.data.on "yes" }}` + body + `{{ end }}ok{{ end }}`
}

// TestComputedPathErrorsLeakNothing: requests built from secret values
// (the issue's nested `secret (print ... .Data.data.password)`, a path
// from a transformed value, a `secret` write argument from a value, a path
// from a dynamic credential's private key, a missing key on a computed
// path) fail through the real API server, webhook, Vault and agent; the
// agent's whole output, /readyz, /metrics, the pod's events and status,
// and, for a pod whose first render fails, the startup probe's output and
// the exit reason hold no derived form of any value.
func TestComputedPathErrorsLeakNothing(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	const ns = "lk"
	if err := kube.Namespace(ctx, ns, true, ns); err != nil {
		t.Fatal(err)
	}
	root := e.vault.Client()
	enablePKI(t, ctx, root, "pki-lk")
	policy := `path "secret/data/lk/lk/*" { capabilities = ["read"] }
path "pki-lk/issue/lk" { capabilities = ["update"] }`
	if err := e.vault.AppRole(ctx, ns, ns, ns, policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	pw := randomSecret(t, "Pw")
	e.put(t, ctx, "lk/lk/src", map[string]any{"password": pw})
	e.put(t, ctx, "lk/lk/m/"+pw, map[string]any{"v": randomSecret(t, "Mv")})
	e.put(t, ctx, "lk/lk/flag", map[string]any{"on": "no"})
	src := `{{ with secret "secret/data/lk/lk/src" }}`
	issue := `{{ with secret "pki-lk/issue/lk" "common_name=a.example.com" "ttl=1h" }}`
	templates := map[string]string{
		"cert":     issue + `{{ .Data.private_key }}{{ end }}`,
		"example":  flagged(src + `{{ with secret (print "secret/data/lk/lk/x/" .Data.data.password) }}{{ .Data.data }}{{ end }}{{ end }}`),
		"upper":    flagged(src + `{{ with secret (print "secret/data/lk/lk/" (base64Encode (toUpper .Data.data.password))) }}{{ .Data.data }}{{ end }}{{ end }}`),
		"writearg": flagged(src + `{{ with secret "secret/data/lk/lk/w" (print "k=" .Data.data.password) }}{{ .Data }}{{ end }}{{ end }}`),
		"dynamic":  flagged(issue + `{{ with secret (print "secret/data/lk/lk/c/" (sprig_substr 40 72 .Data.private_key)) }}{{ .Data.data }}{{ end }}{{ end }}`),
		"nokey":    flagged(src + `{{ with secret (print "secret/data/lk/lk/m/" .Data.data.password) }}{{ .Data.data.nokey }}{{ end }}{{ end }}`),
	}
	ann := map[string]string{mutate.AnnotationInject: "true", mutate.AnnotationRenderInterval: "1s"}
	for name, text := range templates {
		ann[mutate.PrefixSecret+name] = "secret/data/lk/lk/src"
		ann[mutate.PrefixTemplate+name] = text
	}
	createPod(t, ctx, ns, "running", ns, ann)
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, ns, "running", e.shim(out))
	key, err := os.ReadFile(filepath.Join(run.VolumeDir(mutate.SecretsVolume), "cert"))
	if err != nil || !strings.Contains(string(key), "PRIVATE KEY") {
		t.Fatalf("the dynamic credential was not rendered: %v", err)
	}

	// Turn the derivations on: each fails in the refresh loop.
	e.put(t, ctx, "lk/lk/flag", map[string]any{"on": "yes"})
	var ready string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		code, body := get(t, run.HealthAddr(), "/readyz")
		ready = body
		return code == 503 && strings.Contains(body, "secret example") && strings.Contains(body, "secret dynamic"), nil
	})
	if err != nil {
		t.Fatalf("/readyz never reported the failing derivations; last body: %s", ready)
	}
	time.Sleep(3 * time.Second) // a few more failed rounds in the log
	_, metrics := get(t, run.HealthAddr(), "/metrics")
	for _, name := range []string{"example", "upper", "writearg", "dynamic", "nokey"} {
		if metricValue(metrics, `blinkchamber_agent_render_errors_total{secret="`+name+`"}`) <= 0 {
			t.Errorf("no render error counted for %s: the derivation did not fail, so it proves nothing\n%s", name, ready)
		}
	}

	// A pod whose first render fails on the issue's example: the agent
	// exits, the startup probe fails; their output is the shim's error.
	createPod(t, ctx, ns, "failing", ns, map[string]string{
		mutate.AnnotationInject:           "true",
		mutate.PrefixSecret + "example":   "secret/data/lk/lk/src",
		mutate.PrefixTemplate + "example": src + `{{ with secret (print "secret/data/lk/lk/x/" .Data.data.password) }}{{ .Data.data }}{{ end }}{{ end }}`,
	})
	failOut := &syncBuffer{}
	failed, err := kube.RunPod(ctx, ns, "failing", e.shim(failOut))
	if err == nil {
		_ = failed.Stop()
		t.Fatal("the pod whose first render reads a missing computed path started")
	}
	var ce *harness.ContainerError
	if !errors.As(err, &ce) {
		t.Fatalf("want the agent's container error, got %v", err)
	}

	scan := harness.NewLeakScan(kube)
	scan.Secret("password", pw)
	scan.Secret("private key", pemBody(string(key)))
	scan.Output("running pod's output", out)
	scan.Output("failing pod's output", failOut)
	scan.Source("/readyz", func(context.Context) ([]byte, error) { return []byte(ready), nil })
	scan.Source("/metrics", func(context.Context) ([]byte, error) { return []byte(metrics), nil })
	scan.Source("exit reason, probe output", func(context.Context) ([]byte, error) { return []byte(err.Error()), nil })
	scan.Namespaces(ns)
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
	if !strings.Contains(ce.Output, "computed, fingerprint") {
		t.Errorf("the failing agent's output does not name the computed request by fingerprint:\n%s", ce.Output)
	}
}

// pemBody is a PEM block's base64 body on one line.
func pemBody(pem string) string {
	var b strings.Builder
	for _, l := range strings.Split(pem, "\n") {
		if !strings.HasPrefix(l, "-----") {
			b.WriteString(strings.TrimSpace(l))
		}
	}
	return b.String()
}

// enablePKI mounts a PKI engine with a root CA and a role "lk" issuing any
// name.
func enablePKI(t *testing.T, ctx context.Context, c *vaultapi.Client, mount string) {
	t.Helper()
	if err := c.Sys().MountWithContext(ctx, mount, &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "24h"}}); err != nil {
		t.Fatalf("mounting %s: %v", mount, err)
	}
	for path, data := range map[string]map[string]any{
		mount + "/root/generate/internal": {"common_name": "lk-ca", "ttl": "24h"},
		mount + "/roles/lk":               {"allow_any_name": true, "max_ttl": "2h"},
	} {
		if _, err := c.Logical().WriteWithContext(ctx, path, data); err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
	}
}

// TestSpecialFilesDoNotBlockRendering: a FIFO, then a directory, put at a
// rendered file's name by another uid while the agent runs (the agent can
// replace neither in the volume's sticky directory) are reported by
// /readyz (503, naming the secret) and the render-error metric within a
// render interval; the next rotation of another secret still arrives; once
// removed, the file comes back and readiness recovers by itself.
func TestSpecialFilesDoNotBlockRendering(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	const ns = "fifo"
	a1, b1 := randomSecret(t, "a1"), randomSecret(t, "b1")
	e.app(t, ctx, ns, ns, map[string]map[string]any{"a": {"v": a1}, "b": {"v": b1}})
	createPod(t, ctx, ns, "web", ns, map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.PrefixSecret + "a":       "secret/data/fifo/fifo/a",
		mutate.PrefixSecret + "b":       "secret/data/fifo/fifo/b",
		mutate.AnnotationRenderInterval: "1s",
	})
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, ns, "web", e.shim(out))
	dir := run.VolumeDir(mutate.SecretsVolume)
	fileA, fileB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	waitFile(t, fileA, "v: "+a1+"\n", 10*time.Second)
	values := []string{a1, b1}

	var body, metrics string
	for _, plant := range []struct {
		kind string
		make func(string) error
	}{
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"directory", func(p string) error { return os.MkdirAll(filepath.Join(p, "inside"), 0o700) }},
	} {
		// Put there by another uid (the test's), in the volume's sticky
		// directory: the agent can neither open it (it never tries) nor
		// replace it, so it must report it.
		if err := os.Remove(fileA); err != nil {
			t.Fatal(err)
		}
		if err := plant.make(fileA); err != nil {
			t.Fatal(err)
		}
		planted := time.Now()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			var code int
			code, body = get(t, run.HealthAddr(), "/readyz")
			return code == 503 && strings.Contains(body, "secret a"), nil
		})
		if err != nil {
			t.Fatalf("%s at a's name: /readyz did not report secret a within 5 s; last: %s", plant.kind, body)
		}
		t.Logf("%s at a's name: /readyz 503 after %s: %s", plant.kind, time.Since(planted).Round(time.Millisecond), body)
		_, metrics = get(t, run.HealthAddr(), "/metrics")
		if metricValue(metrics, `blinkchamber_agent_render_errors_total{secret="a"}`) <= 0 {
			t.Errorf("%s: render errors for secret a not counted: %s", plant.kind, grep(metrics, "render_errors"))
		}
		// The next rotation of b arrives meanwhile.
		b := randomSecret(t, "b")
		values = append(values, b)
		rotated := time.Now()
		e.put(t, ctx, ns+"/"+ns+"/b", map[string]any{"v": b})
		waitFile(t, fileB, "v: "+b+"\n", 3*time.Second)
		t.Logf("%s at a's name: b's rotation arrived after %s", plant.kind, time.Since(rotated).Round(time.Millisecond))

		// Removed: the file comes back, readiness recovers by itself.
		if err := os.RemoveAll(fileA); err != nil {
			t.Fatal(err)
		}
		waitRegularFile(t, fileA, "v: "+a1+"\n", 5*time.Second, out)
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			code, _ := get(t, run.HealthAddr(), "/readyz")
			return code == 200, nil
		})
		if err != nil {
			t.Fatalf("%s: /readyz did not recover after it was removed", plant.kind)
		}
	}
	assertPodNoLeak(t, run, out.String()+body+metrics, values...)
}

// waitRegularFile is waitFile that never opens anything but a regular
// file: the test must not block on a FIFO either.
func waitRegularFile(t *testing.T, path, want string, within time.Duration, out *syncBuffer) {
	t.Helper()
	kind := "missing"
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, within, true, func(context.Context) (bool, error) {
		st, err := os.Lstat(path)
		if err != nil || !st.Mode().IsRegular() {
			if err == nil {
				kind = st.Mode().Type().String()
			}
			return false, nil
		}
		got, _ := os.ReadFile(path)
		kind = "regular"
		return string(got) == want, nil
	})
	if err != nil {
		t.Fatalf("%s never became a regular file with the expected content within %s (last: %s)\n%s", filepath.Base(path), within, kind, out.String())
	}
}
