package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// In production the root token does not outlive the first bootstrap: it is
// replaced by an admin token (a periodic, orphan, revocable token with the
// admin policy), stored in spec.AdminKeys, and then revoked. Every later run
// renews the admin token and uses it. The order makes every interruption
// safe: a crash before the admin token is stored leaves the root token in
// use (the next run creates another admin token; the unstored one expires
// after its period); a crash after it is stored but before the root token
// is revoked is finished by the next run.
const (
	adminPolicy = "blinkchamber-admin"
	// adminPeriod is how long the admin token lives without a bootstrap
	// run (each run renews it).
	adminPeriod = 30 * 24 * time.Hour
)

const adminPolicyText = `# Managed by blinkchamber bootstrap: what bootstrap itself needs, as a
# revocable token instead of the root token.
path "*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}
`

func adminSteps(spec *Spec, c *api.Client) []Step {
	if spec.AdminKeys == nil {
		return nil
	}
	return []Step{
		{Phase: PhaseVault, Name: "policy " + adminPolicy, Check: checkPolicy(c, adminPolicy, adminPolicyText), Apply: applyPolicy(c, adminPolicy, adminPolicyText)},
		{Phase: PhaseVault, Name: "root token replaced by an admin token", Check: checkRootRevoked(spec, c), Apply: applyRootRevoked(spec, c)},
	}
}

func checkRootRevoked(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		admin, err := loadAdmin(ctx, spec)
		if err != nil {
			return Change{}, err
		}
		root, err := rootTokenValid(ctx, spec, c)
		if err != nil {
			return Change{}, err
		}
		switch {
		case admin == "":
			return Needs("create an admin token, store it in %s, revoke the root token", spec.AdminKeys.Describe()), nil
		case root:
			return Needs("revoke the root token (the admin token is stored in %s)", spec.AdminKeys.Describe()), nil
		}
		return Unchanged("root token revoked; bootstrap uses its admin token"), nil
	}
}

// rootTokenValid asks Vault whether the stored root token still works.
func rootTokenValid(ctx context.Context, spec *Spec, c *api.Client) (bool, error) {
	keys, err := spec.Keys.Load(ctx)
	if errors.Is(err, keystore.ErrNotFound) {
		return false, fmt.Errorf("%w: no keys in %s yet", ErrBlocked, spec.Keys.Describe())
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", spec.Keys.Describe(), err)
	}
	rc, err := c.Clone()
	if err != nil {
		return false, err
	}
	rc.SetToken(keys.RootToken)
	_, err = rc.Auth().Token().LookupSelfWithContext(ctx)
	var re *api.ResponseError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return false, nil
	}
	return false, blockedIfUnready(ctx, c, fmt.Errorf("checking the root token: %w", err))
}

func applyRootRevoked(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		admin, err := loadAdmin(ctx, spec)
		if err != nil {
			return err
		}
		if admin == "" {
			if admin, err = createAdmin(ctx, spec, c); err != nil {
				return err
			}
		}
		if root, err := rootTokenValid(ctx, spec, c); err != nil || !root {
			return err
		}
		keys, err := spec.Keys.Load(ctx)
		if err != nil {
			return err
		}
		rc, err := c.Clone()
		if err != nil {
			return err
		}
		rc.SetToken(keys.RootToken)
		if err := rc.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
			return fmt.Errorf("revoking the root token: %w", err)
		}
		c.SetToken(admin)
		return nil
	}
}

// createAdmin creates the admin token with the current (root) token and
// stores it before anything else uses it.
func createAdmin(ctx context.Context, spec *Spec, c *api.Client) (string, error) {
	s, err := c.Auth().Token().CreateOrphanWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{adminPolicy}, Period: adminPeriod.String(), DisplayName: "blinkchamber-bootstrap",
	})
	if err != nil {
		return "", fmt.Errorf("creating the admin token: %w", err)
	}
	token := s.Auth.ClientToken
	k := &keystore.Keys{RootToken: token, CreatedAt: time.Now().UTC()}
	if err := spec.AdminKeys.Save(context.WithoutCancel(ctx), k); err != nil {
		return "", fmt.Errorf("storing the admin token in %s: %w", spec.AdminKeys.Describe(), err)
	}
	return token, nil
}
