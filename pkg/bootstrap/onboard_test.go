package bootstrap_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// onboardEnv runs the vault and secrets phases of specs against one real
// Vault, as the bootstrap Job does after each `helm upgrade`.
type onboardEnv struct {
	t    *testing.T
	ctx  context.Context
	kube *harness.Kube
	v    *harness.Vault
	keys keystore.Store
}

func newOnboardEnv(t *testing.T, ctx context.Context) *onboardEnv {
	kube, v, dir := kubeAndVault(t, ctx)
	return &onboardEnv{t: t, ctx: ctx, kube: kube, v: v, keys: keystore.NewFile(filepath.Join(dir, "keys.json"))}
}

func (e *onboardEnv) spec(owner string, prune bool, apps ...bootstrap.App) *bootstrap.Spec {
	return &bootstrap.Spec{
		Environment: "development",
		Seal:        bootstrap.Seal{Kind: "shamir", Shares: 1, Threshold: 1},
		Keys:        e.keys,
		Audit:       bootstrap.Audit{Type: "none"},
		KubeAuth: bootstrap.KubeAuth{Path: "kubernetes", Host: e.kube.Config.Host, CAPEM: string(e.kube.Config.CAData),
			ReviewerJWT: func(context.Context) (string, time.Time, error) {
				return "reviewer-jwt-unused-here", time.Now().Add(365 * 24 * time.Hour), nil
			}},
		KVMount: "secret", TokenTTL: time.Hour, Owner: owner, Prune: prune, Apps: apps,
	}
}

func (e *onboardEnv) run(spec *bootstrap.Spec) *bootstrap.Report {
	e.t.Helper()
	c := e.client("")
	steps, err := bootstrap.Steps(spec, bootstrap.Targets{Vault: c, VaultAddr: e.v.Addr()}, []string{bootstrap.PhaseVault, bootstrap.PhaseSecrets})
	if err != nil {
		e.t.Fatal(err)
	}
	rep, err := bootstrap.Run(e.ctx, steps, false, bootstrap.NoProgress{})
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return rep
}

// client is a Vault client with token, or with the root token bootstrap
// stored when token is "".
func (e *onboardEnv) client(token string) *api.Client {
	e.t.Helper()
	c, err := e.v.Client().Clone()
	if err != nil {
		e.t.Fatal(err)
	}
	c.ClearToken()
	if token != "" {
		c.SetToken(token)
	}
	return c
}

