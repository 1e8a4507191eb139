package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// tokenPrefix starts every Vault service token (hvs.) and batch token
// (hvb.): none may appear in a rendered file or the agent's output.
var tokenPrefixes = []string{"hvs.", "hvb."}

// createRefusedPod creates an annotated pod through the real webhook and
// returns the API server's refusal; it fails the test when the pod is
// admitted.
func createRefusedPod(t *testing.T, ctx context.Context, ns, name, sa string, ann map[string]string) string {
	t.Helper()
	pod := appPod(name, ann)
	pod.Namespace, pod.Spec.ServiceAccountName = ns, sa
	pod.Spec.Containers = pod.Spec.Containers[:1]
	err := kube.Client.Create(ctx, pod)
	if err == nil {
		_ = kube.Client.Delete(ctx, pod)
		t.Fatalf("pod %s/%s was admitted", ns, name)
	}
	return err.Error()
}

// runRefusedInit runs an init-only pod whose agent must fail, and returns
// its exit code and output.
func runRefusedInit(t *testing.T, ctx context.Context, e *vaultEnv, ns, name string) (int, string) {
	t.Helper()
	_, err := kube.RunPod(ctx, ns, name, e.shim(nil))
	var ce *harness.ContainerError
	if !errors.As(err, &ce) {
		t.Fatalf("RunPod = %v, want the init container to fail", err)
	}
	return ce.ExitCode, ce.Output
}

// TestTemplateTokenEndpoints: a template never reaches the agent's Vault
// token. Literal token paths are refused at admission by the real webhook,
// naming the annotation; computed ones are refused by the agent before it
// asks Vault, with no token in any file or output; and every spelling the
// real Vault routes to lookup-self is one the check refuses.
func TestTemplateTokenEndpoints(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "tokens", "app", map[string]map[string]any{"db": {"password": "app-db-pw", "path": "auth/token/lookup-self"}})

	t.Run("literal token paths refused at admission", func(t *testing.T) {
		for i, text := range []string{
			`{{ with secret "auth/token/lookup-self" }}{{ .Data.id }}{{ end }}`,
			`{{ with secret "/v1/auth//token/./lookup-self/" }}{{ .Data.id }}{{ end }}`,
			`{{ with "auth/token/lookup-self" | secret }}{{ .Data.id }}{{ end }}`,
			`{{ with secret "auth/token/create" "policies=default" }}{{ .Auth }}{{ end }}`,
			`{{ with secret "auth/kubernetes/login" "role=app" }}{{ . }}{{ end }}`,
			`{{ with secret "sys/wrapping/unwrap" }}{{ . }}{{ end }}`,
			`{{ range secrets "auth/token/accessors" }}{{ . }}{{ end }}`,
		} {
			key := fmt.Sprintf("t%d", i)
			msg := createRefusedPod(t, ctx, "tokens", fmt.Sprintf("literal-%d", i), "app", map[string]string{
				mutate.AnnotationInject: "true", mutate.PrefixTemplate + key: text,
			})
			for _, want := range []string{"blinkchamber.io/template-" + key, tmpl.ErrTokenEndpoint.Error()} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s: refusal lacks %q: %s", text, want, msg)
				}
			}
		}
	})

	t.Run("token paths declared without a template refused at admission", func(t *testing.T) {
		for i, p := range []string{"auth/token/lookup-self", "auth/kubernetes/login", "sys/wrapping/unwrap"} {
			msg := createRefusedPod(t, ctx, "tokens", fmt.Sprintf("path-%d", i), "app", map[string]string{
				mutate.AnnotationInject: "true", mutate.PrefixSecret + "x": p,
			})
			for _, want := range []string{"is invalid", "blinkchamber.io/secret-x", tmpl.ErrTokenEndpoint.Error()} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s: refusal lacks %q: %s", p, want, msg)
				}
			}
		}
		// The same path through the Vault Agent Injector's annotations.
		msg := createRefusedPod(t, ctx, "tokens", "path-vaultk8s", "app", map[string]string{
			mutate.VaultPrefix + "agent-inject": "true", mutate.VaultPrefixSecret + "x": "auth/token/lookup-self",
		})
		for _, want := range []string{"is invalid", mutate.VaultPrefixSecret + "x", tmpl.ErrTokenEndpoint.Error()} {
			if !strings.Contains(msg, want) {
				t.Errorf("vault-k8s: refusal lacks %q: %s", want, msg)
			}
		}
	})

	t.Run("computed token paths refused by the agent before it asks", func(t *testing.T) {
		for i, text := range []string{
			`{{ with secret (print "auth/token/" "lookup-self") }}{{ .Data.id }}{{ end }}`,
			`{{ with secret "secret/data/tokens/app/db" }}{{ with secret .Data.data.path }}{{ .Data.id }}{{ end }}{{ end }}`,
			`{{ with secret (printf "%s/%s" "AUTH//TOKEN" "lookup-self") }}{{ .Data.id }}{{ end }}`,
		} {
			name := fmt.Sprintf("computed-%d", i)
			createPod(t, ctx, "tokens", name, "app", map[string]string{
				mutate.AnnotationInject: "true", mutate.AnnotationMode: string(mutate.ModeInitOnly),
				mutate.PrefixTemplate + "leak": text,
			})
			code, out := runRefusedInit(t, ctx, e, "tokens", name)
			if code != agent.ExitTemplate || !strings.Contains(out, tmpl.ErrTokenEndpoint.Error()) {
				t.Errorf("%s: exit %d, want %d with a token endpoint refusal; output:\n%s", text, code, agent.ExitTemplate, out)
			}
			assertNoToken(t, out)
			assertNoLeak(t, out, "app-db-pw")
		}
	})

	t.Run("every spelling the real Vault routes to lookup-self is refused", func(t *testing.T) {
		tok, err := e.vault.Client().Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "10m"})
		if err != nil {
			t.Fatal(err)
		}
		token := tok.Auth.ClientToken
		variants := []string{
			"auth/token/lookup-self", "AUTH/token/lookup-self", "auth/TOKEN/lookup-self", "auth/token/LOOKUP-SELF",
			"auth/token//lookup-self", "auth//token/lookup-self", "/auth/token/lookup-self", "auth/token/lookup-self/",
			"auth/token/./lookup-self", "auth/x/../token/lookup-self", "secret/../auth/token/lookup-self",
			"auth%2Ftoken%2Flookup-self", "auth/token%2Flookup-self", "auth/token/%6cookup-self", "auth/token/lookup%2Dself",
			"auth/token/lookup-self?x=1", "auth/token/lookup-self%3Fx=1", "v1/auth/token/lookup-self", "auth/token/lookup-self%00",
			"auth/token/lookup-self%20", "auth/token/lookup-self#x", "auth/token/lookup-self;x",
		}
		var reached []string
		for _, v := range variants {
			raw, client := reachesLookupSelf(t, ctx, e.vault.Addr(), token, v)
			if raw || client {
				reached = append(reached, fmt.Sprintf("%s (raw %v, client %v)", v, raw, client))
				if tmpl.CheckTokenEndpoint(v) == nil {
					t.Errorf("%q reaches lookup-self (raw HTTP %v, Vault client %v) but is not refused", v, raw, client)
				}
			}
		}
		if len(reached) < 5 {
			t.Fatalf("only %d spellings reached lookup-self: the probe is not working", len(reached))
		}
		t.Logf("%d of %d spellings reach lookup-self on the real Vault, all refused: %s", len(reached), len(variants), strings.Join(reached, ", "))
	})
}

