package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// RecordsPrefix is where, inside the KV mount, bootstrap records what it
// provisioned for each app: <RecordsPrefix>/<owner>/<namespace>.<app>. No
// app can read it: app paths start with a namespace, a DNS label, which
// never starts with "_". A record holds names, never a secret value.
const RecordsPrefix = "_blinkchamber/apps"

// Record is what bootstrap provisioned in Vault for one app, so that a
// later run can remove exactly that once the app leaves the config.
type Record struct {
	Namespace    string   `json:"namespace"`
	Name         string   `json:"name"`
	Policy       string   `json:"policy"`
	Role         string   `json:"role"`
	Secrets      []string `json:"secrets,omitempty"`
	DBConnection string   `json:"dbConnection,omitempty"`
	DBRoles      []string `json:"dbRoles,omitempty"`
}

// recordOf is the record of an app as the spec provisions it.
func recordOf(app App) Record {
	r := Record{Namespace: app.Namespace, Name: app.Name, Policy: app.Policy, Role: app.Role}
	for _, s := range app.Secrets {
		r.Secrets = append(r.Secrets, s.Path)
	}
	if app.Database != nil {
		r.DBConnection = app.Database.Connection
		r.DBRoles = roleNames(app.Database)
	}
	return r
}

// key is the record's name under its owner: "." never occurs in a DNS
// label, so the namespace and the name are told apart.
func (r Record) key() string { return r.Namespace + "." + r.Name }

func recordPath(spec *Spec, key string) string { return RecordsPrefix + "/" + spec.owner() + "/" + key }

// owner is the spec's Owner, or the config's default owner when a caller
// built the spec without one.
func (s *Spec) owner() string {
	if s.Owner == "" {
		return "blinkchamber"
	}
	return s.Owner
}

// recordStep writes the app's record after its objects exist.
func recordStep(spec *Spec, c *api.Client, app App) Step {
	want := recordOf(app)
	read := func(ctx context.Context) (*Record, error) {
		got, err := readRecord(ctx, c, spec, want.key())
		if err != nil {
			return nil, blockedIfUnready(ctx, c, err)
		}
		return got, nil
	}
	return Step{Phase: PhaseSecrets, Name: "record of " + app.Namespace + "/" + app.Name,
		Check: func(ctx context.Context) (Change, error) {
			got, err := read(ctx)
			switch {
			case err != nil:
				return Change{}, err
			case got == nil:
				return Needs("write, so that prune can remove what was provisioned"), nil
			case !reflect.DeepEqual(*got, want):
				return Needs("update"), nil
			}
			return Unchanged("up to date"), nil
		},
		Apply: func(ctx context.Context) error {
			b, err := json.Marshal(want)
			if err != nil {
				return err
			}
			_, err = c.KVv2(spec.KVMount).Put(ctx, recordPath(spec, want.key()), map[string]any{"record": string(b)})
			return err
		}}
}

func readRecord(ctx context.Context, c *api.Client, spec *Spec, key string) (*Record, error) {
	kv, err := c.KVv2(spec.KVMount).Get(ctx, recordPath(spec, key))
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the record %s: %w", key, err)
	case kv == nil || kv.Data == nil:
		return nil, nil
	}
	s, _ := kv.Data["record"].(string)
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("the record %s is not one bootstrap wrote: %w", key, err)
	}
	return &r, nil
}

// orphans are the records of the spec's owner whose app the spec no
// longer lists, sorted by key.
func orphans(ctx context.Context, c *api.Client, spec *Spec) ([]Record, error) {
	list, err := c.Logical().ListWithContext(ctx, spec.KVMount+"/metadata/"+RecordsPrefix+"/"+spec.owner())
	if err != nil {
		return nil, blockedIfUnready(ctx, c, fmt.Errorf("listing the records of %s: %w", spec.owner(), err))
	}
	current := map[string]bool{}
	for _, app := range spec.Apps {
		current[recordOf(app).key()] = true
	}
	var out []Record
	if list == nil {
		return nil, nil
	}
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		key := fmt.Sprint(k)
		if current[key] || strings.HasSuffix(key, "/") {
			continue
		}
		r, err := readRecord(ctx, c, spec, key)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out, nil
}

// pruneStep lists the apps recorded under the owner that the config no
// longer has and, only when the spec says prune, removes what bootstrap
// provisioned for them.
func pruneStep(spec *Spec, c *api.Client) Step {
	return Step{Phase: PhaseSecrets, Name: "apps no longer configured (owner " + spec.owner() + ")",
		Check: func(ctx context.Context) (Change, error) {
			gone, err := orphans(ctx, c, spec)
			switch {
			case err != nil:
				return Change{}, err
			case len(gone) == 0:
				return Unchanged("none"), nil
			case !spec.Prune:
				return Unchanged(fmt.Sprintf("kept, as prune is off: %s", describe(gone))), nil
			}
			return Needs("remove %s", describe(gone)), nil
		},
		Apply: func(ctx context.Context) error {
			gone, err := orphans(ctx, c, spec)
			if err != nil {
				return err
			}
			for _, r := range gone {
				if err := prune(ctx, c, spec, r); err != nil {
					return fmt.Errorf("removing %s/%s: %w", r.Namespace, r.Name, err)
				}
			}
			return nil
		}}
}

func describe(rs []Record) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s/%s (policy %s, role %s, %d secrets, %d database roles)",
			r.Namespace, r.Name, r.Policy, r.Role, len(r.Secrets), len(r.DBRoles))
	}
	return strings.Join(parts, "; ")
}

// prune removes one app's objects, but none that an app still in the spec
// also uses (a renamed app keeping its ServiceAccount keeps its role), and
// its record last, so that an interrupted prune is finished by the next
// run. The role goes first: no new login gets the policy.
func prune(ctx context.Context, c *api.Client, spec *Spec, r Record) error {
	used := map[string]bool{}
	for _, app := range spec.Apps {
		for _, p := range vaultPaths(spec, recordOf(app)) {
			used[p] = true
		}
	}
	paths := append(vaultPaths(spec, r), spec.KVMount+"/metadata/"+recordPath(spec, r.key()))
	for _, p := range paths {
		if used[p] {
			continue
		}
		// Deleting what is already gone succeeds: a rerun goes on.
		if _, err := c.Logical().DeleteWithContext(ctx, p); err != nil {
			return fmt.Errorf("deleting %s: %w", p, err)
		}
	}
	return nil
}

// vaultPaths are the API paths of what a record names, the role first.
func vaultPaths(spec *Spec, r Record) []string {
	paths := []string{"auth/" + spec.KubeAuth.Path + "/role/" + r.Role, "sys/policies/acl/" + r.Policy}
	for _, role := range r.DBRoles {
		paths = append(paths, "database/roles/"+role)
	}
	if r.DBConnection != "" {
		paths = append(paths, "database/config/"+r.DBConnection)
	}
	for _, s := range r.Secrets {
		paths = append(paths, spec.KVMount+"/metadata/"+s)
	}
	return paths
}
