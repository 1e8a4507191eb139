package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// labelledValue reads a sample with labels from Prometheus text output; -1
// when it is absent.
func labelledValue(text, name, labels string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// runDBPod runs a pod of app (namespace, ServiceAccount and role of that
// name) whose agent renders secret db, holding password, into file, with a
// 1 s render interval and the extra annotations given.
func runDBPod(t *testing.T, ctx context.Context, e *vaultEnv, app, password string, extra map[string]string) (*harness.PodRun, *syncBuffer, string) {
	t.Helper()
	e.app(t, ctx, app, app, map[string]map[string]any{"db": {"password": password}})
	ann := map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.PrefixSecret + "db":      "secret/data/" + app + "/" + app + "/db",
		mutate.AnnotationRenderInterval: "1s",
	}
	for k, v := range extra {
		ann[k] = v
	}
	createPod(t, ctx, app, "web", app, ann)
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, app, "web", e.shim(out))
	file := filepath.Join(run.VolumeDir(mutate.SecretsVolume), "db")
	waitFile(t, file, "password: "+password+"\n", 10*time.Second)
	return run, out, file
}

// assertPodNoLeak scans output for the values and the pod's token.
func assertPodNoLeak(t *testing.T, run *harness.PodRun, output string, values ...string) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(run.VolumeDir(mutate.TokenVolume), mutate.TokenFile))
	if err != nil || len(token) == 0 {
		t.Fatalf("reading the pod's token for the leak scan: %v", err)
	}
	assertNoLeak(t, output, append(values, string(token))...)
}

// dbLeases lists the lease IDs Vault holds under database/creds/orders.
func dbLeases(t *testing.T, ctx context.Context, e *vaultEnv) map[string]bool {
	t.Helper()
	const prefix = "database/creds/orders/"
	s, err := e.vault.Client().Logical().ListWithContext(ctx, "sys/leases/lookup/"+prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	if s == nil {
		return out
	}
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		out[prefix+fmt.Sprint(k)] = true
	}
	return out
}

// TestAgentLeaseRevoked: an operator revokes the agent's database lease
// (sys/leases/revoke); Vault drops the PostgreSQL user at once. The agent
// finds out at its next renewal, says so, and issues new credentials that
// log in to the real PostgreSQL.
func TestAgentLeaseRevoked(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg := harness.PostgresForTest(t)
	startAgentInjector(t, ctx, e)
	configureDatabase(t, ctx, e, pg, 10*time.Second, 10*time.Minute)
	if err := kube.Namespace(ctx, "leases", true, "leases"); err != nil {
		t.Fatal(err)
	}
	if err := e.vault.AppRole(ctx, "leases", "leases", "leases", `path "database/creds/orders" { capabilities = ["read"] }`, time.Hour); err != nil {
		t.Fatal(err)
	}
	before := dbLeases(t, ctx, e)
	createPod(t, ctx, "leases", "api", "leases", map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.PrefixSecret + "pg":      "database/creds/orders",
		mutate.PrefixTemplate + "pg":    `{{ with secret "database/creds/orders" }}{{ .Data.username }} {{ .Data.password }}{{ end }}`,
		mutate.AnnotationRenderInterval: "1s",
	})
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "leases", "api", e.shim(out))
	file := filepath.Join(run.VolumeDir(mutate.SecretsVolume), "pg")
	user1, pw1 := readCreds(t, file)
	var mine []string
	for id := range dbLeases(t, ctx, e) {
		if !before[id] {
			mine = append(mine, id)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("the pod holds %d new database leases, want 1", len(mine))
	}
	if err := e.vault.Client().Sys().RevokeWithContext(ctx, mine[0]); err != nil {
		t.Fatal(err)
	}
	var user2, pw2 string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		user2, pw2 = readCreds(t, file)
		return user2 != user1, nil
	})
	if err != nil {
		t.Fatal("the agent never replaced the revoked credentials")
	}
	login(t, ctx, pg, user2, pw2)
	old := url.URL{Scheme: "postgres", User: url.UserPassword(user1, pw1), Host: net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	if c, err := pgx.Connect(ctx, old.String()); err == nil {
		_ = c.Close(ctx)
		t.Errorf("the revoked user %s still logs in", user1)
	}
	waitReady(t, run.HealthAddr(), http.StatusOK, 30*time.Second)
	if !strings.Contains(out.String(), `"msg":"lease renewal failed; issuing a new secret","request":"read \"database/creds/orders\""`) {
		t.Errorf("the agent did not say why it re-issued:\n%s", grep(out.String(), "lease"))
	}
	assertPodNoLeak(t, run, out.String(), pw1, pw2)
}

