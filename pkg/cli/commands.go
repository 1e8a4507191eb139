package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
)

// statusReport is what `status` prints: Vault's state, then what a plan of
// every phase finds, without secret values.
type statusReport struct {
	Vault struct {
		Address     string `json:"address"`
		Initialized bool   `json:"initialized"`
		Sealed      bool   `json:"sealed"`
		Version     string `json:"version"`
		Seal        string `json:"seal"`
	} `json:"vault"`
	KeyStore string            `json:"keyStore"`
	Plan     *bootstrap.Report `json:"plan"`
	Apps     []appStatus       `json:"apps"`
}

type appStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Role      string `json:"role"`
	Policy    string `json:"policy"`
	Secrets   int    `json:"secrets"`
}

func status(ctx context.Context, o *Options, w io.Writer) error {
	env, err := load(ctx, o)
	if err != nil {
		return err
	}
	var st statusReport
	st.Vault.Address = env.targets.VaultAddr
	st.KeyStore = env.spec.Keys.Describe()
	if s, err := env.targets.Vault.Sys().SealStatusWithContext(ctx); err == nil {
		st.Vault.Initialized, st.Vault.Sealed, st.Vault.Version, st.Vault.Seal = s.Initialized, s.Sealed, s.Version, s.Type
	} else {
		return fmt.Errorf("Vault at %s does not answer: %w", env.targets.VaultAddr, err)
	}
	phases := []string{bootstrap.PhaseBase, bootstrap.PhaseVault, bootstrap.PhaseSecrets}
	steps, err := bootstrap.Steps(env.spec, env.targets, phases)
	if err != nil {
		return err
	}
	st.Plan, _ = bootstrap.Run(ctx, steps, true, bootstrap.NoProgress{})
	for _, a := range env.spec.Apps {
		st.Apps = append(st.Apps, appStatus{Name: a.Name, Namespace: a.Namespace, Role: a.Role, Policy: a.Policy, Secrets: len(a.Secrets)})
	}
	if o.Output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "Vault %s: version %s, initialised %v, sealed %v, %s seal\n", st.Vault.Address, st.Vault.Version, st.Vault.Initialized, st.Vault.Sealed, st.Vault.Seal)
	fmt.Fprintf(w, "keys: %s\n", st.KeyStore)
	for _, a := range st.Apps {
		fmt.Fprintf(w, "app %s/%s: role %s, policy %s, %d secrets\n", a.Namespace, a.Name, a.Role, a.Policy, a.Secrets)
	}
	var pending []string
	for _, r := range st.Plan.Results {
		if r.Status != bootstrap.StatusOK {
			pending = append(pending, fmt.Sprintf("  [%s] %s %s: %s%s", r.Phase, r.Status, r.Step, r.Detail, r.Error))
		}
	}
	if len(pending) == 0 {
		fmt.Fprintln(w, "in sync: bootstrap would change nothing")
		return nil
	}
	fmt.Fprintf(w, "out of sync (%d):\n%s\n", len(pending), strings.Join(pending, "\n"))
	return nil
}

func unseal(ctx context.Context, o *Options, w io.Writer) error {
	env, err := load(ctx, o)
	if err != nil {
		return err
	}
	st, err := env.targets.Vault.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return fmt.Errorf("Vault at %s does not answer: %w", env.targets.VaultAddr, err)
	}
	if !st.Sealed {
		fmt.Fprintln(w, "Vault is not sealed: nothing to do")
		return nil
	}
	if env.spec.Seal.AutoUnseal() {
		return fmt.Errorf("Vault uses %s auto-unseal: it unseals itself; check its access to the seal key", env.spec.Seal.Kind)
	}
	if err := bootstrap.Unseal(ctx, env.targets.Vault, env.spec.Keys); err != nil {
		return err
	}
	fmt.Fprintf(w, "Vault unsealed with keys from %s\n", env.spec.Keys.Describe())
	return nil
}

func rotate(ctx context.Context, o *Options, target string, w io.Writer) error {
	appName, secretName, ok := strings.Cut(target, "/")
	if !ok || appName == "" || secretName == "" {
		return &usageError{fmt.Sprintf("secrets rotate: %q must be <app>/<secret>", target)}
	}
	env, err := load(ctx, o)
	if err != nil {
		return err
	}
	for _, a := range env.spec.Apps {
		if a.Name != appName {
			continue
		}
		for _, s := range a.Secrets {
			if s.Name != secretName {
				continue
			}
			if err := bootstrap.UseAdminToken(ctx, env.spec, env.targets.Vault); err != nil {
				return err
			}
			if err := bootstrap.Rotate(ctx, env.targets.Vault, env.spec, s); err != nil {
				return err
			}
			fmt.Fprintf(w, "rotated the generated values of %s/data/%s; agents render the new version within their render interval\n", env.spec.KVMount, s.Path)
			return nil
		}
		return fmt.Errorf("app %s has no secret %q in %s", appName, secretName, o.Config)
	}
	return fmt.Errorf("no app %q in %s", appName, o.Config)
}

// sealConfig prints the seal stanza for Vault's server config. It reads
// only the config file: no cluster or Vault is contacted.
func sealConfig(o *Options, w io.Writer) error {
	cfg, err := config.Load(o.Config)
	if err != nil {
		return err
	}
	s, err := seal(cfg.Vault.Seal)
	if err != nil {
		return err
	}
	stanza := bootstrap.SealStanza(s)
	if stanza == "" {
		fmt.Fprintln(w, "# Shamir seal: Vault's default, no seal stanza; bootstrap unseals it with the keys from the key store")
		return nil
	}
	fmt.Fprint(w, stanza)
	return nil
}
