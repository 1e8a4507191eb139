package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// vaultSteps is phase 2: init, keys stored, unseal, token, audit, kubernetes
// auth.
func vaultSteps(spec *Spec, c *api.Client) []Step {
	p := PhaseVault
	return append([]Step{
		{Phase: p, Name: "initialise", Check: checkInit(spec, c), Apply: applyInit(spec, c)},
		{Phase: p, Name: "unseal", Check: checkUnseal(spec, c), Apply: applyUnseal(spec, c)},
		{Phase: p, Name: "admin token", Check: checkToken(spec, c), Apply: noop},
		{Phase: p, Name: "audit device", Check: checkAudit(spec, c), Apply: applyAudit(spec, c)},
		{Phase: p, Name: "kubernetes auth method", Check: checkAuthMount(spec, c), Apply: applyAuthMount(spec, c)},
		{Phase: p, Name: "kubernetes auth config", Check: checkAuthConfig(spec, c), Apply: applyAuthConfig(spec, c)},
	}, adminSteps(spec, c)...)
}

func checkInit(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		ok, err := c.Sys().InitStatusWithContext(ctx)
		if err != nil {
			return Change{}, fmt.Errorf("asking Vault whether it is initialised: %w", err)
		}
		if ok {
			return Unchanged("already initialised"), nil
		}
		return Needs("initialise (%s, %d shares, threshold %d) and store the keys in %s. WARNING: whoever can read %s can unseal Vault and holds its root token; keep it as you would keep Vault itself",
			spec.Seal.Kind, spec.Seal.Shares, spec.Seal.Threshold, spec.Keys.Describe(), spec.Keys.Describe()), nil
	}
}

// applyInit initialises Vault and stores the keys before anything else. The
// keys exist only in Vault's answer, so an interruption (SIGINT, SIGTERM)
// does not stop the request or the store's fsync: an interrupted run never
// loses them. (SIGKILL cannot be held off; that window is one local write.)
func applyInit(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := spec.Keys.Load(ctx); err == nil {
			return fmt.Errorf("%s already holds keys but Vault is not initialised: refusing to initialise again and replace them (another Vault's keys, or Vault's storage was wiped)", spec.Keys.Describe())
		} else if !errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("reading %s: %w", spec.Keys.Describe(), err)
		}
		req := &api.InitRequest{SecretShares: spec.Seal.Shares, SecretThreshold: spec.Seal.Threshold}
		if spec.Seal.AutoUnseal() {
			req = &api.InitRequest{RecoveryShares: spec.Seal.Shares, RecoveryThreshold: spec.Seal.Threshold}
		}
		// SIGINT and SIGTERM only cancel ctx (the command's NotifyContext);
		// the request and the save below ignore that cancellation, so the
		// keys are stored even when the run is interrupted meanwhile.
		resp, err := c.Sys().InitWithContext(context.WithoutCancel(ctx), req)
		if err != nil {
			return fmt.Errorf("initialising Vault: %w", err)
		}
		keys := &keystore.Keys{UnsealKeysB64: resp.KeysB64, RootToken: resp.RootToken,
			Threshold: spec.Seal.Threshold, CreatedAt: time.Now().UTC()}
		if spec.Seal.AutoUnseal() {
			keys.UnsealKeysB64 = resp.RecoveryKeysB64
		}
		if err := spec.Keys.Save(context.WithoutCancel(ctx), keys); err != nil {
			return fmt.Errorf("Vault is initialised but its keys could not be stored in %s: %w; "+
				"they are lost unless you saved this run's output (they are never printed)", spec.Keys.Describe(), err)
		}
		return nil
	}
}

func checkUnseal(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		st, err := c.Sys().SealStatusWithContext(ctx)
		if err != nil {
			return Change{}, fmt.Errorf("reading the seal status: %w", err)
		}
		switch {
		case !st.Initialized:
			return Change{}, fmt.Errorf("%w: Vault is not initialised", ErrBlocked)
		case !st.Sealed:
			if err := waitActive(ctx, c); err != nil {
				return Change{}, err
			}
			return Unchanged(fmt.Sprintf("unsealed (%s seal)", st.Type)), nil
		case spec.Seal.AutoUnseal():
			return Change{}, fmt.Errorf("Vault uses %s auto-unseal but is sealed: check its seal configuration and access to the %s key", st.Type, spec.Seal.Kind)
		}
		return Needs("unseal with %d of %d keys from %s", st.T, st.N, spec.Keys.Describe()), nil
	}
}

func applyUnseal(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := Unseal(ctx, c, spec.Keys); err != nil {
			return err
		}
		return waitActive(ctx, c)
	}
}

// activeTimeout bounds the wait for an active node after unsealing.
const activeTimeout = 2 * time.Minute

