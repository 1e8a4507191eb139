package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// paths is every request's path, in the order they arrived.
func (l *callLog) paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.calls))
	for i, c := range l.calls {
		out[i] = c.path
	}
	return out
}

const (
	loginPath  = "/v1/auth/kubernetes/login"
	renewPath  = "/v1/auth/token/renew-self"
	readPrefix = "/v1/secret/data/"
)

// renewedBeforeReads names each renew-self in paths that came after a
// login (or, when paths has none, from the start) with fewer than reads
// reads of the secret between the two. An agent that waits until the
// renewal is due re-reads the secret at every render interval meanwhile;
// one that renews right after login does not.
func renewedBeforeReads(paths []string, reads int) []string {
	var bad []string
	seen, watching := 0, true
	for i, p := range paths {
		switch {
		case p == loginPath:
			seen, watching = 0, true
		case strings.HasPrefix(p, readPrefix):
			seen++
		case p == renewPath:
			if watching && seen < reads {
				bad = append(bad, fmt.Sprintf("request %d (%d reads of the secret before it)", i+1, seen))
			}
			watching = false
		}
	}
	return bad
}

// TestAgentRenewsTokenWhenDue: an agent does not renew the token it has
// just received (vault/api's lifetime watcher would, at once: one useless
// request per agent start); its first renewal after each login comes when
// it is due, renewals keep the token alive, and when the token reaches its
// max TTL the agent logs in again. Every request goes through a recording
// proxy to the real Vault; "when due" is checked by request order, not by
// the clock: the agent re-reads the secret every second, and the first
// renewal is due at 60-67 % of an 8 s TTL, so at least two reads of the
// secret come between each login and the renewal after it (the agent that
// renewed at once sent it right after the login, before any re-read).
func TestAgentRenewsTokenWhenDue(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, ttl, maxTTL = "renew", 8 * time.Second, 20 * time.Second
	setUpRenewRole(t, ctx, e, ns, ttl, maxTTL)
	tokenFile, saToken := saTokenFile(t, ctx, ns, ns)
	calls, addr := newCallLog(t, e.vault.Addr())
	out, health := runRenewingAgent(t, e, renewConfig(ns, addr, tokenFile, agent.ModeNative, ""))

	// Two logins: the first, and the one at the max TTL, with renewals in
	// between.
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return len(calls.times(loginPath)) >= 2 && len(calls.times(renewPath)) >= 2, nil
	})
	if err != nil {
		t.Fatalf("%d logins and %d renewals, want at least 2 of each:\n%s", len(calls.times(loginPath)), len(calls.times(renewPath)), out.String())
	}
	if bad := renewedBeforeReads(calls.paths(), 2); len(bad) > 0 {
		t.Errorf("token renewed before it was due, right after a login: %v\nrequests: %v", bad, calls.paths())
	}
	logins, renewals := calls.times(loginPath), calls.times(renewPath)
	if !renewalBetween(renewals, logins[0], logins[1]) {
		t.Errorf("no renewal between the first login and the second: the token was not kept alive")
	}
	_, metrics := get(t, health, "/metrics")
	if n := metricValue(metrics, "blinkchamber_agent_token_renewals_total"); n < 1 {
		t.Errorf("blinkchamber_agent_token_renewals_total is %v after %d renewals", n, len(renewals))
	}
	assertNoLeak(t, out.String(), "renew-pw", saToken)
}

