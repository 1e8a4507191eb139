package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

var cliOnce struct {
	once sync.Once
	bin  string
	err  error
}

// cliBinary builds cmd/blinkchamber once per test run.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliOnce.once.Do(func() {
		repo, err := toolchain.RepoRoot()
		if err != nil {
			cliOnce.err = err
			return
		}
		dir, err := os.MkdirTemp("", "blinkchamber-cli-")
		if err != nil {
			cliOnce.err = err
			return
		}
		cliOnce.bin = filepath.Join(dir, "blinkchamber")
		cmd := exec.Command("go", "build", "-o", cliOnce.bin, "./cmd/blinkchamber")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			cliOnce.err = fmt.Errorf("building blinkchamber: %w\n%s", err, out)
		}
	})
	if cliOnce.err != nil {
		t.Fatal(cliOnce.err)
	}
	return cliOnce.bin
}

// bootEnv is one uninitialised Vault, a kubeconfig and a config file for it.
type bootEnv struct {
	vault      *harness.Vault
	dir        string
	config     string
	kubeconfig string
	keys       string
	allOutput  bytes.Buffer
}

func newBootEnv(t *testing.T, ctx context.Context, prefix string) *bootEnv {
	t.Helper()
	e := &bootEnv{dir: t.TempDir()}
	v, err := harness.StartVaultServer(ctx, os.Stderr, filepath.Join(e.dir, "vault"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	e.vault = v
	e.kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := kube.WriteKubeconfig(e.kubeconfig); err != nil {
		t.Fatal(err)
	}
	e.keys = filepath.Join(e.dir, "keys", "vault-keys.json")
	e.config = filepath.Join(e.dir, "blinkchamber.yaml")
	cfg := fmt.Sprintf(`environment: development
vault:
  address: %s
  seal:
    shamir:
      shares: 3
      threshold: 2
      keyStore:
        type: file
        path: %s
  audit:
    type: file
    path: %s
  kubernetesAuth:
    reviewerNamespace: %s-system
apps:
  - name: shop
    namespace: %s-shop
    serviceAccount: shop
    secrets:
      - name: db
        data:
          username: shop
        generate:
          password:
            length: 24
  - name: billing
    namespace: %s-billing
    serviceAccount: billing
    secrets:
      - name: api
        generate:
          key:
            length: 32
            charset: hex
`, v.Addr(), e.keys, filepath.Join(e.dir, "audit.log"), prefix, prefix, prefix)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs the CLI and returns its combined output and exit code.
func (e *bootEnv) run(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, cliBinary(t), append([]string{"--config", e.config, "--kubeconfig", e.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	e.allOutput.Write(out)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running blinkchamber %v: %v", args, err)
	return "", -1
}

func (e *bootEnv) mustRun(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, code := e.run(t, ctx, args...)
	if code != 0 {
		t.Fatalf("blinkchamber %v exited %d:\n%s", args, code, out)
	}
	return out
}

const managedPhases = "base vault secrets"

func TestBootstrapDevelopment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e := newBootEnv(t, ctx, "boot")
	phases := strings.Fields(managedPhases)
	scan := harness.NewLeakScan(kube)
	scan.Processes("blinkchamber", "blinkchamber-agent")

	t.Run("plan on a fresh Vault changes nothing", func(t *testing.T) {
		out := e.mustRun(t, ctx, append([]string{"plan"}, phases...)...)
		if !strings.Contains(out, "plan    initialise: initialise (shamir, 3 shares, threshold 2)") || !strings.Contains(out, "WARNING: whoever can read file ") {
			t.Errorf("plan does not show the init step:\n%s", out)
		}
		if init, _ := e.vault.Client().Sys().InitStatusWithContext(ctx); init {
			t.Fatal("plan initialised Vault")
		}
	})

	t.Run("bootstrap provisions everything", func(t *testing.T) {
		out := e.mustRun(t, ctx, append([]string{"bootstrap"}, phases...)...)
		t.Log(out)
		st, err := os.Stat(e.keys)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key store %v mode %v, want 0600", err, st)
		}
		if sealed, err := e.vault.Sealed(ctx); err != nil || sealed {
			t.Fatalf("Vault sealed=%v err=%v after bootstrap", sealed, err)
		}
	})

	t.Run("second run changes nothing", func(t *testing.T) {
		out := e.mustRun(t, ctx, append([]string{"bootstrap"}, phases...)...)
		if !strings.Contains(out, "done: 0 changed") {
			t.Errorf("second bootstrap changed something:\n%s", out)
		}
		out = e.mustRun(t, ctx, "--output", "json", "plan", "base", "vault", "secrets")
		if !strings.Contains(out, `"planned": 0`) {
			t.Errorf("plan after bootstrap is not empty:\n%s", out)
		}
	})

	root := rootClient(t, e)
	t.Run("drift is shown by plan and repaired by bootstrap", func(t *testing.T) {
		if err := root.Sys().PutPolicyWithContext(ctx, "blinkchamber-boot-shop-shop", `path "*" { capabilities = ["sudo","read"] }`); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().DeleteWithContext(ctx, "auth/kubernetes/role/billing"); err != nil {
			t.Fatal(err)
		}
		out := e.mustRun(t, ctx, append([]string{"plan"}, phases...)...)
		for _, want := range []string{"plan    policy blinkchamber-boot-shop-shop: repair", "plan    kubernetes role billing: create"} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(out, "plan: 2 to change") {
			t.Errorf("plan should count exactly two changes:\n%s", out)
		}
		out = e.mustRun(t, ctx, append([]string{"bootstrap"}, phases...)...)
		if !strings.Contains(out, "done: 2 changed") {
			t.Errorf("bootstrap should repair exactly two things:\n%s", out)
		}
	})

	t.Run("a reviewer token near its expiry is refreshed", func(t *testing.T) {
		soon := "blinkchamber: reviewer token expires " + time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)
		if err := root.Sys().TuneMountWithContext(ctx, "auth/kubernetes", vaultapi.MountConfigInput{Description: &soon}); err != nil {
			t.Fatal(err)
		}
		out := e.mustRun(t, ctx, append([]string{"plan"}, phases...)...)
		if !strings.Contains(out, "repair token_reviewer_jwt (expiring)") {
			t.Fatalf("plan does not refresh an expiring reviewer token:\n%s", out)
		}
		e.mustRun(t, ctx, append([]string{"bootstrap"}, phases...)...)
		out = e.mustRun(t, ctx, append([]string{"plan"}, phases...)...)
		if !strings.Contains(out, "plan: 0 to change") {
			t.Errorf("after the refresh:\n%s", out)
		}
	})

	var password string
	t.Run("generated secrets are never overwritten", func(t *testing.T) {
		kv, err := root.KVv2("secret").Get(ctx, "boot-shop/shop/db")
		if err != nil {
			t.Fatal(err)
		}
		password, _ = kv.Data["password"].(string)
		if len(password) != 24 || kv.Data["username"] != "shop" {
			t.Fatalf("secret data: username %v, password of %d characters", kv.Data["username"], len(password))
		}
		e.mustRun(t, ctx, append([]string{"bootstrap"}, phases...)...)
		again, _ := root.KVv2("secret").Get(ctx, "boot-shop/shop/db")
		if again.Data["password"] != password {
			t.Fatal("a second bootstrap changed a generated password")
		}
	})

	t.Run("secrets rotate replaces the generated value", func(t *testing.T) {
		e.mustRun(t, ctx, "secrets", "rotate", "shop/db")
		kv, _ := root.KVv2("secret").Get(ctx, "boot-shop/shop/db")
		if kv.Data["password"] == password || kv.Data["username"] != "shop" {
			t.Fatal("rotate did not replace the password, or touched the username")
		}
		scan.Secret("generated password before rotation", password)
		password, _ = kv.Data["password"].(string)
	})

	t.Run("a pod of the bootstrapped app reads its own secret and not another app's", func(t *testing.T) {
		env := agentEnv(t) // the agent binary
		startInjector(t, ctx, e.vault.Addr(), "blinkchamber-e2e-boot", nil)
		createPod(t, ctx, "boot-shop", "web", "shop", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/boot-shop/shop/db",
		})
		run := kube.RunPodForTest(t, "boot-shop", "web", env.shim(nil))
		got, err := os.ReadFile(filepath.Join(run.VolumeDir(mutate.SecretsVolume), "db"))
		if err != nil || string(got) != "password: "+password+"\nusername: shop\n" {
			t.Fatalf("rendered secret wrong (%v)", err)
		}
		createPod(t, ctx, "boot-shop", "thief", "shop", map[string]string{
			mutate.AnnotationInject: "true", mutate.AnnotationMode: string(mutate.ModeInitOnly),
			mutate.PrefixSecret + "api": "secret/data/boot-billing/billing/api",
		})
		_, err = kube.RunPod(ctx, "boot-shop", "thief", env.shim(nil))
		var ce *harness.ContainerError
		if !errors.As(err, &ce) || !strings.Contains(ce.Output, "secret/data/boot-billing/billing/api") || !strings.Contains(ce.Output, "permission denied") {
			t.Fatalf("reading another app's path: %v", err)
		}
	})

	t.Run("restart seals Vault; unseal unseals it from the key store", func(t *testing.T) {
		if err := e.vault.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if sealed, _ := e.vault.Sealed(ctx); !sealed {
			t.Fatal("Vault came back unsealed: the test proves nothing")
		}
		e.mustRun(t, ctx, "unseal")
		if sealed, _ := e.vault.Sealed(ctx); sealed {
			t.Fatal("still sealed after blinkchamber unseal")
		}
		out := e.mustRun(t, ctx, "status")
		if !strings.Contains(out, "in sync") {
			t.Errorf("status after unseal:\n%s", out)
		}
	})

	t.Run("the apps phase installs the chart with the Helm SDK", func(t *testing.T) {
		out, code := e.run(t, ctx, "--chart", filepath.Join(t.TempDir(), "nowhere"), "bootstrap", "apps")
		if code != 1 || !strings.Contains(out, "app stack chart is missing") {
			t.Errorf("a missing chart: exit %d:\n%s", code, out)
		}
		chart := filepath.Join(repoRoot(t), "charts", "blinkchamber")
		// The release's webhook (failurePolicy Fail, no injector pod can run
		// here) must not outlive this test: other tests create pods.
		t.Cleanup(func() { uninstallRelease(t, e.kubeconfig, "blinkchamber", "blinkchamber") })
		out = e.mustRun(t, ctx, "--chart", chart, "bootstrap", "apps")
		if !strings.Contains(out, "changed release blinkchamber/blinkchamber: install") {
			t.Errorf("apps phase:\n%s", out)
		}
		out = e.mustRun(t, ctx, "--chart", chart, "bootstrap", "apps")
		if !strings.Contains(out, "done: 0 changed") {
			t.Errorf("second apps phase changed something:\n%s", out)
		}
	})

	t.Run("no secret value, key or token in the output", func(t *testing.T) {
		keys := readKeys(t, e.keys)
		assertNoLeak(t, e.allOutput.String(), append(keys, password)...)
	})

	t.Run("no secret value, key or token in any Event, annotation, metric or argument list", func(t *testing.T) {
		for i, k := range readKeys(t, e.keys) {
			scan.Secret(fmt.Sprintf("key store entry %d", i+1), k)
		}
		scan.Secret("generated password", password)
		scan.Output("bootstrap output", &e.allOutput)
		scan.Namespaces("boot-shop", "boot-billing", "boot-system")
		scan.Gatherer("injector /metrics", crmetrics.Registry)
		if err := scan.Check(ctx); err != nil {
			t.Error(err)
		}
		if scan.Sampled() == 0 {
			t.Error("the leak scan saw no blinkchamber process: argument lists were not checked")
		}
	})
}

// rootClient is a Vault client with the root token from the key store.
func rootClient(t *testing.T, e *bootEnv) *vaultapi.Client {
	t.Helper()
	c, err := e.vault.Client().Clone()
	if err != nil {
		t.Fatal(err)
	}
	keys := readKeys(t, e.keys)
	c.SetToken(keys[len(keys)-1])
	return c
}

// readKeys returns every unseal key and, last, the root token.
func readKeys(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		UnsealKeysB64 []string `json:"unsealKeysB64"`
		RootToken     string   `json:"rootToken"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.RootToken == "" || len(k.UnsealKeysB64) == 0 {
		t.Fatalf("key store content: %v", err)
	}
	return append(k.UnsealKeysB64, k.RootToken)
}

// TestBootstrapInterruptedAfterInit kills bootstrap right after Vault was
// initialised and runs it again: it completes, and the keys are the ones
// first stored.
func TestBootstrapInterruptedAfterInit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := newBootEnv(t, ctx, "intr")
	cmd := exec.CommandContext(ctx, cliBinary(t), "--config", e.config, "--kubeconfig", e.kubeconfig, "bootstrap", "base", "vault", "secrets")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "changed initialise") {
			_ = cmd.Process.Kill()
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("bootstrap never reported the init step")
	}
	first := readKeys(t, e.keys)
	out := e.mustRun(t, ctx, "bootstrap", "base", "vault", "secrets")
	if strings.Contains(out, "changed initialise") {
		t.Fatalf("the rerun initialised again:\n%s", out)
	}
	if again := readKeys(t, e.keys); strings.Join(again, ",") != strings.Join(first, ",") {
		t.Fatal("the keys changed after the interrupted run")
	}
	if sealed, _ := e.vault.Sealed(ctx); sealed {
		t.Fatal("Vault is sealed after the rerun")
	}
}

// TestBootstrapStagingTransit: two real Vaults; bootstrap creates the
// transit key on the first, the second starts with the seal stanza
// `blinkchamber seal-config` prints, bootstrap initialises it (recovery
// keys stored) and it unseals itself, also after a restart.
func TestBootstrapStagingTransit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	transit := harness.VaultForTest(t)
	tokenFile := filepath.Join(dir, "transit-token")
	if err := os.WriteFile(tokenFile, []byte(transit.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &bootEnv{dir: dir, config: filepath.Join(dir, "staging.yaml"), kubeconfig: filepath.Join(dir, "kubeconfig"),
		keys: filepath.Join(dir, "keys", "recovery.json")}
	if err := kube.WriteKubeconfig(e.kubeconfig); err != nil {
		t.Fatal(err)
	}
	// The managed Vault's address is known before it starts: bootstrap's
	// base phase prepares the transit key, then waits for it.
	managedDir := filepath.Join(dir, "managed")
	cfg := fmt.Sprintf(`environment: staging
vault:
  address: %s
  seal:
    transit:
      address: %s
      key: autounseal
      tokenFile: %s
      keyStore:
        type: file
        path: %s
  audit:
    type: none
  kubernetesAuth:
    reviewerNamespace: stg-system
apps:
  - name: api
    namespace: stg-api
    secrets:
      - name: token
        generate:
          value: {}
`, "PLACEHOLDER", transit.Addr(), tokenFile, e.keys)
	managed, err := harness.NewVaultServer(ctx, os.Stderr, managedDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg = strings.Replace(cfg, "PLACEHOLDER", managed.Addr(), 1)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := exec.CommandContext(ctx, cliBinary(t), "--config", e.config, "--kubeconfig", e.kubeconfig, "bootstrap", "base")
	var baseOut bytes.Buffer
	base.Stdout, base.Stderr = &baseOut, &baseOut
	if err := base.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the key, as a crash-looping Vault pod would.
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := transit.Client().Logical().ReadWithContext(ctx, "transit/keys/autounseal")
		if err == nil && s != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bootstrap never created the transit key:\n%s", baseOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	stanza := e.mustRun(t, ctx, "seal-config")
	if !strings.Contains(stanza, `seal "transit"`) || strings.Contains(stanza, transit.RootToken) {
		t.Fatalf("seal-config:\n%s", stanza)
	}
	// The token reaches the server the way the stanza says: not in the file.
	if err := managed.Start(ctx, stanza, "VAULT_TOKEN="+transit.RootToken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = managed.Stop() })
	if err := base.Wait(); err != nil {
		t.Fatalf("bootstrap base: %v\n%s", err, baseOut.String())
	}
	out := e.mustRun(t, ctx, "bootstrap", "vault", "secrets")
	if !strings.Contains(out, "unseal: unsealed (transit seal)") {
		t.Errorf("Vault did not auto-unseal through transit:\n%s", out)
	}
	if err := managed.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		if sealed, err := managed.Sealed(ctx); err == nil && !sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the managed Vault did not unseal itself after a restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	keys := readKeys(t, e.keys)
	e.allOutput.Write(baseOut.Bytes())
	assertNoLeak(t, e.allOutput.String(), append(keys, transit.RootToken)...)
}

// TestBootstrapPostgres: bootstrap sets up the database engine for an app
// with `postgres`; the credentials Vault then issues log in to the real
// PostgreSQL, and a second run changes nothing.
func TestBootstrapPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg := harness.PostgresForTest(t)
	e := newBootEnv(t, ctx, "pgb")
	pwFile := filepath.Join(e.dir, "pg-password")
	if err := os.WriteFile(pwFile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	// The PostgreSQL superuser password is imported into Vault as the pg
	// app's secret, and the shop app's database connection takes it from
	// there (passwordFromSecret), as the chart wires PostgreSQL and Zitadel.
	extra := fmt.Sprintf(`    postgres:
      connection:
        host: %s
        port: %d
        username: %s
        passwordFromSecret: pg/admin#password
      roles:
        - name: pgb-orders
          defaultTTL: 10m
          maxTTL: 1h
`, pg.Host, pg.Port, pg.SuperUser)
	pgApp := fmt.Sprintf(`  - name: pg
    namespace: pgb-db
    secrets:
      - name: admin
        fromFile:
          password: %s
`, pwFile)
	// The shop app (first in the config) gets the database.
	withDB := strings.Replace(string(cfg), "    serviceAccount: shop\n", "    serviceAccount: shop\n"+extra, 1) + pgApp
	if err := os.WriteFile(e.config, []byte(withDB), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, ctx, "bootstrap", "base", "vault", "secrets")
	out := e.mustRun(t, ctx, "bootstrap", "base", "vault", "secrets")
	if !strings.Contains(out, "done: 0 changed") {
		t.Errorf("second run changed something:\n%s", out)
	}
	root := rootClient(t, e)
	// The app's own policy grants its role's credentials.
	policy, err := root.Sys().GetPolicyWithContext(ctx, "blinkchamber-pgb-shop-shop")
	if err != nil || !strings.Contains(policy, `"database/creds/pgb-orders"`) {
		t.Fatalf("app policy lacks its database role: %v\n%s", err, policy)
	}
	s, err := root.Logical().ReadWithContext(ctx, "database/creds/pgb-orders")
	if err != nil || s == nil {
		t.Fatalf("reading database/creds/pgb-orders: %v", err)
	}
	user, _ := s.Data["username"].(string)
	pass, _ := s.Data["password"].(string)
	login(t, ctx, pg, user, pass)
	assertNoLeak(t, e.allOutput.String(), pg.Password)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
