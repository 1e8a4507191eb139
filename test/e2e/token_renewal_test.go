package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// vaultCall is one request an agent sent to Vault, as a recording proxy
// saw it arrive.
type vaultCall struct {
	at   time.Time
	path string
}

// callLog is a reverse proxy to Vault that records every request's path
// and arrival time.
type callLog struct {
	mu    sync.Mutex
	calls []vaultCall
}

func newCallLog(t *testing.T, target string) (*callLog, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	l := &callLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.calls = append(l.calls, vaultCall{at: time.Now(), path: r.URL.Path})
		l.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return l, srv.URL
}

// times returns when each request for path arrived.
func (l *callLog) times(path string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, c := range l.calls {
		if c.path == path {
			out = append(out, c.at)
		}
	}
	return out
}

const (
	loginPath = "/v1/auth/kubernetes/login"
	renewPath = "/v1/auth/token/renew-self"
)

// TestAgentRenewsTokenWhenDue: an agent does not renew the token it has
// just received (vault/api's lifetime watcher would, at once: one useless
// request per agent start); its first renewal after each login comes when
// it is due, at 60-67 % of the token's TTL, renewals keep the token alive,
// and when the token reaches its max TTL the agent logs in again. Every
// request goes through a recording proxy to the real Vault.
func TestAgentRenewsTokenWhenDue(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, ttl, maxTTL = "renew", 8 * time.Second, 20 * time.Second
	if err := kube.Namespace(ctx, ns, false, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.vault.AppRole(ctx, ns, ns, ns, `path "secret/data/renew/renew/*" { capabilities = ["read"] }`, ttl); err != nil {
		t.Fatal(err)
	}
	// Renewals extend the token up to its max TTL; then it must be replaced.
	if _, err := e.vault.Client().Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+ns, map[string]any{"token_max_ttl": int(maxTTL.Seconds())}); err != nil {
		t.Fatal(err)
	}
	e.put(t, ctx, "renew/renew/db", map[string]any{"password": "renew-pw"})
	tokenFile, saToken := saTokenFile(t, ctx, ns, ns)
	calls, addr := newCallLog(t, e.vault.Addr())
	out, health := runRenewingAgent(t, e, addr, tokenFile)

	// Two logins: the first, and the one at the max TTL, with renewals in
	// between.
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return len(calls.times(loginPath)) >= 2 && len(calls.times(renewPath)) >= 2, nil
	})
	if err != nil {
		t.Fatalf("%d logins and %d renewals, want at least 2 of each:\n%s", len(calls.times(loginPath)), len(calls.times(renewPath)), out.String())
	}
	logins, renewals := calls.times(loginPath), calls.times(renewPath)
	for i, l := range logins {
		for _, r := range renewals {
			if since := r.Sub(l); since >= 0 && since < ttl*6/10 {
				t.Errorf("renewal %s after login %d, before it was due (60 %% of the %s TTL)", since.Round(time.Millisecond), i+1, ttl)
			}
		}
	}
	if !renewalBetween(renewals, logins[0], logins[1]) {
		t.Errorf("no renewal between the first login and the second: the token was not kept alive")
	}
	_, metrics := get(t, health, "/metrics")
	if n := metricValue(metrics, "blinkchamber_agent_token_renewals_total"); n < 1 {
		t.Errorf("blinkchamber_agent_token_renewals_total is %v after %d renewals", n, len(renewals))
	}
	assertNoLeak(t, out.String(), "renew-pw", saToken)
}

// saToken is a TokenRequest token of namespace/sa for audience vault, as
// the kubelet projects it into a pod.
func saToken(t *testing.T, ctx context.Context, namespace, sa string) string {
	t.Helper()
	tr, err := kube.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// saTokenFile writes saToken to a file; it returns the file and the token.
func saTokenFile(t *testing.T, ctx context.Context, namespace, sa string) (string, string) {
	t.Helper()
	token := saToken(t, ctx, namespace, sa)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

func renewalBetween(renewals []time.Time, from, to time.Time) bool {
	for _, r := range renewals {
		if r.After(from) && r.Before(to) {
			return true
		}
	}
	return false
}

// runRenewingAgent runs the agent binary against vaultAddr until the test
// ends; it returns its output and health address.
func runRenewingAgent(t *testing.T, e *vaultEnv, vaultAddr, tokenFile string) (*syncBuffer, string) {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	health := "127.0.0.1:" + strconv.Itoa(port)
	cfg := agent.Config{Mode: agent.ModeNative, TokenFile: tokenFile, SecretsDir: t.TempDir(), HealthAddr: health,
		Vault: agent.Vault{Address: vaultAddr, AuthPath: "auth/kubernetes", Role: "renew"},
		// Re-reads are not what this test watches: few of them.
		RenderInterval: agent.Duration{Duration: time.Minute},
		Secrets:        []agent.Secret{{Name: "db", Template: `{{ with secret "secret/data/renew/renew/db" }}{{ .Data.data.password }}{{ end }}`, File: "db", Perms: 0o400}}}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(e.agentBin, "run")
	cmd.Env = []string{agent.ConfigEnv + "=" + enc}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	return out, health
}
