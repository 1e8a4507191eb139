package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

const (
	fleetNS = "fleet"
	fleetSA = "app"
	// identityWorkers bounds concurrent pod and TokenRequest calls while a
	// fleet is prepared (not measured).
	identityWorkers = 16
)

// env is what every fleet size shares: one Vault, one API server, the
// agent binary.
type env struct {
	kube     *harness.Kube
	vault    *harness.Vault
	cs       kubernetes.Interface // unthrottled, for preparing fleets
	dir      string
	agentBin string
	// pids of the servers, for their CPU.
	vaultPID, apiPID, etcdPID int
}

func setup(ctx context.Context, o options) (*env, error) {
	e := &env{}
	var err error
	if e.dir, err = os.MkdirTemp("", "fleetbench-"); err != nil {
		return nil, err
	}
	if err := e.buildAgent(ctx, o.agentSrc); err != nil {
		e.close()
		return nil, err
	}
	if e.kube, err = harness.StartKube(ctx, os.Stderr); err != nil {
		e.close()
		return nil, err
	}
	if e.vault, err = harness.StartVaultDev(ctx, os.Stderr); err != nil {
		e.close()
		return nil, err
	}
	if err := e.prepare(ctx, o); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// buildAgent builds cmd/agent of the module in src (this repository when
// empty) as the Dockerfile does: static, stripped.
func (e *env) buildAgent(ctx context.Context, src string) error {
	root := src
	if root == "" {
		var err error
		if root, err = toolchain.RepoRoot(); err != nil {
			return err
		}
	}
	e.agentBin = filepath.Join(e.dir, "blinkchamber-agent")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", e.agentBin, "./cmd/agent")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the agent: %w\n%s", err, out)
	}
	return nil
}

// prepare sets up kubernetes auth, the role, the secrets, an unthrottled
// client and finds the server processes.
func (e *env) prepare(ctx context.Context, o options) error {
	if err := e.vault.ConfigureKubernetesAuth(ctx, e.kube); err != nil {
		return err
	}
	if err := e.kube.Namespace(ctx, fleetNS, false, fleetSA); err != nil {
		return err
	}
	policy := `path "secret/data/fleet/*" { capabilities = ["read"] }`
	if err := e.vault.AppRole(ctx, fleetSA, fleetNS, fleetSA, policy, o.tokenTTL); err != nil {
		return err
	}
	for i := range o.secrets {
		_, err := e.vault.Client().KVv2("secret").Put(ctx, "fleet/"+secretName(i), map[string]any{
			"username": "user-" + secretName(i), "password": fmt.Sprintf("fleet-password-%d", i),
		})
		if err != nil {
			return fmt.Errorf("writing secret %s: %w", secretName(i), err)
		}
	}
	// client-go's default 5 requests/s would make preparing 500 pods take
	// minutes; preparation is not what is measured.
	cfg := rest.CopyConfig(e.kube.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	var err error
	if e.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("building clientset: %w", err)
	}
	return e.findServers()
}

// findServers finds the pids of Vault, kube-apiserver and etcd, all
// children of this process.
func (e *env) findServers() error {
	for _, s := range []struct {
		comm string
		pid  *int
	}{{"vault", &e.vaultPID}, {"kube-apiserver", &e.apiPID}, {"etcd", &e.etcdPID}} {
		pids, err := procstat.Children(os.Getpid(), s.comm)
		if err != nil {
			return err
		}
		if len(pids) != 1 {
			return fmt.Errorf("want one %s process started here, found %d", s.comm, len(pids))
		}
		*s.pid = pids[0]
	}
	return nil
}

// identities creates n pods and a token bound to each, audience vault,
// written to dir/<i>/token. Pods are named after the fleet size so every
// size has its own.
func (e *env) identities(ctx context.Context, size int, dirs []string) error {
	return each(len(dirs), identityWorkers, func(i int) error {
		return e.identity(ctx, fmt.Sprintf("f%d-%04d", size, i), dirs[i])
	})
}

func (e *env) identity(ctx context.Context, name, dir string) error {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fleetNS},
		Spec: corev1.PodSpec{ServiceAccountName: fleetSA, Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}}
	pod, err := e.cs.CoreV1().Pods(fleetNS).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pod %s: %w", name, err)
	}
	tr, err := e.cs.CoreV1().ServiceAccounts(fleetNS).CreateToken(ctx, fleetSA, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: ptr.To(int64(3600)),
			BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for pod %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "token"), []byte(tr.Status.Token), 0o600)
}

func (e *env) close() {
	if e.vault != nil {
		_ = e.vault.Stop()
	}
	if e.kube != nil {
		_ = e.kube.Stop()
	}
	_ = os.RemoveAll(e.dir)
}

func secretName(i int) string { return fmt.Sprintf("s%02d", i) }
