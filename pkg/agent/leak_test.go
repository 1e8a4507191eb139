package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
	"github.com/blinkchamber/blinkchamber/test/leakform"
)

func tmplRequest(path, pos, text string) tmpl.Request {
	return tmpl.Request{Op: tmpl.OpRead, Path: path, Call: tmpl.Call{Pos: pos, Text: text}}
}

// derivingTemplates build Vault paths, `secret` arguments and map keys from
// a secret value (src's password and username, the same value) in the
// ways a template can.
var derivingTemplates = map[string]string{
	"issue example":                  `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/x/" .Data.data.password) }}{{ .Data }}{{ end }}{{ end }}`,
	"printf":                         `{{ with secret "secret/data/src" }}{{ with secret (printf "secret/data/%s/y" .Data.data.password) }}{{ .Data }}{{ end }}{{ end }}`,
	"toUpper":                        `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (toUpper .Data.data.password)) }}{{ .Data }}{{ end }}{{ end }}`,
	"base64Encode":                   `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (base64Encode .Data.data.password)) }}{{ .Data }}{{ end }}{{ end }}`,
	"sprig":                          `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (sprig_b64enc (sprig_upper .Data.data.password))) }}{{ .Data }}{{ end }}{{ end }}`,
	"index":                          `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (index .Data.data "password")) }}{{ .Data }}{{ end }}{{ end }}`,
	"split":                          `{{ with secret "secret/data/src" }}{{ range split "-" .Data.data.password }}{{ with secret (print "secret/data/p/" .) }}{{ .Data }}{{ end }}{{ end }}{{ end }}`,
	"urlquery":                       `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (urlquery .Data.data.password)) }}{{ .Data }}{{ end }}{{ end }}`,
	"toJSON":                         `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/" (toJSON .Data.data)) }}{{ .Data }}{{ end }}{{ end }}`,
	"write argument":                 `{{ with secret "secret/data/src" }}{{ with secret "pki/issue/app" (print "common_name=" .Data.data.password) "ttl=1h" }}{{ .Data }}{{ end }}{{ end }}`,
	"write argument key":             `{{ with secret "secret/data/src" }}{{ with secret "transit/encrypt/k" (print .Data.data.password "=1") }}{{ .Data }}{{ end }}{{ end }}`,
	"list":                           `{{ with secret "secret/data/src" }}{{ range secrets (print "secret/metadata/" .Data.data.password) }}{{ . }}{{ end }}{{ end }}`,
	"nested thrice":                  `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/ok/" .Data.data.password) }}{{ with secret (print "secret/data/z/" .Data.data.v) }}{{ .Data }}{{ end }}{{ end }}{{ end }}`,
	"dynamic":                        `{{ with secret "database/creds/src" }}{{ with secret (print "secret/data/u/" .Data.username) }}{{ .Data }}{{ end }}{{ end }}`,
	"missing key on a computed path": `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/ok/" .Data.data.password) }}{{ .Data.data.nokey }}{{ end }}{{ end }}`,
	"computed key":                   `{{ with secret "secret/data/src" }}{{ with secret (print "secret/data/ok/" .Data.data.password) }}{{ index .Data.data (print .Data.data.v "x") | toUpper }}{{ end }}{{ end }}`,
	"key not key=value":              `{{ with secret "secret/data/src" }}{{ with secret "pki/issue/app" .Data.data.password }}{{ .Data }}{{ end }}{{ end }}`,
}

// faults are the ways the fake Vault fails every request but the sources':
// refusals and errors whose text echoes the path and the body, and a
// dropped connection (the client's error then quotes the request URL).
var faults = []string{"403", "404", "500", "400", "503", "412", "429", "drop"}