// reachesLookupSelf reports whether GET /v1/<p> answers with token's own
// lookup, sent as raw HTTP (following redirects, as a plain client does)
// and through the Vault client the agent uses.
func reachesLookupSelf(t *testing.T, ctx context.Context, addr, token, p string) (raw, client bool) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/"+strings.TrimPrefix(p, "/"), nil)
	if err == nil {
		req.Header.Set("X-Vault-Token", token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got struct {
				Data struct{ ID string } `json:"data"`
			}
			raw = json.Unmarshal(body, &got) == nil && got.Data.ID == token
		}
	}
	c, err := vaultapi.NewClient(&vaultapi.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	s, err := c.Logical().ReadWithContext(ctx, p)
	client = err == nil && s != nil && s.Data["id"] == token
	return raw, client
}

func assertNoToken(t *testing.T, output string) {
	t.Helper()
	for _, p := range tokenPrefixes {
		if strings.Contains(output, p) {
			t.Errorf("the output holds a Vault token (%s...)", p)
		}
	}
}

// TestTemplateRenderBounds: templates that build a value holding itself,
// nest it deeply, or range over a huge integer are admitted (they are
// only known when run) and end in the agent with a named render error and
// its documented exit code, never a Go fatal error.
func TestTemplateRenderBounds(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "bounds", "app", map[string]map[string]any{"db": {"password": "bounds-db-pw"}})
	cases := []struct{ name, text, want string }{
		{"self-referencing dict printed", `{{ $m := sprig_dict "a" "1" }}{{ $_ := sprig_set $m "self" $m }}{{ $m }}`, "a value is nested more than 100 levels deep, or holds itself"},
		{"self-referencing scratch map as JSON", `{{ scratch.MapSet "a" "b" "1" }}{{ scratch.MapSet "a" "self" (scratch.Get "a") }}{{ scratch.Get "a" | toJSON }}`, "holds itself"},
		{"mergeMap cycle printed with printf", `{{ $d := sprig_dict "a" "1" }}{{ $_ := mergeMap $d (sprig_dict "x" $d) }}{{ printf "%v" $d }}`, "holds itself"},
		{"a map doubled sixty times", `{{ $d := sprig_dict "x" "y" }}{{ range loop 60 }}{{ $d = sprig_dict "l" $d "r" $d }}{{ end }}{{ toYAML $d }}`, "a value has more than 100000 elements"},
		{"range over a huge integer", `{{ range $i := 1000000000 }}{{ end }}`, "the loops of one render would run more than 100000 iterations"},
		{"a replacement at every byte, chained", `{{ $a := sprig_replace "" "0123456789" "0123456789" }}{{ $b := sprig_replace "" $a $a }}{{ $c := sprig_replace "" $a $b }}{{ $d := sprig_replace "" $b $c }}{{ $d }}`,
			"sprig_replace: the replaced text would exceed the output limit"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("bound-%d", i)
			createPod(t, ctx, "bounds", name, "app", map[string]string{
				mutate.AnnotationInject: "true", mutate.AnnotationMode: string(mutate.ModeInitOnly),
				mutate.PrefixTemplate + "x": `{{ with secret "secret/data/bounds/app/db" }}{{ end }}` + tc.text,
			})
			start := time.Now()
			code, out := runRefusedInit(t, ctx, e, "bounds", name)
			if code != agent.ExitTemplate {
				t.Errorf("exit %d, want %d", code, agent.ExitTemplate)
			}
			for _, w := range []string{tmpl.ErrLimit.Error(), tc.want, ":1:"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(out, "fatal error") || strings.Contains(out, "goroutine ") {
				t.Errorf("the agent crashed")
			}
			if t.Failed() {
				t.Logf("after %s, output:\n%s", time.Since(start), tail(out, 2000))
			}
			assertNoLeak(t, out, "bounds-db-pw")
		})
	}
}

