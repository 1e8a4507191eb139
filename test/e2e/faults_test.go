package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// The agent's retry schedule as the README documents it: exponential
// backoff with full jitter from 0.5 s to 30 s. Request bounds during an
// outage are derived from it, never from a timing.
const (
	docBackoffMin = 500 * time.Millisecond
	docBackoffMax = 30 * time.Second
)

// maxAttempts is the most retries the schedule allows in d: each wait is at
// least half the current step (full jitter), the step doubles up to the
// maximum, and the first attempt comes before any wait.
func maxAttempts(d time.Duration) int {
	n, spent, step := 1, time.Duration(0), docBackoffMin
	for {
		spent += step / 2
		if spent > d {
			return n
		}
		n++
		step = min(step*2, docBackoffMax)
	}
}

// faultProxy stands between agents and Vault: the one fake of these tests,
// for faults a real Vault cannot produce (connections dropped, slowness).
// It counts every request it receives.
type faultProxy struct {
	srv      *httptest.Server
	mode     atomic.Int32
	delay    atomic.Int64 // nanoseconds, in modeDelay
	requests atomic.Int64
}

const (
	modePass  int32 = iota
	modeDrop        // accept, then hang up without an answer
	modeDelay       // answer late
)

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Vault itself unreachable (stopped): the agent sees what it would see
	// without the proxy, a connection that fails, not a 502.
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { hangUp(w) }
	p := &faultProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		switch p.mode.Load() {
		case modeDrop:
			hangUp(w)
			return
		case modeDelay:
			select {
			case <-time.After(time.Duration(p.delay.Load())):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
		}
	}
}

// faultPod is one agent pod behind a proxy, with the files it must keep.
type faultPod struct {
	e     *vaultEnv
	run   *harness.PodRun
	out   *syncBuffer
	dir   string
	ns    string
	files map[string]string // file -> content it must hold
	seen  []string          // every secret value written, for the leak scan
}

func (p *faultPod) rotate(t *testing.T, ctx context.Context, name, value string) {
	t.Helper()
	p.e.put(t, ctx, p.ns+"/"+p.ns+"/"+name, map[string]any{"value": value})
	p.files[name] = "value: " + value + "\n"
	p.seen = append(p.seen, value)
}

// assertFilesWhole fails unless every file holds exactly its last content.
func (p *faultPod) assertFilesWhole(t *testing.T) {
	t.Helper()
	for name, want := range p.files {
		got, err := os.ReadFile(filepath.Join(p.dir, name))
		if err != nil || string(got) != want {
			t.Fatalf("%s changed during the fault: %d bytes, err %v", name, len(got), err)
		}
	}
}

func waitReady(t *testing.T, addr string, want int, within time.Duration) string {
	t.Helper()
	var code int
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, within, true, func(context.Context) (bool, error) {
		code, body = get(t, addr, "/readyz")
		return code == want, nil
	})
	if err != nil {
		t.Fatalf("/readyz never answered %d within %s (last %d %q)", want, within, code, body)
	}
	return body
}

// outage runs one fault for d: readiness goes 503, the files stay whole,
// the agent keeps running and sends no more requests than the backoff
// schedule allows; after end, a rotation arrives and readiness is back.
func (p *faultPod) outage(t *testing.T, ctx context.Context, proxy *faultProxy, d time.Duration, begin, end func()) outcome {
	t.Helper()
	perAttempt := int64(len(p.files)) * 2 // a re-read per file; Go's transport may retry an idempotent request once on a dropped connection
	n0, t0 := proxy.requests.Load(), time.Now()
	begin()
	body := waitReady(t, p.run.HealthAddr(), http.StatusServiceUnavailable, d)
	if !strings.Contains(body, "files from the last render stay in place") {
		t.Errorf("readiness does not say why: %q", body)
	}
	for time.Since(t0) < d {
		p.assertFilesWhole(t)
		if !p.run.Container(mutate.AgentContainer).Running() {
			t.Fatal("the agent exited during the fault")
		}
		time.Sleep(200 * time.Millisecond)
	}
	n, elapsed := proxy.requests.Load()-n0, time.Since(t0)
	end()
	bound := int64(maxAttempts(elapsed)) * perAttempt
	if n > bound {
		t.Errorf("%d requests in %s of fault; the backoff schedule allows at most %d", n, elapsed.Round(time.Second), bound)
	}
	p.rotate(t, ctx, "db", fmt.Sprintf("after-fault-%d", time.Now().UnixNano()))
	waitFile(t, filepath.Join(p.dir, "db"), p.files["db"], 60*time.Second)
	waitReady(t, p.run.HealthAddr(), http.StatusOK, 60*time.Second)
	p.assertFilesWhole(t)
	t.Logf("fault of %s: %d requests (bound %d); readiness said %q", elapsed.Round(time.Second), n, bound, body)
	return outcome{requests: n, bound: bound}
}

