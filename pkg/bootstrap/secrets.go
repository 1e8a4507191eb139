package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// secretsSteps is phase 3: KV v2, each app's secrets, policy and role, and
// the database engine for apps that ask for it.
func secretsSteps(spec *Spec, c *api.Client) []Step {
	p := PhaseSecrets
	steps := []Step{{Phase: p, Name: "kv-v2 at " + spec.KVMount + "/", Check: checkKV(spec, c), Apply: applyKV(spec, c)}}
	// Every secret first: a database connection may take its password from
	// another app's secret.
	for _, app := range spec.Apps {
		for _, s := range app.Secrets {
			steps = append(steps, Step{Phase: p, Name: fmt.Sprintf("secret %s/data/%s", spec.KVMount, s.Path),
				Check: checkSecret(spec, c, s), Apply: applySecret(spec, c, s)})
		}
	}
	dbMount := false
	for _, app := range spec.Apps {
		if app.Database != nil {
			db := databaseSteps(spec, c, app)
			if dbMount {
				db = db[1:] // the engine is enabled once
			}
			dbMount = true
			steps = append(steps, db...)
		}
	}
	for _, app := range spec.Apps {
		steps = append(steps,
			Step{Phase: p, Name: "policy " + app.Policy, Check: checkPolicy(c, app.Policy, policyFor(spec, app)), Apply: applyPolicy(c, app.Policy, policyFor(spec, app))},
			Step{Phase: p, Name: "kubernetes role " + app.Role, Check: checkRole(spec, c, app), Apply: applyRole(spec, c, app)},
			recordStep(spec, c, app),
		)
	}
	return append(steps, pruneStep(spec, c))
}

func checkKV(spec *Spec, c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		mounts, err := c.Sys().ListMountsWithContext(ctx)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("listing secrets engines: %w", err))
		}
		m, ok := mounts[spec.KVMount+"/"]
		switch {
		case !ok:
			return Needs("enable KV version 2"), nil
		case m.Type != "kv" || m.Options["version"] != "2":
			return Change{}, fmt.Errorf("%s/ is a %s engine (options %v), not KV version 2: move it or set vault.kvMount", spec.KVMount, m.Type, m.Options)
		}
		return Unchanged("KV version 2"), nil
	}
}

func applyKV(spec *Spec, c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		return c.Sys().MountWithContext(ctx, spec.KVMount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	}
}

// secretDiff is what a secret needs: keys to generate, and config-owned
// keys (literal, imported) that are missing or differ. Values never leave
// this struct except into Vault.
type secretDiff struct {
	exists   bool
	version  int
	current  map[string]any
	generate []string
	set      map[string]string
}

func (d *secretDiff) needed() bool { return len(d.generate) > 0 || len(d.set) > 0 }

func diffSecret(ctx context.Context, c *api.Client, spec *Spec, s Secret) (*secretDiff, error) {
	kv, err := c.KVv2(spec.KVMount).Get(ctx, s.Path)
	d := &secretDiff{set: map[string]string{}, current: map[string]any{}}
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
	case err != nil:
		return nil, blockedIfUnready(ctx, c, fmt.Errorf("reading %s: %w", s.Path, err))
	default:
		d.exists = kv.Data != nil
		if kv.Data != nil {
			d.current = kv.Data
		}
		if kv.VersionMetadata != nil {
			d.version = kv.VersionMetadata.Version
		}
	}
	for k := range s.Generate {
		if _, ok := d.current[k]; !ok {
			d.generate = append(d.generate, k)
		}
	}
	sort.Strings(d.generate)
	for _, owned := range []map[string]string{s.Literal, s.Imported} {
		for k, v := range owned {
			if fmt.Sprint(d.current[k]) != v || d.current[k] == nil {
				d.set[k] = v
			}
		}
	}
	return d, nil
}

func checkSecret(spec *Spec, c *api.Client, s Secret) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		d, err := diffSecret(ctx, c, spec, s)
		if err != nil {
			return Change{}, err
		}
		if !d.needed() {
			return Unchanged(fmt.Sprintf("present (version %d)", d.version)), nil
		}
		var parts []string
		if len(d.generate) > 0 {
			parts = append(parts, "generate "+strings.Join(d.generate, ", "))
		}
		if len(d.set) > 0 {
			parts = append(parts, "set "+strings.Join(sortedKeys(d.set), ", "))
		}
		verb := "create"
		if d.exists {
			verb = "update"
		}
		return Needs("%s: %s", verb, strings.Join(parts, "; ")), nil
	}
}

// applySecret writes the keys the diff found, keeping every other key, with
// check-and-set on the version read, so a concurrent edit is never lost and
// a generated value is never overwritten.
func applySecret(spec *Spec, c *api.Client, s Secret) func(context.Context) error {
	return func(ctx context.Context) error {
		d, err := diffSecret(ctx, c, spec, s)
		if err != nil || !d.needed() {
			return err
		}
		data := make(map[string]any, len(d.current)+len(d.generate)+len(d.set))
		for k, v := range d.current {
			data[k] = v
		}
		for k, v := range d.set {
			data[k] = v
		}
		for _, k := range d.generate {
			v, err := s.Generate[k]()
			if err != nil {
				return fmt.Errorf("generating %s of %s: %w", k, s.Path, err)
			}
			data[k] = v
		}
		_, err = c.KVv2(spec.KVMount).Put(ctx, s.Path, data, api.WithCheckAndSet(d.version))
		return err
	}
}