// fakeVault answers src (a KV v2 secret and a dynamic credential holding
// value) and the "ok/" paths (a secret holding value), and fails every
// other request the way fault says.
func fakeVault(t *testing.T, value, fault string) *httptest.Server {
	t.Helper()
	kv := func(data map[string]any) map[string]any {
		return map[string]any{"data": map[string]any{"data": data, "metadata": map[string]any{}}}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/v1/")
		body, _ := io.ReadAll(r.Body)
		var answer any
		switch {
		case strings.HasPrefix(path, "sys/internal/ui/mounts/"):
			answer = nil // not KV v2: paths are read as written
		case path == "secret/data/src":
			answer = kv(map[string]any{"password": value, "v": value})
		case path == "database/creds/src":
			answer = map[string]any{"lease_id": "database/creds/src/l1", "lease_duration": 60, "renewable": true,
				"data": map[string]any{"username": value, "password": value}}
		case strings.HasPrefix(path, "secret/data/ok/"):
			answer = kv(map[string]any{"v": value})
		}
		if answer != nil {
			_ = json.NewEncoder(w).Encode(answer)
			return
		}
		if strings.HasPrefix(path, "sys/internal/ui/mounts/") {
			http.NotFound(w, r)
			return
		}
		if fault == "drop" {
			hj, _ := w.(http.Hijacker)
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
			return
		}
		var code int
		fmt.Sscan(fault, &code)
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{
			"no handler for route " + path, "request " + r.Method + " " + r.URL.String() + " body " + string(body)}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// exposed renders name once against vault and returns everything the agent
// would show of the outcome: the error, its log lines, readiness and
// metrics.
func exposed(t *testing.T, vaultAddr, text string) string {
	t.Helper()
	cfg := testConfig(t, vaultAddr, text)
	var logs bytes.Buffer
	log := newLogger(&logs)
	a, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.setAuth(&api.Secret{Auth: &api.SecretAuth{ClientToken: "test-token", LeaseDuration: 3600}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.firstPass(ctx)
	a.status.setError(err)
	var out strings.Builder
	if err != nil {
		fmt.Fprintf(&out, "%v\n%+v\n", err, err)
		log.Error(err, "agent failed")
		log.Info("first render not complete yet; retrying", "reason", err.Error())
	}
	for _, path := range []string{"/readyz", "/startupz", "/metrics"} {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		out.WriteString(rec.Body.String())
	}
	out.Write(logs.Bytes())
	return out.String()
}

func testConfig(t *testing.T, vaultAddr, text string) *Config {
	t.Helper()
	return &Config{Mode: ModeNative, Vault: Vault{Address: vaultAddr, AuthPath: "auth/kubernetes", Role: "app"},
		TokenFile: "/nonexistent", SecretsDir: t.TempDir(), RenderInterval: Duration{time.Second}, HealthAddr: "127.0.0.1:0",
		Secrets: []Secret{{Name: "t", Template: text, File: "t", Perms: 0o400}}}
}

// randomValue is a secret value of 16 to 40 bytes, with the characters
// paths and encodings treat specially.
func randomValue(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=.%\"&<> "
	b := make([]byte, 16+r.IntN(25))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// TestComputedRequestsLeakNothing: for random secret values, every template
// deriving a request from the value, against every way Vault can fail,
// shows no derived form of the value in the error, the logs, readiness or
// metrics.
func TestComputedRequestsLeakNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 2))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		value := randomValue(r)
		for _, fault := range faults {
			srv := fakeVault(t, value, fault)
			for name, text := range derivingTemplates {
				checkNoLeak(t, fmt.Sprintf("round %d, %s, fault %s", round, name, fault), value, exposed(t, srv.URL, text))
			}
		}
	}
}

// FuzzComputedRequestsLeakNothing is the property above for any value.
func FuzzComputedRequestsLeakNothing(f *testing.F) {
	f.Add("Zq7-vN2p/Kx9+Wm4=Rt8&Hy3", 0)
	f.Add("correct horse battery staple", 3)
	f.Add("%2F..%2Fsys%2Fraw-value", 7)
	f.Fuzz(func(t *testing.T, value string, fault int) {
		if len(value) < leakform.Window || len(value) > 200 || strings.ContainsAny(value, "\x00\r\n") {
			t.Skip()
		}
		srv := fakeVault(t, value, faults[(fault%len(faults)+len(faults))%len(faults)])
		for name, text := range derivingTemplates {
			checkNoLeak(t, name, value, exposed(t, srv.URL, text))
		}
	})
}

func checkNoLeak(t *testing.T, what, value, text string) {
	t.Helper()
	m := leakform.New()
	m.Add("the secret value", value)
	for _, f := range m.Find([]byte(text)) {
		at := max(f.Offset-80, 0)
		t.Errorf("%s: the value leaked (%s) near %q", what, f.Kind, text[at:f.Offset])
	}
}

// TestLeaseRenewalOfComputedPathLeaksNothing: renewing (and re-issuing) a
// lease on a path built from a secret fails against a Vault that echoes
// the path; the log lines and the error hold no derived form of the value.
func TestLeaseRenewalOfComputedPathLeaksNothing(t *testing.T) {
	value := "Zq7vN2pKx9Wm4Rt8Hy3Lc6"
	for _, fault := range faults {
		srv := fakeVault(t, value, fault)
		var logs bytes.Buffer
		a, err := New(testConfig(t, srv.URL, derivingTemplates["dynamic"]), newLogger(&logs))
		if err != nil {
			t.Fatal(err)
		}
		a.setAuth(&api.Secret{Auth: &api.SecretAuth{ClientToken: "t", LeaseDuration: 3600}})
		req := tmplRequest("database/creds/"+value, "t:1:60", `secret (print "database/creds/" .Data.username)`)
		e := &entry{Req: req, Action: actionRenew, Increment: 60,
			Secret: &api.Secret{LeaseID: "database/creds/" + value + "/l1", LeaseDuration: 60, Renewable: true}}
		err = a.refreshEntry(context.Background(), e)
		if err == nil {
			t.Fatalf("fault %s: the refresh worked", fault)
		}
		checkNoLeak(t, "renewal, fault "+fault, value, err.Error()+"\n"+logs.String())
		if !strings.Contains(logs.String(), "lease renewal failed") {
			t.Errorf("fault %s: the renewal failure was not logged: %s", fault, logs.String())
		}
	}
}