func (e *onboardEnv) root() *api.Client {
	e.t.Helper()
	keys, err := e.keys.Load(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.client(keys.RootToken)
}

// present reports which of the app's Vault objects exist: its policy,
// its role, its secrets and its record.
func (e *onboardEnv) present(owner string, app bootstrap.App) map[string]bool {
	e.t.Helper()
	c := e.root()
	got := map[string]bool{}
	pol, err := c.Sys().GetPolicyWithContext(e.ctx, app.Policy)
	if err != nil {
		e.t.Fatal(err)
	}
	got["policy"] = pol != ""
	role, err := c.Logical().ReadWithContext(e.ctx, "auth/kubernetes/role/"+app.Role)
	if err != nil {
		e.t.Fatal(err)
	}
	got["role"] = role != nil
	for _, s := range app.Secrets {
		m, err := c.Logical().ReadWithContext(e.ctx, "secret/metadata/"+s.Path)
		if err != nil {
			e.t.Fatal(err)
		}
		got["secret "+s.Name] = m != nil
	}
	rec, err := c.Logical().ReadWithContext(e.ctx, "secret/metadata/"+bootstrap.RecordsPrefix+"/"+owner+"/"+app.Namespace+"."+app.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	got["record"] = rec != nil
	return got
}

func (e *onboardEnv) wantPresent(owner string, app bootstrap.App, want bool) {
	e.t.Helper()
	for what, ok := range e.present(owner, app) {
		if ok != want {
			e.t.Errorf("%s/%s: %s present = %v, want %v", app.Namespace, app.Name, what, ok, want)
		}
	}
}

func onboardApp(ns, name, sa string, secrets ...bootstrap.Secret) bootstrap.App {
	return bootstrap.App{Name: name, Namespace: ns, ServiceAccount: sa, Role: sa,
		Policy: "blinkchamber-" + ns + "-" + name, Secrets: secrets}
}

func onboardSecret(ns, app, name string) bootstrap.Secret {
	return bootstrap.Secret{Name: name, Path: ns + "/" + app + "/" + name,
		Literal:  map[string]string{"username": app},
		Imported: map[string]string{"api-key": "provided-" + app},
		Generate: map[string]func() (string, error){"password": func() (string, error) { return "generated-" + app, nil }}}
}

// TestOnboardingIsIdempotentAndPrunesOnlyWhenAsked: apps added to the spec
// get their policy, role, secrets and record; a second run changes
// nothing; a removed app keeps everything until prune is on, and prune
// then removes exactly its objects: not those of the apps still listed,
// not a role that a renamed app still uses, not another owner's apps.
func TestOnboardingIsIdempotentAndPrunesOnlyWhenAsked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := newOnboardEnv(t, ctx)
	shop := onboardApp("shop", "web", "web", onboardSecret("shop", "web", "db"))
	billing := onboardApp("billing", "api", "api", onboardSecret("billing", "api", "db"), onboardSecret("billing", "api", "stripe"))
	reports := onboardApp("billing", "reports", "reports", onboardSecret("billing", "reports", "db"))
	other := onboardApp("ops", "tool", "tool", onboardSecret("ops", "tool", "token"))

	if rep := e.run(e.spec("platform", false, shop, billing, reports)); rep.Changed == 0 {
		t.Fatal("the first run changed nothing")
	}
	if rep := e.run(e.spec("team-b", true, other)); rep.Changed == 0 {
		t.Fatal("the other owner's run changed nothing")
	}
	if rep := e.run(e.spec("platform", false, shop, billing, reports)); rep.Changed != 0 {
		t.Fatalf("the second run changed %d steps: %+v", rep.Changed, rep.Results)
	}
	for _, a := range []bootstrap.App{shop, billing, reports} {
		e.wantPresent("platform", a, true)
	}
	kv, err := e.root().KVv2("secret").Get(ctx, "billing/api/stripe")
	if err != nil {
		t.Fatal(err)
	}
	if kv.Data["api-key"] != "provided-api" || kv.Data["password"] != "generated-api" || kv.Data["username"] != "api" {
		t.Errorf("billing/api/stripe holds keys %v, not the configured values", dataKeys(kv.Data))
	}

	// billing/api leaves the config; reports is renamed to summary but
	// keeps its ServiceAccount, so the role "reports" is still in use.
	summary := onboardApp("billing", "summary", "reports", onboardSecret("billing", "summary", "db"))
	rep := e.run(e.spec("platform", false, shop, summary))
	if kept := detailOf(rep, "apps no longer configured"); !strings.Contains(kept, "kept, as prune is off") ||
		!strings.Contains(kept, "billing/api") || !strings.Contains(kept, "billing/reports") {
		t.Errorf("without prune the plan says %q; want billing/api and billing/reports listed as kept", kept)
	}
	e.wantPresent("platform", billing, true)
	e.wantPresent("platform", reports, true)

	rep = e.run(e.spec("platform", true, shop, summary))
	if rep.Changed != 1 {
		t.Errorf("prune changed %d steps, want the prune step alone: %+v", rep.Changed, rep.Results)
	}
	e.wantPresent("platform", billing, false)
	got := e.present("platform", reports)
	want := map[string]bool{"policy": false, "role": true, "secret db": false, "record": false}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("billing/reports after prune: %s present = %v, want %v (the role is summary's now)", k, got[k], w)
		}
	}
	e.wantPresent("platform", shop, true)
	e.wantPresent("platform", summary, true)
	e.wantPresent("team-b", other, true)
	if rep := e.run(e.spec("platform", true, shop, summary)); rep.Changed != 0 {
		t.Fatalf("the run after prune changed %d steps: %+v", rep.Changed, rep.Results)
	}
}

func detailOf(rep *bootstrap.Report, step string) string {
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Step, step) {
			return r.Detail
		}
	}
	return ""
}

func dataKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