// TestAgentRoleDeleted: the pod's Vault role is deleted and its token
// revoked while the agent runs. The agent keeps its files, reports
// not-ready naming the role and Vault's reason, retries its login no faster
// than its backoff, and recovers by itself once the role is back.
func TestAgentRoleDeleted(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	run, out, file := runDBPod(t, ctx, e, "roledel", "roledel-pw-first", nil)

	root := e.vault.Client()
	if _, err := root.Logical().DeleteWithContext(ctx, "auth/kubernetes/role/roledel"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for _, acc := range tokensOfRole(t, ctx, e, "roledel") {
		if err := root.Auth().Token().RevokeAccessorWithContext(ctx, acc); err != nil {
			t.Fatal(err)
		}
	}
	body := waitReady(t, run.HealthAddr(), http.StatusServiceUnavailable, 30*time.Second)
	for _, w := range []string{`role "roledel" at auth/kubernetes`, "invalid role name"} {
		if !strings.Contains(body, w) {
			t.Errorf("readiness %q does not say %q", body, w)
		}
	}
	// Every answer during the outage names the role, not just the first.
	vague := 0
	for time.Since(t0) < 15*time.Second {
		if got, _ := os.ReadFile(file); string(got) != "password: roledel-pw-first\n" {
			t.Fatalf("the file changed while the agent could not log in: %d bytes", len(got))
		}
		if code, body := get(t, run.HealthAddr(), "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `role "roledel"`) {
			vague++
			t.Logf("readiness during the outage: %d %q", code, body)
		}
		if !run.Container(mutate.AgentContainer).Running() {
			t.Fatal("the agent exited")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if vague > 0 {
		t.Errorf("%d readiness answers during the outage did not name the role", vague)
	}
	_, metrics := get(t, run.HealthAddr(), "/metrics")
	failures, elapsed := labelledValue(metrics, "blinkchamber_agent_logins_total", `result="failure"`), time.Since(t0)
	if bound := maxAttempts(elapsed); failures < 1 || failures > float64(bound) {
		t.Errorf("%v failed logins in %s; want at least 1 and at most %d (the backoff schedule)", failures, elapsed.Round(time.Second), bound)
	}
	if !strings.Contains(out.String(), `"msg":"vault login failed; retrying","reason":"vault refused the login: role \"roledel\" at auth/kubernetes`) {
		t.Errorf("no log line names the role:\n%s", grep(out.String(), "login"))
	}

	policy := `path "secret/data/roledel/roledel/*" { capabilities = ["read"] }`
	if err := e.vault.AppRole(ctx, "roledel", "roledel", "roledel", policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	e.put(t, ctx, "roledel/roledel/db", map[string]any{"password": "roledel-pw-after"})
	// The login backoff is at most 30 s.
	waitFile(t, file, "password: roledel-pw-after\n", 60*time.Second)
	waitReady(t, run.HealthAddr(), http.StatusOK, 30*time.Second)
	t.Logf("role deleted: %v failed logins in %s, then recovered", failures, elapsed.Round(time.Second))
	assertPodNoLeak(t, run, out.String(), "roledel-pw-first", "roledel-pw-after")
}

// TestAgentTmpfsFull: the secrets volume (a real tmpfs with the pod's size
// limit) is filled up. The next write fails; the old file stays whole and
// no temporary file is left; the failure shows in the log, the metrics and
// readiness; once space returns the new content arrives by itself.
func TestAgentTmpfsFull(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	run, out, file := runDBPod(t, ctx, e, "tmpfs", "tmpfs-pw-first", map[string]string{mutate.AnnotationVolumeSize: "64Ki"})
	dir := filepath.Dir(file)

	filler := filepath.Join(dir, "filler")
	written := fill(t, filler)
	t.Logf("filled the 64 KiB tmpfs with %d bytes", written)
	e.put(t, ctx, "tmpfs/tmpfs/db", map[string]any{"password": "tmpfs-pw-second"})
	body := waitReady(t, run.HealthAddr(), http.StatusServiceUnavailable, 30*time.Second)
	if !strings.Contains(body, "secret db") || !strings.Contains(body, "no space left on device") {
		t.Errorf("readiness does not say which file and why: %q", body)
	}
	_, metrics := get(t, run.HealthAddr(), "/metrics")
	if n := labelledValue(metrics, "blinkchamber_agent_render_errors_total", `secret="db"`); n < 1 {
		t.Errorf("render errors for db = %v, want at least 1", n)
	}
	if !strings.Contains(out.String(), "no space left on device") {
		t.Errorf("the log does not report the full volume")
	}
	if got, _ := os.ReadFile(file); string(got) != "password: tmpfs-pw-first\n" {
		t.Fatalf("the old file was damaged: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if en.Name() != "db" && en.Name() != "filler" {
			t.Errorf("left behind in the full volume: %s", en.Name())
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFile(t, file, "password: tmpfs-pw-second\n", 60*time.Second)
	waitReady(t, run.HealthAddr(), http.StatusOK, 30*time.Second)
	assertPodNoLeak(t, run, out.String(), "tmpfs-pw-first", "tmpfs-pw-second")
}

// fill writes path until its file system is full and returns the bytes
// written; it fails the test unless the end is ENOSPC.
func fill(t *testing.T, path string) int {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	n := 0
	for {
		w, err := f.Write(chunk)
		n += w
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 64<<20 {
			t.Fatal("wrote 64 MiB into a 64 KiB volume: no size limit")
		}
	}
}

// tlsVault is a real Vault whose second listener serves TLS with a
// certificate from a fresh CA, with kubernetes auth and one app role.
type tlsVault struct {
	v     *harness.Vault
	addr  string // https://127.0.0.1:<port>
	caPEM []byte
}

func startTLSVault(t *testing.T, ctx context.Context) *tlsVault {
	t.Helper()
	certDir := t.TempDir()
	caPEM, err := harness.ServingCertDir(certDir)
	if err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	v, err := harness.NewVaultServer(ctx, os.Stderr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	listener := fmt.Sprintf("listener \"tcp\" {\n  address = %q\n  tls_cert_file = %q\n  tls_key_file = %q\n}\n",
		"127.0.0.1:"+strconv.Itoa(port), filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err := v.Start(ctx, listener); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	c := v.Client()
	init, err := c.Sys().InitWithContext(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(init.RootToken)
	if _, err := c.Sys().UnsealWithContext(ctx, init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		h, err := c.Sys().HealthWithContext(ctx)
		return err == nil && !h.Sealed && !h.Standby, nil
	})
	if err != nil {
		t.Fatal("the TLS Vault never became active")
	}
	if err := c.Sys().MountWithContext(ctx, "secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := c.KVv2("secret").Put(ctx, "tls/tls/db", map[string]any{"password": "tls-vault-pw"})
		return err == nil, nil
	})
	if err != nil {
		t.Fatal("KV v2 never accepted a write")
	}
	if err := v.ConfigureKubernetesAuth(ctx, kube); err != nil {
		t.Fatal(err)
	}
	if err := v.AppRole(ctx, "tls", "tls", "tls", `path "secret/data/tls/tls/*" { capabilities = ["read"] }`, time.Hour); err != nil {
		t.Fatal(err)
	}
	return &tlsVault{v: v, addr: "https://127.0.0.1:" + strconv.Itoa(port), caPEM: caPEM}
}

// agentProcess is the agent binary run directly with a config this test
// writes (the injector has no switch for skipping verification).
type agentProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	health string
	dir    string
}

func startAgentProcess(t *testing.T, e *vaultEnv, mode agent.Mode, v agent.Vault, tokenFile string, env ...string) *agentProcess {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{out: &syncBuffer{}, health: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	cfg := agent.Config{Mode: mode, Vault: v, TokenFile: tokenFile, SecretsDir: p.dir,
		RenderInterval: agent.Duration{Duration: time.Second}, HealthAddr: p.health,
		Secrets: []agent.Secret{{Name: "db", Template: `{{ with secret "secret/data/tls/tls/db" }}{{ .Data.data.password }}{{ end }}`, File: "db", Perms: 0o400}}}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(e.agentBin, "run")
	p.cmd.Env = append([]string{agent.ConfigEnv + "=" + enc}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

// TestAgentVerifiesVaultCertificate: against a real Vault on TLS with a
// self-signed CA, the agent refuses the certificate without the CA (even
// with VAULT_SKIP_VERIFY=true in its environment) and says why, works with
// the CA, and works when told to skip verification, warning at every start.
func TestAgentVerifiesVaultCertificate(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kube.Namespace(ctx, "tls", false, "tls"); err != nil {
		t.Fatal(err)
	}
	tv := startTLSVault(t, ctx)
	tokenFile, saToken := saTokenFile(t, ctx, "tls", "tls")
	base := agent.Vault{Address: tv.addr, AuthPath: "auth/kubernetes", Role: "tls"}
	const warning = "WARNING: Vault's TLS certificate is NOT verified"
	var outputs []string

	for _, env := range [][]string{nil, {"VAULT_SKIP_VERIFY=true"}} {
		t.Run(fmt.Sprintf("no CA, environment %v: refused", env), func(t *testing.T) {
			p := startAgentProcess(t, e, agent.ModeNative, base, tokenFile, env...)
			body := waitReady(t, p.health, http.StatusServiceUnavailable, 30*time.Second)
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
				_, body = get(t, p.health, "/readyz")
				return strings.Contains(body, "certificate signed by unknown authority"), nil
			})
			if err != nil {
				t.Errorf("readiness never named the certificate problem: %q", body)
			}
			if _, err := os.Stat(filepath.Join(p.dir, "db")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was rendered through an unverified connection (%v)", err)
			}
			if strings.Contains(p.out.String(), warning) {
				t.Errorf("warned about skipping verification, which it did not do")
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
			outputs = append(outputs, p.out.String())
		})
	}
	runInit := func(t *testing.T, v agent.Vault) string {
		t.Helper()
		p := startAgentProcess(t, e, agent.ModeInit, v, tokenFile)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("init agent: %v\n%s", err, p.out.String())
		}
		if got, _ := os.ReadFile(filepath.Join(p.dir, "db")); string(got) != "tls-vault-pw" {
			t.Fatalf("rendered %q", got)
		}
		outputs = append(outputs, p.out.String())
		return p.out.String()
	}
	t.Run("with the CA: works, no warning", func(t *testing.T) {
		v := base
		v.CACert = string(tv.caPEM)
		if out := runInit(t, v); strings.Contains(out, warning) {
			t.Errorf("warned while verifying")
		}
	})
	t.Run("skip verification: works, warns at every start", func(t *testing.T) {
		v := base
		v.TLSSkipVerify = true
		for i := range 2 {
			if out := runInit(t, v); strings.Count(out, warning) != 1 {
				t.Errorf("start %d: %d warnings, want 1:\n%s", i+1, strings.Count(out, warning), out)
			}
		}
	})
	assertNoLeak(t, strings.Join(outputs, "\n"), "tls-vault-pw", saToken)
}
