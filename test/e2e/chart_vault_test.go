package e2e

import (
	"context"
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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// kubeletVar is a $(NAME) reference in a container's env value.
var kubeletVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// containerEnv is the environment the kubelet gives c, with the pod IP
// podIP: fieldRef status.podIP resolved, $(NAME) expanded from variables
// defined earlier in the list and left as written otherwise, as the
// kubelet does. Other valueFrom sources are not needed here.
func containerEnv(t *testing.T, c corev1.Container, podIP string) []string {
	t.Helper()
	seen := map[string]string{}
	var env []string
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			v = podIP
		case e.ValueFrom != nil:
			t.Fatalf("env %s: a valueFrom this test does not resolve", e.Name)
		default:
			v = kubeletVar.ReplaceAllStringFunc(v, func(ref string) string {
				if val, ok := seen[ref[2:len(ref)-1]]; ok {
					return val
				}
				return ref
			})
		}
		seen[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	return env
}

// TestChartVaultCommandRunsVault runs the toolchain's Vault binary exactly
// as the chart's StatefulSet says, with the rendered config (HA on raft),
// command and environment, found through PATH in a directory holding
// nothing but it (no shell anywhere): it starts, initialises and unseals,
// and advertises the pod IP it got through VAULT_API_ADDR and
// VAULT_CLUSTER_ADDR. Only what cannot exist outside a pod is changed:
// the config's directory, the data path, the listener addresses and the
// retry_join address (a cluster DNS name).
func TestChartVaultCommandRunsVault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := toolchain.Vault.Ensure(ctx, repo, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	objs := renderWith(t, loadChart(t), "development", func(user map[string]any) {
		v := valuesMap(user, "vault")
		v["mode"], v["replicas"] = "ha", 1
	})
	var c corev1.Container
	var hcl string
	for _, o := range objs {
		switch {
		case o.GetKind() == "StatefulSet" && o.GetName() == "bc-vault":
			var sts appsv1.StatefulSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sts); err != nil {
				t.Fatal(err)
			}
			c = sts.Spec.Template.Spec.Containers[0]
		case o.GetKind() == "ConfigMap" && o.GetName() == "bc-vault-config":
			hcl, _, _ = unstructured.NestedString(o.Object, "data", "vault.hcl")
		}
	}
	if len(c.Command) == 0 || strings.Contains(c.Command[0], "/") || !strings.Contains(hcl, `storage "raft"`) {
		t.Fatalf("command %q (want a name looked up on PATH), raft config %v", c.Command, strings.Contains(hcl, `storage "raft"`))
	}

	dir := t.TempDir()
	pathDir, configDir, dataDir := filepath.Join(dir, "bin"), filepath.Join(dir, "config"), filepath.Join(dir, "data")
	for _, d := range []string{pathDir, configDir, dataDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(pathDir, "vault")); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	clusterPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens there: the retry_join to the StatefulSet's DNS name
	// is refused at once instead of asking a DNS server about it.
	deadPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer(
		`"/vault/data"`, strconv.Quote(dataDir),
		`"[::]:8200"`, strconv.Quote("127.0.0.1:"+strconv.Itoa(port)),
		`"[::]:8201"`, strconv.Quote("127.0.0.1:"+strconv.Itoa(clusterPort)),
		`"http://bc-vault-0.bc-vault-internal:8200"`, strconv.Quote("http://127.0.0.1:"+strconv.Itoa(deadPort)),
	).Replace(hcl)
	if strings.Contains(local, "bc-vault-internal") {
		t.Fatalf("a cluster DNS name is left in the config:\n%s", local)
	}
	if err := os.WriteFile(filepath.Join(configDir, "vault.hcl"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(c.Command)-1)
	for i, a := range c.Command[1:] {
		args[i] = strings.Replace(a, "/vault/config/", configDir+"/", 1)
	}

	// The pod IP: an address of this machine that is not the listener's,
	// so that the advertised addresses can only have come from the env.
	const podIP = "127.0.0.7"
	// PATH as an image would set it; the command's name is looked up there.
	env := append(containerEnv(t, c, podIP), "PATH="+pathDir, "HOME="+dir)
	lookedUp := filepath.Join(pathDir, c.Command[0])
	logFile, err := os.Create(filepath.Join(dir, "vault.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(lookedUp, args...)
	cmd.Args[0] = c.Command[0]
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, "/", logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	fail := func(format string, a ...any) {
		t.Helper()
		log, _ := os.ReadFile(logFile.Name())
		t.Fatalf(format+"\nVault's log:\n%s", append(a, log)...)
	}

	cfg := vaultapi.DefaultConfig()
	cfg.Address, cfg.MaxRetries = "http://127.0.0.1:"+strconv.Itoa(port), 0
	vc, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.ClearToken()
	for {
		if _, err := vc.Sys().SealStatusWithContext(ctx); err == nil {
			break
		}
		select {
		case err := <-exited:
			fail("vault exited: %v", err)
		case <-ctx.Done():
			fail("vault did not answer")
		case <-time.After(200 * time.Millisecond):
		}
	}
	init, err := vc.Sys().InitWithContext(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		fail("init: %v", err)
	}
	if _, err := vc.Sys().UnsealWithContext(ctx, init.KeysB64[0]); err != nil {
		fail("unseal: %v", err)
	}
	want := vaultapi.LeaderResponse{LeaderAddress: "http://" + podIP + ":8200", LeaderClusterAddress: "https://" + podIP + ":8201"}
	// Raft elects this single node within seconds of the unseal.
	deadline := time.After(30 * time.Second)
	for {
		l, err := vc.Sys().LeaderWithContext(ctx)
		if err == nil && l.IsSelf && l.LeaderAddress == want.LeaderAddress && l.LeaderClusterAddress == want.LeaderClusterAddress {
			return
		}
		select {
		case <-deadline:
			fail("sys/leader: %+v (%v), want this node leading at %s, cluster %s", l, err, want.LeaderAddress, want.LeaderClusterAddress)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