// Rotate replaces the generated values of one secret (and only those).
func Rotate(ctx context.Context, c *api.Client, spec *Spec, s Secret) error {
	d, err := diffSecret(ctx, c, spec, s)
	if err != nil {
		return err
	}
	if !d.exists {
		return fmt.Errorf("%s/data/%s does not exist yet: run bootstrap secrets first", spec.KVMount, s.Path)
	}
	if len(s.Generate) == 0 {
		return fmt.Errorf("%s has no generated keys to rotate", s.Path)
	}
	data := make(map[string]any, len(d.current))
	for k, v := range d.current {
		data[k] = v
	}
	for k, gen := range s.Generate {
		v, err := gen()
		if err != nil {
			return fmt.Errorf("generating %s of %s: %w", k, s.Path, err)
		}
		data[k] = v
	}
	_, err = c.KVv2(spec.KVMount).Put(ctx, s.Path, data, api.WithCheckAndSet(d.version))
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// policyFor is an app's read-only policy: its own KV path, its own
// database credentials and the system endpoints its config names, nothing
// else.
func policyFor(spec *Spec, app App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by blinkchamber bootstrap: read-only access for %s/%s.\n", app.Namespace, app.Name)
	fmt.Fprintf(&b, "path \"%s/data/%s/%s/*\" {\n  capabilities = [\"read\"]\n}\n", spec.KVMount, app.Namespace, app.Name)
	fmt.Fprintf(&b, "path \"%s/metadata/%s/%s/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n", spec.KVMount, app.Namespace, app.Name)
	if app.Database != nil {
		for _, r := range app.Database.Roles {
			fmt.Fprintf(&b, "path \"database/creds/%s\" {\n  capabilities = [\"read\"]\n}\n", r.Name)
		}
	}
	for _, p := range app.ReadPaths {
		fmt.Fprintf(&b, "path \"%s\" {\n  capabilities = [\"read\"]\n}\n", p)
	}
	return b.String()
}

func checkPolicy(c *api.Client, name, want string) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		got, err := c.Sys().GetPolicyWithContext(ctx, name)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("reading policy %s: %w", name, err))
		}
		switch {
		case got == "":
			return Needs("create"), nil
		case strings.TrimSpace(got) != strings.TrimSpace(want):
			return Needs("repair: it differs from the config (edited by hand?)"), nil
		}
		return Unchanged("as configured"), nil
	}
}

func applyPolicy(c *api.Client, name, text string) func(context.Context) error {
	return func(ctx context.Context) error { return c.Sys().PutPolicyWithContext(ctx, name, text) }
}

func roleData(spec *Spec, app App) map[string]any {
	return map[string]any{
		"bound_service_account_names":      []string{app.ServiceAccount},
		"bound_service_account_namespaces": []string{app.Namespace},
		"audience":                         "vault",
		"token_policies":                   []string{app.Policy},
		"token_ttl":                        int(spec.TokenTTL.Seconds()),
		"token_max_ttl":                    int((24 * spec.TokenTTL).Seconds()),
	}
}

func checkRole(spec *Spec, c *api.Client, app App) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		path := "auth/" + spec.KubeAuth.Path + "/role/" + app.Role
		s, err := c.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("reading %s: %w", path, err))
		}
		if s == nil {
			return Needs("create, bound to ServiceAccount %s/%s with policy %s", app.Namespace, app.ServiceAccount, app.Policy), nil
		}
		if drift := driftedKeys(s.Data, roleData(spec, app)); len(drift) > 0 {
			return Needs("repair %s", strings.Join(drift, ", ")), nil
		}
		return Unchanged(fmt.Sprintf("bound to %s/%s", app.Namespace, app.ServiceAccount)), nil
	}
}

func applyRole(spec *Spec, c *api.Client, app App) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Logical().WriteWithContext(ctx, "auth/"+spec.KubeAuth.Path+"/role/"+app.Role, roleData(spec, app))
		return err
	}
}

// driftedKeys lists, sorted, the keys of want whose value Vault holds
// differently in got.
func driftedKeys(got, want map[string]any) []string {
	var drift []string
	for k, w := range want {
		if !sameValue(got[k], w) {
			drift = append(drift, k)
		}
	}
	sort.Strings(drift)
	return drift
}

// sameValue compares what Vault returned (JSON: []any, json.Number) with
// what bootstrap writes.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case []string:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		gs := make([]string, len(g))
		for i, x := range g {
			gs[i] = fmt.Sprint(x)
		}
		slices.Sort(gs)
		ws := slices.Clone(w)
		slices.Sort(ws)
		return reflect.DeepEqual(gs, ws)
	default:
		return fmt.Sprint(got) == fmt.Sprint(want)
	}
}
