package bootstrap_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// TestProductionRevokesRootToken runs the vault and secrets phases the way
// production does (the seal aside: AWS KMS cannot be reached here, so the
// real Vault uses Shamir): the root token is replaced by a stored admin
// token and revoked, a second run uses the admin token and changes nothing.
func TestProductionRevokesRootToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube, v, dir := kubeAndVault(t, ctx)
	spec := &bootstrap.Spec{
		Environment: "production",
		Seal:        bootstrap.Seal{Kind: "shamir", Shares: 3, Threshold: 2},
		Keys:        keystore.NewFile(filepath.Join(dir, "keys.json")),
		AdminKeys:   keystore.NewFile(filepath.Join(dir, "keys-admin-token.json")),
		Audit:       bootstrap.Audit{Type: "none"},
		KubeAuth: bootstrap.KubeAuth{Path: "kubernetes", Host: kube.Config.Host, CAPEM: string(kube.Config.CAData),
			ReviewerJWT: func(context.Context) (string, time.Time, error) {
				return "reviewer-jwt-unused-here", time.Now().Add(365 * 24 * time.Hour), nil
			}},
		KVMount: "secret", TokenTTL: time.Hour,
		Apps: []bootstrap.App{{Name: "api", Namespace: "prod", ServiceAccount: "api", Policy: "blinkchamber-prod-api", Role: "api",
			Secrets: []bootstrap.Secret{{Name: "db", Path: "prod/api/db", Literal: map[string]string{"user": "api"}}}}},
	}
	run := func() *bootstrap.Report {
		t.Helper()
		c, err := v.Client().Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.ClearToken()
		steps, err := bootstrap.Steps(spec, bootstrap.Targets{Vault: c, VaultAddr: v.Addr()}, []string{bootstrap.PhaseVault, bootstrap.PhaseSecrets})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := bootstrap.Run(ctx, steps, false, bootstrap.NoProgress{})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return rep
	}
	if rep := run(); rep.Changed == 0 {
		t.Fatal("the first run changed nothing")
	}
	keys, err := spec.Keys.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := spec.AdminKeys.Load(ctx)
	if err != nil || admin.RootToken == "" || admin.RootToken == keys.RootToken {
		t.Fatalf("admin token not stored apart from the root token: %v", err)
	}
	c, _ := v.Client().Clone()
	c.SetToken(keys.RootToken)
	_, err = c.Auth().Token().LookupSelfWithContext(ctx)
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("the root token still works: %v", err)
	}
	c.SetToken(admin.RootToken)
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatalf("the admin token does not work: %v", err)
	}
	if period, _ := self.Data["period"].(interface{ String() string }); period == nil || period.String() == "0" {
		t.Errorf("the admin token is not periodic: %v", self.Data["period"])
	}
	if rep := run(); rep.Changed != 0 {
		t.Fatalf("the second run changed %d steps: %+v", rep.Changed, rep.Results)
	}
}
