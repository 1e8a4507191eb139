package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

// transitSteps prepare the transit Vault before the managed Vault starts:
// the engine and the key it unseals with. They belong to the base phase,
// ahead of the wait for Vault, because a Vault with a transit seal cannot
// start until its key exists.
func transitSteps(spec *Spec) []Step {
	t := spec.Seal.Transit
	if t == nil {
		return nil
	}
	where := fmt.Sprintf("%s/keys/%s on %s", t.Mount, t.Key, t.Address)
	return []Step{{Phase: PhaseBase, Name: "transit key " + where,
		Check: func(ctx context.Context) (Change, error) {
			mounts, err := t.Client.Sys().ListMountsWithContext(ctx)
			if err != nil {
				return Change{}, fmt.Errorf("listing engines of the transit Vault %s: %w", t.Address, err)
			}
			m, ok := mounts[t.Mount+"/"]
			switch {
			case !ok:
				return Needs("enable the transit engine at %s/ and create key %s", t.Mount, t.Key), nil
			case m.Type != "transit":
				return Change{}, fmt.Errorf("%s/ on %s is a %s engine, not transit", t.Mount, t.Address, m.Type)
			}
			s, err := t.Client.Logical().ReadWithContext(ctx, t.Mount+"/keys/"+t.Key)
			if err != nil {
				return Change{}, fmt.Errorf("reading transit key %s: %w", where, err)
			}
			if s == nil {
				return Needs("create key %s", t.Key), nil
			}
			return Unchanged("present"), nil
		},
		Apply: func(ctx context.Context) error {
			mounts, err := t.Client.Sys().ListMountsWithContext(ctx)
			if err != nil {
				return err
			}
			if _, ok := mounts[t.Mount+"/"]; !ok {
				if err := t.Client.Sys().MountWithContext(ctx, t.Mount, &api.MountInput{Type: "transit"}); err != nil {
					return fmt.Errorf("enabling transit on %s: %w", t.Address, err)
				}
			}
			_, err = t.Client.Logical().WriteWithContext(ctx, t.Mount+"/keys/"+t.Key, map[string]any{"type": "aes256-gcm96"})
			return err
		}}}
}

// SealStanza is the `seal` block of the managed Vault's server config for
// an auto-unseal seal, or "" for Shamir. It never holds a token: the server
// reads the transit token from VAULT_TOKEN.
func SealStanza(s Seal) string {
	var b strings.Builder
	switch {
	case s.Transit != nil:
		t := s.Transit
		fmt.Fprintf(&b, "seal \"transit\" {\n  address    = %q\n  mount_path = %q\n  key_name   = %q\n", t.Address, t.Mount+"/", t.Key)
		if t.CAFile != "" {
			fmt.Fprintf(&b, "  tls_ca_cert = %q\n", t.CAFile)
		}
		b.WriteString("  # token: set VAULT_TOKEN in the server's environment (never in this file)\n}\n")
	case s.AWSKMS != nil:
		fmt.Fprintf(&b, "seal \"awskms\" {\n  region     = %q\n  kms_key_id = %q\n  # credentials: the pod's IAM role (IRSA) or AWS_* variables\n}\n", s.AWSKMS.Region, s.AWSKMS.KMSKeyID)
	}
	return b.String()
}