// waitActive waits until the cluster has an active node. With integrated
// storage a node just unsealed elects itself (or finds the leader) a few
// seconds later; until then every request fails with "local node not
// active but active cluster node not found".
func waitActive(ctx context.Context, c *api.Client) error {
	ctx, cancel := context.WithTimeout(ctx, activeTimeout)
	defer cancel()
	var last error
	for {
		l, err := c.Sys().LeaderWithContext(ctx)
		switch {
		case err != nil:
			last = err
		case !l.HAEnabled || l.IsSelf || l.LeaderAddress != "":
			return nil
		default:
			last = errors.New("no active node elected yet")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Vault is unsealed but has no active node after %s: %w", activeTimeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Unseal submits keys from the store until Vault is unsealed.
func Unseal(ctx context.Context, c *api.Client, store keystore.Store) error {
	keys, err := store.Load(ctx)
	if err != nil {
		return fmt.Errorf("reading unseal keys from %s: %w", store.Describe(), err)
	}
	for i, k := range keys.UnsealKeysB64 {
		st, err := c.Sys().UnsealWithContext(ctx, k)
		if err != nil {
			return fmt.Errorf("submitting unseal key %d of %s: %w", i+1, store.Describe(), err)
		}
		if !st.Sealed {
			return nil
		}
	}
	return fmt.Errorf("Vault is still sealed after every key in %s: they belong to another Vault", store.Describe())
}

// checkToken installs the token bootstrap works with: the admin token when
// one replaced the root token (production), else the root token from the
// key store. It changes nothing in Vault but renewing the admin token,
// which is periodic.
func checkToken(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		if admin, err := loadAdmin(ctx, spec); err != nil {
			return Change{}, err
		} else if admin != "" {
			c.SetToken(admin)
			if _, err := c.Auth().Token().RenewSelfWithContext(ctx, 0); err != nil {
				return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("renewing the admin token from %s: %w "+
					"(if it expired, more than 30 days after the last bootstrap run, make a new root token with `vault operator generate-root` and the unseal or recovery keys)",
					spec.AdminKeys.Describe(), err))
			}
			return Unchanged("using the admin token from " + spec.AdminKeys.Describe() + " (renewed)"), nil
		}
		keys, err := spec.Keys.Load(ctx)
		if errors.Is(err, keystore.ErrNotFound) {
			return Change{}, fmt.Errorf("%w: no keys in %s yet", ErrBlocked, spec.Keys.Describe())
		}
		if err != nil {
			return Change{}, fmt.Errorf("reading %s: %w", spec.Keys.Describe(), err)
		}
		c.SetToken(keys.RootToken)
		if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			if sealed(ctx, c) {
				return Change{}, fmt.Errorf("%w: Vault is sealed", ErrBlocked)
			}
			return Change{}, fmt.Errorf("the token in %s is not valid for this Vault: %w", spec.Keys.Describe(), err)
		}
		return Unchanged("using the root token from " + spec.Keys.Describe()), nil
	}
}

// loadAdmin returns the stored admin token, or "" when there is none.
func loadAdmin(ctx context.Context, spec *Spec) (string, error) {
	if spec.AdminKeys == nil {
		return "", nil
	}
	k, err := spec.AdminKeys.Load(ctx)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading %s: %w", spec.AdminKeys.Describe(), err)
	}
	return k.RootToken, nil
}

// UseAdminToken points c at the token bootstrap works with.
func UseAdminToken(ctx context.Context, spec *Spec, c *api.Client) error {
	_, err := checkToken(spec, c)(ctx)
	return err
}

func sealed(ctx context.Context, c *api.Client) bool {
	st, err := c.Sys().SealStatusWithContext(ctx)
	return err != nil || st.Sealed
}

const auditName = "blinkchamber"

func checkAudit(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		if spec.Audit.Type == "none" {
			return Unchanged("no audit device configured"), nil
		}
		devices, err := c.Sys().ListAuditWithContext(ctx)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("listing audit devices: %w", err))
		}
		if d, ok := devices[auditName+"/"]; ok {
			if d.Type == spec.Audit.Type && d.Options["file_path"] == spec.Audit.Path {
				return Unchanged(fmt.Sprintf("%s audit device at %s", d.Type, spec.Audit.Path)), nil
			}
			return Change{}, fmt.Errorf("audit device %s/ is %s %q, the config says %s %q: audit devices are not changed automatically (disable it by hand first)",
				auditName, d.Type, d.Options["file_path"], spec.Audit.Type, spec.Audit.Path)
		}
		return Needs("enable a %s audit device at %s", spec.Audit.Type, spec.Audit.Path), nil
	}
}

func applyAudit(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		opts := map[string]string{"file_path": spec.Audit.Path}
		return c.Sys().EnableAuditWithOptionsWithContext(ctx, auditName, &api.EnableAuditOptions{Type: spec.Audit.Type, Options: opts})
	}
}

// blockedIfUnready turns an error caused by a sealed or tokenless Vault
// into ErrBlocked (during a plan, earlier steps would fix it).
func blockedIfUnready(ctx context.Context, c *api.Client, err error) error {
	if c.Token() == "" || sealed(ctx, c) {
		return fmt.Errorf("%w: %w", ErrBlocked, err)
	}
	return err
}

