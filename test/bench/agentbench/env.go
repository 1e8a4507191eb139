package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

type agentKind string

const (
	ours       agentKind = "blinkchamber-agent"
	vaultAgent agentKind = "vault agent"
)

const (
	benchNS = "bench"
	benchSA = "app"
)

type env struct {
	kube  *harness.Kube
	vault *harness.Vault
	dir   string
	// outRoot holds the rendered files: a tmpfs, as the pod's emptyDir
	// with medium Memory is, so that both agents' writes cost what they
	// cost in a pod (an fsync on tmpfs does no I/O).
	outRoot   string
	outTmpfs  bool
	agentBin  string
	vaultBin  string
	tokenFile string
}

func setup(ctx context.Context) (*env, error) {
	e := &env{}
	var err error
	if e.dir, err = os.MkdirTemp("", "agentbench-"); err != nil {
		return nil, err
	}
	if e.outRoot, e.outTmpfs, err = secretsRoot(e.dir); err != nil {
		e.close()
		return nil, err
	}
	if e.vaultBin, err = toolchain.Vault.Ensure(ctx, repoRoot(), os.Stderr); err != nil {
		e.close()
		return nil, err
	}
	e.agentBin = filepath.Join(e.dir, "blinkchamber-agent")
	// Built exactly as the Dockerfile builds it: static, stripped.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", e.agentBin, "./cmd/agent")
	build.Dir, build.Env = repoRoot(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the agent: %w\n%s", err, out)
	}
	if e.kube, err = harness.StartKube(ctx, os.Stderr); err != nil {
		return nil, err
	}
	if e.vault, err = harness.StartVaultDev(ctx, os.Stderr); err != nil {
		e.close()
		return nil, err
	}
	if err := e.identity(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// identity creates the app's ServiceAccount, a pod to bind its token to,
// the Vault role, and writes a TokenRequest token both agents log in with.
func (e *env) identity(ctx context.Context) error {
	if err := e.vault.ConfigureKubernetesAuth(ctx, e.kube); err != nil {
		return err
	}
	if err := e.kube.Namespace(ctx, benchNS, false, benchSA); err != nil {
		return err
	}
	policy := `path "secret/data/bench/*" { capabilities = ["read"] }`
	if err := e.vault.AppRole(ctx, benchSA, benchNS, benchSA, policy, time.Hour); err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: benchNS},
		Spec: corev1.PodSpec{ServiceAccountName: benchSA, Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}}
	if err := e.kube.Client.Create(ctx, pod); err != nil {
		return err
	}
	tr, err := e.kube.Clientset.CoreV1().ServiceAccounts(benchNS).CreateToken(ctx, benchSA, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: ptr.To(int64(3600)),
			BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest: %w", err)
	}
	e.tokenFile = filepath.Join(e.dir, "token")
	return os.WriteFile(e.tokenFile, []byte(tr.Status.Token), 0o600)
}