// TestResumedTokenCountsFromWhatIsLeft: a sidecar that resumes the token
// an init agent left counts the token's life from what lookup-self says it
// has left, not from the TTL it was issued with: its token TTL gauge reads
// less than the role's TTL, it does not log in, and its first renewal
// comes when due (after re-reads of the secret, as above), not at resume.
func TestResumedTokenCountsFromWhatIsLeft(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, ttl = "resume", 20 * time.Second
	setUpRenewRole(t, ctx, e, ns, ttl, time.Hour)
	tokenFile, saToken := saTokenFile(t, ctx, ns, ns)
	calls, addr := newCallLog(t, e.vault.Addr())
	stateDir := t.TempDir()

	initOut, _ := runRenewingAgent(t, e, renewConfig(ns, addr, tokenFile, agent.ModeInit, stateDir))
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		_, err := os.Stat(filepath.Join(stateDir, "state.json"))
		return err == nil && len(calls.times(loginPath)) == 1, nil
	})
	if err != nil {
		t.Fatalf("the init agent left no state:\n%s", initOut.String())
	}
	// Whole seconds pass, so lookup-self reports less than the role's TTL.
	time.Sleep(2500 * time.Millisecond)
	resumedAt := len(calls.paths())
	out, health := runRenewingAgent(t, e, renewConfig(ns, addr, tokenFile, agent.ModeSidecar, stateDir))
	waitReady(t, health, http.StatusOK, time.Minute)
	_, metrics := get(t, health, "/metrics")
	left, renewed := metricValue(metrics, "blinkchamber_agent_token_ttl_seconds"), metricValue(metrics, "blinkchamber_agent_token_renewals_total")
	if renewed != 0 || left <= 0 || left >= ttl.Seconds() {
		t.Errorf("after resume: token TTL gauge %v, %v renewals; want a TTL above 0 and below the role's %v, no renewal", left, renewed, ttl.Seconds())
	}

	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return slices.Contains(calls.paths()[resumedAt:], renewPath), nil
	})
	if err != nil {
		t.Fatalf("the resumed token was never renewed:\n%s", out.String())
	}
	sidecar := calls.paths()[resumedAt:]
	if slices.Contains(sidecar, loginPath) {
		t.Errorf("the sidecar logged in instead of resuming: %v", sidecar)
	}
	if bad := renewedBeforeReads(sidecar, 2); len(bad) > 0 {
		t.Errorf("resumed token renewed before it was due: %v\nrequests: %v", bad, sidecar)
	}
	assertNoLeak(t, initOut.String()+out.String(), ns+"-pw", saToken)
}

// setUpRenewRole makes namespace ns, its role ns (tokens of ttl,
// renewable up to maxTTL) and the secret ns/ns/db its agents read.
func setUpRenewRole(t *testing.T, ctx context.Context, e *vaultEnv, ns string, ttl, maxTTL time.Duration) {
	t.Helper()
	if err := kube.Namespace(ctx, ns, false, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.vault.AppRole(ctx, ns, ns, ns, `path "secret/data/`+ns+"/"+ns+`/*" { capabilities = ["read"] }`, ttl); err != nil {
		t.Fatal(err)
	}
	// Renewals extend the token up to its max TTL; then it must be replaced.
	if _, err := e.vault.Client().Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+ns, map[string]any{"token_max_ttl": int(maxTTL.Seconds())}); err != nil {
		t.Fatal(err)
	}
	e.put(t, ctx, ns+"/"+ns+"/db", map[string]any{"password": ns + "-pw"})
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

// renewConfig is an agent of role ns that reads its one secret every
// second through vaultAddr.
func renewConfig(ns, vaultAddr, tokenFile string, mode agent.Mode, stateDir string) agent.Config {
	return agent.Config{Mode: mode, TokenFile: tokenFile, StateDir: stateDir,
		Vault:          agent.Vault{Address: vaultAddr, AuthPath: "auth/kubernetes", Role: ns},
		RenderInterval: agent.Duration{Duration: time.Second},
		Secrets:        []agent.Secret{{Name: "db", Template: `{{ with secret "secret/data/` + ns + "/" + ns + `/db" }}{{ .Data.data.password }}{{ end }}`, File: "db", Perms: 0o400}}}
}

// runRenewingAgent runs the agent binary with cfg on a free health port
// until the test ends; it returns its output and health address.
func runRenewingAgent(t *testing.T, e *vaultEnv, cfg agent.Config) (*syncBuffer, string) {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg.HealthAddr = "127.0.0.1:" + strconv.Itoa(port)
	cfg.SecretsDir = t.TempDir()
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
	return out, cfg.HealthAddr
}
