package main

import (
	"bufio"
	"context"
	"fmt"
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
	kube      *harness.Kube
	vault     *harness.Vault
	dir       string
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
	if e.vaultBin, err = toolchain.Vault.Ensure(ctx, repoRoot(), os.Stderr); err != nil {
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
}

func (e *env) sizes() map[string]int64 {
	return map[string]int64{"agent": fileSize(e.agentBin), "vault": fileSize(e.vaultBin)}
}

func template(i int) string {
	return `{{ with secret "secret/data/bench/` + secretName(i) + `" }}username={{ .Data.data.username }}
password={{ .Data.data.password }}
{{ end }}`
}

// measure runs the agent o.starts times to time the first render, then
// once more for the idle window.
func (e *env) measure(ctx context.Context, kind agentKind, n int, o options) (result, error) {
	r := result{kind: kind, secrets: n}
	for i := range o.starts {
		p, err := e.start(ctx, kind, n, o.interval, fmt.Sprintf("%d-%d", n, i))
		if err != nil {
			return r, err
		}
		d, err := p.waitFiles(ctx, n)
		p.stop()
		if err != nil {
			return r, err
		}
		r.firstRenders = append(r.firstRenders, d)
	}
	r.firstRender = median(r.firstRenders)
	p, err := e.start(ctx, kind, n, o.interval, fmt.Sprintf("%d-idle", n))
	if err != nil {
		return r, err
	}
	defer p.stop()
	if _, err := p.waitFiles(ctx, n); err != nil {
		return r, err
	}
	// Let start-up allocations settle before the window opens.
	time.Sleep(3 * time.Second)
	cpu0, reqs0 := cpuSeconds(p.cmd.Process.Pid), p.requests.Load()
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(o.idle):
	}
	r.cpuSeconds = cpuSeconds(p.cmd.Process.Pid) - cpu0
	r.vaultRequests = p.requests.Load() - reqs0
	r.rssKiB, r.rssAnonKiB = memory(p.cmd.Process.Pid)
	return r, nil
}

type proc struct {
	cmd      *exec.Cmd
	started  time.Time
	dir      string
	requests *atomic.Int64
	proxy    *http.Server
}

func (e *env) start(ctx context.Context, kind agentKind, n int, interval time.Duration, tag string) (*proc, error) {
	dir := filepath.Join(e.dir, strings.ReplaceAll(string(kind), " ", "-")+"-"+tag)
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		return nil, err
	}
	p := &proc{dir: filepath.Join(dir, "out"), requests: &atomic.Int64{}}
	addr, err := p.startProxy(e.vault.Addr())
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if kind == ours {
		cmd, err = e.oursCmd(ctx, addr, p.dir, n, interval)
	} else {
		cmd, err = e.vaultCmd(ctx, addr, dir, p.dir, n, interval)
	}
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	p.cmd = cmd
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (e *env) oursCmd(ctx context.Context, vaultAddr, out string, n int, interval time.Duration) (*exec.Cmd, error) {
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
	for i := range n {
		cfg.Secrets = append(cfg.Secrets, agent.Secret{Name: secretName(i), Template: template(i), File: secretName(i), Perms: 0o400})
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

func (e *env) vaultCmd(ctx context.Context, vaultAddr, dir, out string, n int, interval time.Duration) (*exec.Cmd, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "vault {\n  address = %q\n}\n", vaultAddr)
	fmt.Fprintf(&b, "auto_auth {\n  method \"kubernetes\" {\n    mount_path = \"auth/kubernetes\"\n    config = {\n      role = %q\n      token_path = %q\n    }\n  }\n}\n", benchSA, e.tokenFile)
	fmt.Fprintf(&b, "template_config {\n  static_secret_render_interval = %q\n  exit_on_retry_failure = true\n}\n", interval.String())
	for i := range n {
		fmt.Fprintf(&b, "template {\n  contents = %q\n  destination = %q\n  perms = \"0400\"\n}\n", template(i), filepath.Join(out, secretName(i)))
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
		if p.cmd.ProcessState != nil {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(filepath.Join(filepath.Dir(p.dir), "log"))
	return 0, fmt.Errorf("files not written within a minute; log:\n%s", log)
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	_ = p.proxy.Close()
}

// memory reads VmRSS and RssAnon (KiB) from /proc.
func memory(pid int) (rss, anon int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v
		case "RssAnon:":
			anon = v
		}
	}
	return rss, anon
}

// cpuSeconds is user+system time from /proc/<pid>/stat (clock ticks of
// 1/100 s on Linux).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields start after the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}