func (e *env) writeSecrets(ctx context.Context, n int) error {
	for i := range n {
		_, err := e.vault.Client().KVv2("secret").Put(ctx, "bench/"+secretName(i), map[string]any{
			"username": "user-" + secretName(i), "password": fmt.Sprintf("bench-password-%d", i),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *env) close() {
	if e.vault != nil {
		_ = e.vault.Stop()
	}
	if e.kube != nil {
		_ = e.kube.Stop()
	}
	_ = os.RemoveAll(e.dir)
	if e.outRoot != "" {
		_ = os.RemoveAll(e.outRoot)
	}
}

// tmpfsMagic is TMPFS_MAGIC from statfs(2).
const tmpfsMagic = 0x01021994

// secretsRoot makes the directory the agents render into: on /dev/shm when
// that is a tmpfs, else under fallback (and the report says so).
func secretsRoot(fallback string) (string, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic {
		dir, err := os.MkdirTemp("/dev/shm", "agentbench-")
		return dir, err == nil, err
	}
	dir := filepath.Join(fallback, "out")
	return dir, false, os.MkdirAll(dir, 0o755)
}

func (e *env) sizes() map[string]int64 {
	return map[string]int64{"agent": fileSize(e.agentBin), "vault": fileSize(e.vaultBin)}
}

// template renders a KV v2 secret at path under secret/, the same for both
// agents.
func template(path string) string {
	return `{{ with secret "secret/data/` + path + `" }}username={{ .Data.data.username }}
password={{ .Data.data.password }}
{{ end }}`
}

// benchPaths are the KV paths of the first n bench secrets.
func benchPaths(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "bench/" + secretName(i)
	}
	return out
}

type proc struct {
	cmd      *exec.Cmd
	started  time.Time
	dir      string // the rendered files
	logPath  string
	requests *atomic.Int64
	proxy    *http.Server
	exited   chan struct{} // closed when the process has ended
}

// start runs one agent rendering paths[i] to file secretName(i), talking to
// Vault through its own counting proxy.
func (e *env) start(ctx context.Context, kind agentKind, paths []string, interval time.Duration, tag string) (*proc, error) {
	name := strings.ReplaceAll(string(kind), " ", "-") + "-" + tag
	dir, out := filepath.Join(e.dir, name), filepath.Join(e.outRoot, name)
	for _, d := range []string{dir, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	p := &proc{dir: out, logPath: filepath.Join(dir, "log"), requests: &atomic.Int64{}, exited: make(chan struct{})}
	addr, err := p.startProxy(e.vault.Addr())
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if kind == ours {
		cmd, err = e.oursCmd(ctx, addr, p.dir, paths, interval)
	} else {
		cmd, err = e.vaultCmd(ctx, addr, dir, p.dir, paths, interval)
	}
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	p.cmd = cmd
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = p.proxy.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.exited) }()
	return p, nil
}

func (e *env) oursCmd(ctx context.Context, vaultAddr, out string, paths []string, interval time.Duration) (*exec.Cmd, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	cfg := agent.Config{
		Mode:           agent.ModeNative,
		Vault:          agent.Vault{Address: vaultAddr, AuthPath: "auth/kubernetes", Role: benchSA},
		TokenFile:      e.tokenFile,
		SecretsDir:     out,
		RenderInterval: agent.Duration{Duration: interval},
		HealthAddr:     "127.0.0.1:" + strconv.Itoa(port),
	}
	for i, path := range paths {
		cfg.Secrets = append(cfg.Secrets, agent.Secret{Name: secretName(i), Template: template(path), File: secretName(i), Perms: 0o400})
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	enc, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, e.agentBin, "run")
	cmd.Env = []string{agent.ConfigEnv + "=" + enc, "GOMEMLIMIT=51MiB"}
	return cmd, nil
}

func (e *env) vaultCmd(ctx context.Context, vaultAddr, dir, out string, paths []string, interval time.Duration) (*exec.Cmd, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "vault {\n  address = %q\n}\n", vaultAddr)
	fmt.Fprintf(&b, "auto_auth {\n  method \"kubernetes\" {\n    mount_path = \"auth/kubernetes\"\n    config = {\n      role = %q\n      token_path = %q\n    }\n  }\n}\n", benchSA, e.tokenFile)
	fmt.Fprintf(&b, "template_config {\n  static_secret_render_interval = %q\n  exit_on_retry_failure = true\n}\n", interval.String())
	for i, path := range paths {
		fmt.Fprintf(&b, "template {\n  contents = %q\n  destination = %q\n  perms = \"0400\"\n}\n", template(path), filepath.Join(out, secretName(i)))
	}
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, e.vaultBin, "agent", "-config="+cfgPath, "-log-level=warn")
	cmd.Env = []string{"HOME=" + dir}
	return cmd, nil
}

// startProxy counts the agent's requests to Vault.
func (p *proc) startProxy(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Requests cut short when an agent is stopped are expected, not news.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	p.proxy = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.proxy.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

func (p *proc) waitFiles(ctx context.Context, n int) (time.Duration, error) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if allWritten(p.dir, n) {
			return time.Since(p.started), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.exited:
			return 0, fmt.Errorf("exited before writing every file; log:\n%s", p.log())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("files not written within a minute; log:\n%s", p.log())
}

func (p *proc) log() []byte {
	log, _ := os.ReadFile(p.logPath)
	return log
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = p.proxy.Close()
}