type outcome struct{ requests, bound int64 }

// TestAgentSurvivesVaultFaults: one pod, through a proxy to the shared
// Vault, meets Vault sealed, restarted, unreachable and slow. Through each
// it keeps its files whole and unchanged, reports not-ready while it cannot
// refresh, retries no faster than its backoff, and recovers by itself.
func TestAgentSurvivesVaultFaults(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	proxy := newFaultProxy(t, e.vault.Addr())
	startInjector(t, ctx, proxy.srv.URL, "blinkchamber-e2e-faults", nil)
	p := &faultPod{e: e, ns: "faults", files: map[string]string{}, out: &syncBuffer{}}
	e.app(t, ctx, p.ns, p.ns, nil)
	p.rotate(t, ctx, "db", "fault-db-initial")
	p.rotate(t, ctx, "api", "fault-api-initial")
	createPod(t, ctx, p.ns, "web", p.ns, map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.PrefixSecret + "db":      "secret/data/faults/faults/db",
		mutate.PrefixTemplate + "db":    `{{ with secret "secret/data/faults/faults/db" }}value: {{ .Data.data.value }}{{ end }}` + "\n",
		mutate.PrefixSecret + "api":     "secret/data/faults/faults/api",
		mutate.PrefixTemplate + "api":   `{{ with secret "secret/data/faults/faults/api" }}value: {{ .Data.data.value }}{{ end }}` + "\n",
		mutate.AnnotationRenderInterval: "1s",
	})
	p.run = kube.RunPodForTest(t, p.ns, "web", e.shim(p.out))
	p.dir = p.run.VolumeDir(mutate.SecretsVolume)
	for name, want := range p.files {
		waitFile(t, filepath.Join(p.dir, name), want, 10*time.Second)
	}
	root := e.vault.Client()
	// The Vault is shared: whatever happens here, later tests get it back
	// running and unsealed.
	t.Cleanup(func() {
		if sealed, err := e.vault.Sealed(context.Background()); err != nil || sealed {
			_ = e.vault.Restart(context.Background())
		}
	})
	const d = 12 * time.Second
	results := map[string]outcome{}

	t.Run("sealed", func(t *testing.T) {
		results["sealed"] = p.outage(t, ctx, proxy, d, func() {
			if err := root.Sys().SealWithContext(ctx); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if _, err := root.Sys().UnsealWithContext(ctx, e.vault.UnsealKey); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("stopped and restarted", func(t *testing.T) {
		results["restarted"] = p.outage(t, ctx, proxy, d, func() {
			if err := e.vault.Stop(); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := e.vault.Restart(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("unreachable", func(t *testing.T) {
		results["unreachable"] = p.outage(t, ctx, proxy, d, func() { proxy.mode.Store(modeDrop) }, func() { proxy.mode.Store(modePass) })
	})
	t.Run("slow", func(t *testing.T) {
		// Every answer 3 s late, three times the render interval: the agent
		// is slower, not broken, and does not pile requests up.
		proxy.delay.Store(int64(3 * time.Second))
		proxy.mode.Store(modeDelay)
		defer proxy.mode.Store(modePass)
		n0, t0 := proxy.requests.Load(), time.Now()
		p.rotate(t, ctx, "api", "fault-api-slow")
		waitFile(t, filepath.Join(p.dir, "api"), p.files["api"], 60*time.Second)
		p.assertFilesWhole(t)
		n, elapsed := proxy.requests.Load()-n0, time.Since(t0)
		// Requests are sequential: at most one in flight per 3 s, plus the
		// one that was in flight when the delay began.
		if bound := int64(elapsed/(3*time.Second)) + 2; n > bound {
			t.Errorf("%d requests in %s with 3 s answers; sequential requests allow %d", n, elapsed.Round(time.Second), bound)
		}
		t.Logf("slow Vault: %d requests in %s, rotation delivered", n, elapsed.Round(time.Second))
	})

	t.Run("no secret value or token in the agent's output", func(t *testing.T) {
		assertPodNoLeak(t, p.run, p.out.String(), p.seen...)
		if !strings.Contains(p.out.String(), `"msg":"rendered"`) {
			t.Errorf("the scanned output has no render log lines: the scan saw nothing")
		}
	})
	t.Logf("fault results: %v", results)
}
