package agent

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// stuckWriter is tmpl.Files whose writes of one name never return until
// released: a write stuck in a system call.
type stuckWriter struct {
	*tmpl.Files
	stuck   string
	release chan struct{}
}

func (w *stuckWriter) Write(name string, data []byte, perm fs.FileMode) (bool, error) {
	if name == w.stuck {
		<-w.release
	}
	return w.Files.Write(name, data, perm)
}

// TestStuckWriteIsReportedAndHoldsUpNothingElse: a write that does not
// return is reported by readiness and metrics, naming its secret, as soon
// as the render interval has passed (without waiting for the write); the
// other secret renders meanwhile; once the write returns, the next pass
// recovers.
func TestStuckWriteIsReportedAndHoldsUpNothingElse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": map[string]any{"v": name + "-value"}}})
	}))
	defer srv.Close()
	cfg := testConfig(t, srv.URL, DefaultTemplate("secret/data/a"))
	cfg.Secrets[0].Name, cfg.Secrets[0].File = "a", "a"
	cfg.Secrets = append(cfg.Secrets, Secret{Name: "b", Template: DefaultTemplate("secret/data/b"), File: "b", Perms: 0o400})
	a, err := New(cfg, newLogger(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	w := &stuckWriter{Files: tmpl.NewFiles(cfg.SecretsDir), stuck: "a", release: make(chan struct{})}
	a.files = w
	a.setAuth(&api.Secret{Auth: &api.SecretAuth{ClientToken: "t", LeaseDuration: 3600}})
	ctx := context.Background()

	err = a.firstPass(ctx)
	if !onlyWriteErrors(err) || !strings.Contains(err.Error(), "secret a:") {
		t.Fatalf("firstPass = %v; want a's write reported stuck", err)
	}
	a.status.setError(err)
	if b, _ := os.ReadFile(filepath.Join(cfg.SecretsDir, "b")); string(b) != "v: b-value\n" {
		t.Fatalf("b was not rendered while a's write was stuck: %q", b)
	}
	ok, why := a.status.ready()
	if ok || !strings.Contains(why, "secret a: render under way") {
		t.Errorf("readiness while a's write is stuck: %v %q", ok, why)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{"blinkchamber_agent_renders_stuck 1", `blinkchamber_agent_render_in_progress_seconds{secret="a"}`, `blinkchamber_agent_render_errors_total{secret="a"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A second pass does not start a second write of a.
	if err := a.renderAll(ctx); !strings.Contains(err.Error(), "previous render has not returned") {
		t.Errorf("second pass: %v", err)
	}

	close(w.release)
	deadline := time.Now().Add(time.Minute) // a deadlock guard only
	for len(a.status.renderAges()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	err = a.renderAll(ctx)
	a.status.setError(err)
	a.status.setStarted() // what start does once a pass renders everything
	if ok, why := a.status.ready(); err != nil || !ok {
		t.Fatalf("after the write returned: %v, ready %v %q", err, ok, why)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.SecretsDir, "a")); string(b) != "v: a-value\n" {
		t.Errorf("a after recovery: %q", b)
	}
}