func checkAuthMount(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		auths, err := c.Sys().ListAuthWithContext(ctx)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("listing auth methods: %w", err))
		}
		if a, ok := auths[spec.KubeAuth.Path+"/"]; ok {
			if a.Type != "kubernetes" {
				return Change{}, fmt.Errorf("auth/%s is a %s auth method, not kubernetes", spec.KubeAuth.Path, a.Type)
			}
			return Unchanged("enabled at auth/" + spec.KubeAuth.Path), nil
		}
		return Needs("enable at auth/%s", spec.KubeAuth.Path), nil
	}
}

func applyAuthMount(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		return c.Sys().EnableAuthWithOptionsWithContext(ctx, spec.KubeAuth.Path, &api.EnableAuthOptions{Type: "kubernetes"})
	}
}

func checkAuthConfig(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		s, err := c.Logical().ReadWithContext(ctx, "auth/"+spec.KubeAuth.Path+"/config")
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("reading the kubernetes auth config: %w", err))
		}
		if s == nil || s.Data == nil {
			return Needs("trust the API server at %s", spec.KubeAuth.Host), nil
		}
		var drift []string
		if s.Data["kubernetes_host"] != spec.KubeAuth.Host {
			drift = append(drift, "kubernetes_host")
		}
		if strings.TrimSpace(fmt.Sprint(s.Data["kubernetes_ca_cert"])) != strings.TrimSpace(spec.KubeAuth.CAPEM) {
			drift = append(drift, "kubernetes_ca_cert")
		}
		set, _ := s.Data["token_reviewer_jwt_set"].(bool)
		switch {
		case spec.KubeAuth.VaultPodReviewer:
			// Vault reads its own pod's token only when it has none set
			// and local_ca_jwt is not disabled.
			if set {
				drift = append(drift, "token_reviewer_jwt (Vault reviews with its own pod's token)")
			}
			if off, _ := s.Data["disable_local_ca_jwt"].(bool); off {
				drift = append(drift, "disable_local_ca_jwt")
			}
		case !set:
			drift = append(drift, "token_reviewer_jwt")
		case !reviewerFresh(ctx, spec, c):
			// Vault does not say when the reviewer's token expires; bootstrap
			// records it, and refreshes the token well before.
			drift = append(drift, "token_reviewer_jwt (expiring)")
		}
		if len(drift) > 0 {
			return Needs("repair %s", strings.Join(drift, ", ")), nil
		}
		return Unchanged("trusts the API server at " + spec.KubeAuth.Host), nil
	}
}

func applyAuthConfig(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		path := "auth/" + spec.KubeAuth.Path + "/config"
		if spec.KubeAuth.VaultPodReviewer {
			// A write replaces the whole config: a token set before is
			// gone, and Vault reads its own pod's token (and re-reads it as
			// the kubelet rotates it) for every TokenReview.
			if _, err := c.Logical().WriteWithContext(ctx, path, map[string]any{
				"kubernetes_host": spec.KubeAuth.Host, "kubernetes_ca_cert": spec.KubeAuth.CAPEM, "disable_local_ca_jwt": false,
			}); err != nil {
				return err
			}
			// No reviewer token, so no expiry to record.
			return setAuthDescription(ctx, spec, c, "")
		}
		jwt, expires, err := spec.KubeAuth.ReviewerJWT(ctx)
		if err != nil {
			return fmt.Errorf("minting the token reviewer's token: %w", err)
		}
		_, err = c.Logical().WriteWithContext(ctx, path, map[string]any{
			"kubernetes_host": spec.KubeAuth.Host, "kubernetes_ca_cert": spec.KubeAuth.CAPEM, "token_reviewer_jwt": jwt,
		})
		if err != nil {
			return err
		}
		return setAuthDescription(ctx, spec, c, reviewerPrefix+expires.UTC().Format(time.RFC3339))
	}
}

// readFile reads a config-named file, naming it in the error.
func readFile(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Vault never returns the reviewer's token, so bootstrap records when it
// expires in the auth mount's description and refreshes it a month ahead.
const (
	reviewerPrefix  = "blinkchamber: reviewer token expires "
	reviewerRefresh = 30 * 24 * time.Hour
)

// reviewerFresh reports whether the recorded expiry of the reviewer's token
// is more than reviewerRefresh away.
func reviewerFresh(ctx context.Context, spec *Spec, c *api.Client) bool {
	auths, err := c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return false
	}
	a, ok := auths[spec.KubeAuth.Path+"/"]
	if !ok {
		return false
	}
	ts, ok := strings.CutPrefix(a.Description, reviewerPrefix)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, ts)
	return err == nil && time.Until(t) >= reviewerRefresh
}

func setAuthDescription(ctx context.Context, spec *Spec, c *api.Client, desc string) error {
	return c.Sys().TuneMountWithContext(ctx, "auth/"+spec.KubeAuth.Path, api.MountConfigInput{Description: &desc})
}
