package bootstrap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// configWrites records the bodies of the writes to auth/kubernetes/config
// that pass through it.
type configWrites struct {
	base   http.RoundTripper
	mu     sync.Mutex
	bodies []map[string]any
}

func (w *configWrites) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/v1/auth/kubernetes/config" && (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, err
		}
		w.mu.Lock()
		w.bodies = append(w.bodies, body)
		w.mu.Unlock()
	}
	return w.base.RoundTrip(r)
}

func (w *configWrites) take() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bodies
	w.bodies = nil
	return b
}

// TestVaultPodReviewer: for a Vault in the cluster, bootstrap configures
// kubernetes auth with the API server's address and CA only, so that Vault
// reviews tokens with its own pod's ServiceAccount token; it mints no
// token, replaces one set before (a Vault that used to be outside), and
// refuses to go on while Vault's ServiceAccount may not create
// TokenReviews. Against a real Vault and a real API server with RBAC.
func TestVaultPodReviewer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube, v, dir := kubeAndVault(t, ctx)

	writes := &configWrites{}
	vc := api.DefaultConfig()
	vc.Address, vc.MaxRetries = v.Addr(), 0
	writes.base = vc.HttpClient.Transport
	vc.HttpClient.Transport = writes

	minted := 0
	spec := &bootstrap.Spec{
		Environment: "development",
		Seal:        bootstrap.Seal{Kind: "shamir", Shares: 1, Threshold: 1},
		Keys:        keystore.NewFile(filepath.Join(dir, "keys.json")),
		Audit:       bootstrap.Audit{Type: "none"},
		KubeAuth: bootstrap.KubeAuth{Path: "kubernetes", Host: kube.Config.Host, CAPEM: string(kube.Config.CAData),
			ReviewerNamespace: "vault-ns", ReviewerServiceAccount: "vault",
			ReviewerJWT: func(context.Context) (string, time.Time, error) {
				minted++
				return "a-minted-reviewer-jwt", time.Now().Add(365 * 24 * time.Hour), nil
			}},
		KVMount: "secret", TokenTTL: time.Hour,
	}
	run := func(t *testing.T, dryRun bool, phases ...string) (*bootstrap.Report, error) {
		t.Helper()
		c, err := api.NewClient(vc)
		if err != nil {
			t.Fatal(err)
		}
		c.ClearToken()
		steps, err := bootstrap.Steps(spec, bootstrap.Targets{Kube: kube.Client, Vault: c, VaultAddr: v.Addr()}, phases)
		if err != nil {
			t.Fatal(err)
		}
		return bootstrap.Run(ctx, steps, dryRun, bootstrap.NoProgress{})
	}
	root := func(t *testing.T) *api.Client {
		t.Helper()
		keys, err := spec.Keys.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := v.Client().Clone()
		c.SetToken(keys.RootToken)
		return c
	}
	authConfig := func(t *testing.T) map[string]any {
		t.Helper()
		s, err := root(t).Logical().ReadWithContext(ctx, "auth/kubernetes/config")
		if err != nil || s == nil {
			t.Fatalf("reading auth/kubernetes/config: %v", err)
		}
		return s.Data
	}

	t.Run("outside the cluster: a minted reviewer token", func(t *testing.T) {
		if _, err := run(t, false, bootstrap.PhaseVault); err != nil {
			t.Fatal(err)
		}
		if set, _ := authConfig(t)["token_reviewer_jwt_set"].(bool); !set || minted != 1 {
			t.Fatalf("token_reviewer_jwt_set %v after %d mints", set, minted)
		}
		if b := writes.take(); len(b) != 1 || b[0]["token_reviewer_jwt"] != "a-minted-reviewer-jwt" {
			t.Fatalf("config writes: %d, the last without the minted token", len(b))
		}
	})

	spec.KubeAuth.VaultPodReviewer = true
	mintedBefore := minted

	t.Run("in the cluster: the plan replaces the minted token", func(t *testing.T) {
		rep, err := run(t, true, bootstrap.PhaseVault)
		if err != nil {
			t.Fatal(err)
		}
		var detail string
		for _, r := range rep.Results {
			if r.Step == "kubernetes auth config" {
				detail = r.Detail
			}
		}
		if !strings.Contains(detail, "token_reviewer_jwt (Vault reviews with its own pod's token)") || rep.Planned != 1 {
			t.Fatalf("plan: %d planned, auth config %q", rep.Planned, detail)
		}
	})

	t.Run("in the cluster: host and CA only, nothing minted", func(t *testing.T) {
		rep, err := run(t, false, bootstrap.PhaseVault)
		if err != nil || rep.Changed != 1 {
			t.Fatalf("run: %v, %d changed", err, rep.Changed)
		}
		b := writes.take()
		want := map[string]any{"kubernetes_host": kube.Config.Host, "kubernetes_ca_cert": string(kube.Config.CAData), "disable_local_ca_jwt": false}
		if len(b) != 1 || len(b[0]) != len(want) {
			t.Fatalf("config writes %v, want one with exactly the keys of %v", keysOf(b), want)
		}
		for k, w := range want {
			if b[0][k] != w {
				t.Errorf("the write sent %s=%v, want %v", k, b[0][k], w)
			}
		}
		cfg := authConfig(t)
		if set, _ := cfg["token_reviewer_jwt_set"].(bool); set {
			t.Error("Vault still holds the minted reviewer token")
		}
		if off, _ := cfg["disable_local_ca_jwt"].(bool); off || cfg["kubernetes_host"] != kube.Config.Host {
			t.Errorf("disable_local_ca_jwt %v, kubernetes_host %v", off, cfg["kubernetes_host"])
		}
		auths, err := root(t).Sys().ListAuthWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := auths["kubernetes/"].Description; strings.Contains(d, "reviewer token expires") {
			t.Errorf("the mount still records a reviewer token's expiry: %q", d)
		}
		if minted != mintedBefore {
			t.Errorf("a reviewer token was minted %d times", minted-mintedBefore)
		}
		if rep, err := run(t, false, bootstrap.PhaseVault); err != nil || rep.Changed != 0 {
			t.Fatalf("second run: %v, %d changed", err, rep.Changed)
		}
	})

	t.Run("in the cluster: disable_local_ca_jwt drift is repaired", func(t *testing.T) {
		if _, err := root(t).Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
			"kubernetes_host": kube.Config.Host, "kubernetes_ca_cert": string(kube.Config.CAData), "disable_local_ca_jwt": true,
		}); err != nil {
			t.Fatal(err)
		}
		writes.take()
		rep, err := run(t, false, bootstrap.PhaseVault)
		if err != nil || rep.Changed != 1 {
			t.Fatalf("run: %v, %d changed", err, rep.Changed)
		}
		if off, _ := authConfig(t)["disable_local_ca_jwt"].(bool); off {
			t.Error("disable_local_ca_jwt is still true")
		}
	})

	t.Run("in the cluster: Vault's ServiceAccount must be allowed to review tokens", func(t *testing.T) {
		_, err := run(t, true, bootstrap.PhaseBase)
		if !errors.Is(err, bootstrap.ErrReviewerNotAllowed) || !strings.Contains(err.Error(), "system:serviceaccount:vault-ns:vault") {
			t.Fatalf("base phase without the binding: %v", err)
		}
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "vault-auth-delegator"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault", Namespace: "vault-ns"}}}
		if err := kube.Client.Create(ctx, crb); err != nil {
			t.Fatal(err)
		}
		// RBAC answers from an informer cache: the binding shows shortly.
		deadline := time.Now().Add(30 * time.Second)
		for {
			rep, err := run(t, false, bootstrap.PhaseBase)
			if err == nil {
				if rep.Changed != 0 {
					t.Errorf("the base phase changed %d things; it only checks Vault's binding", rep.Changed)
				}
				break
			}
			if !errors.Is(err, bootstrap.ErrReviewerNotAllowed) || time.Now().After(deadline) {
				t.Fatalf("base phase with the binding: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

func keysOf(bodies []map[string]any) [][]string {
	var out [][]string
	for _, b := range bodies {
		var k []string
		for key := range b {
			k = append(k, key)
		}
		out = append(out, k)
	}
	return out
}