// TestSandboxListIsEnforced: a function the sandbox's documented list
// refuses is refused by the real webhook, naming the annotation, and the
// documented list is the one the code checks.
func TestSandboxListIsEnforced(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	if err := kube.Namespace(ctx, "sandbox", true, "app"); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "templates.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), tmpl.SandboxDoc()) {
		t.Fatal("docs/templates.md differs from the code's lists")
	}
	for i, r := range tmpl.Refused() {
		if !strings.HasPrefix(r[0], "sprig_gen") && r[0] != "sprig_randInt" && r[0] != "sprig_bcrypt" {
			continue
		}
		msg := createRefusedPod(t, ctx, "sandbox", fmt.Sprintf("refused-%d", i), "app", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixTemplate + "k": `{{ ` + r[0] + ` }}`,
		})
		for _, want := range []string{"blinkchamber.io/template-k", `"` + r[0] + `"`, tmpl.ErrDenied.Error()} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: refusal lacks %q: %s", r[0], want, msg)
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestTemplateCycleAfterRotation: a running agent whose template builds a
// map holding itself only once a secret rotates (the render loop, not the
// first render) logs a named render error, keeps the last file and keeps
// running; it never dies of a Go fatal error.
func TestTemplateCycleAfterRotation(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "cycle", "app", map[string]map[string]any{"cfg": {"mode": "calm"}})
	createPod(t, ctx, "cycle", "cycle", "app", map[string]string{
		mutate.AnnotationInject: "true", mutate.AnnotationRenderInterval: "1s",
		mutate.PrefixTemplate + "cfg": `{{ with secret "secret/data/cycle/app/cfg" }}{{ .Data.data.mode }}{{ if eq .Data.data.mode "boom" }}` +
			`{{ $m := sprig_dict "a" "1" }}{{ $_ := sprig_set $m "self" $m }}{{ $m }}{{ end }}{{ end }}`,
	})
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "cycle", "cycle", e.shim(out))
	file := filepath.Join(run.VolumeDir(mutate.SecretsVolume), "cfg")
	waitFile(t, file, "calm", 10*time.Second)
	e.put(t, ctx, "cycle/app/cfg", map[string]any{"mode": "boom"})
	// Long enough for the old agent's printing goroutine to exhaust its
	// stack after the 5 s render timeout.
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && run.Container(mutate.AgentContainer).Running() &&
		!strings.Contains(out.String(), "holds itself") {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if !run.Container(mutate.AgentContainer).Running() {
		t.Fatalf("the agent exited; output:\n%s", tail(out.String(), 3000))
	}
	if strings.Contains(out.String(), "fatal error") {
		t.Fatalf("the agent crashed")
	}
	if !strings.Contains(out.String(), "a value is nested more than 100 levels deep, or holds itself") {
		t.Errorf("no named render error; output:\n%s", tail(out.String(), 3000))
	}
	if got, _ := os.ReadFile(file); string(got) != "calm" {
		t.Errorf("the last rendered file changed: %q", got)
	}
	if code, _ := get(t, run.HealthAddr(), "/readyz"); code == http.StatusOK {
		t.Errorf("readyz = 200 while the render fails")
	}
}
