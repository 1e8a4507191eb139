package bootstrap

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// DefaultCreationStatements make a login role that may connect, with the
// expiry Vault chooses.
const DefaultCreationStatements = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
GRANT CONNECT ON DATABASE postgres TO "{{name}}";`

func databaseSteps(spec *Spec, c *api.Client, app App) []Step {
	p, db := PhaseSecrets, app.Database
	steps := []Step{
		{Phase: p, Name: "database engine", Check: checkDBMount(c), Apply: applyDBMount(c)},
		{Phase: p, Name: "database connection " + db.Connection, Check: checkDBConnection(c, app), Apply: applyDBConnection(spec, c, app)},
	}
	for _, r := range db.Roles {
		steps = append(steps, Step{Phase: p, Name: "database role " + r.Name, Check: checkDBRole(c, db, r), Apply: applyDBRole(c, db, r)})
	}
	return steps
}

func checkDBMount(c *api.Client) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		mounts, err := c.Sys().ListMountsWithContext(ctx)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("listing secrets engines: %w", err))
		}
		m, ok := mounts["database/"]
		switch {
		case !ok:
			return Needs("enable at database/"), nil
		case m.Type != "database":
			return Change{}, fmt.Errorf("database/ is a %s engine, not database", m.Type)
		}
		return Unchanged("enabled at database/"), nil
	}
}

func applyDBMount(c *api.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		return c.Sys().MountWithContext(ctx, "database", &api.MountInput{Type: "database"})
	}
}

func checkDBConnection(c *api.Client, app App) func(context.Context) (Change, error) {
	db := app.Database
	return func(ctx context.Context) (Change, error) {
		s, err := c.Logical().ReadWithContext(ctx, "database/config/"+db.Connection)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("reading database/config/%s: %w", db.Connection, err))
		}
		if s == nil {
			return Needs("connect to %s as %s", redactURL(db.ConnectionURL), db.Username), nil
		}
		details, _ := s.Data["connection_details"].(map[string]any)
		var drift []string
		if fmt.Sprint(details["connection_url"]) != db.ConnectionURL {
			drift = append(drift, "connection_url")
		}
		if fmt.Sprint(details["username"]) != db.Username {
			drift = append(drift, "username")
		}
		if !sameValue(s.Data["allowed_roles"], roleNames(db)) {
			drift = append(drift, "allowed_roles")
		}
		if len(drift) > 0 {
			return Needs("repair %s", strings.Join(drift, ", ")), nil
		}
		return Unchanged("connects to " + redactURL(db.ConnectionURL)), nil
	}
}

func applyDBConnection(spec *Spec, c *api.Client, app App) func(context.Context) error {
	db := app.Database
	return func(ctx context.Context) error {
		password, err := dbPassword(ctx, spec, c, db)
		if err != nil {
			return err
		}
		_, err = c.Logical().WriteWithContext(ctx, "database/config/"+db.Connection, map[string]any{
			"plugin_name": "postgresql-database-plugin", "connection_url": db.ConnectionURL,
			"username": db.Username, "password": password, "allowed_roles": roleNames(db),
		})
		return err
	}
}

// dbPassword is the admin password, read from KV when the config points
// there (the secret was written by an earlier step of this phase).
func dbPassword(ctx context.Context, spec *Spec, c *api.Client, db *Database) (string, error) {
	if db.PasswordKV == nil {
		return db.Password, nil
	}
	kv, err := c.KVv2(spec.KVMount).Get(ctx, db.PasswordKV.Path)
	if err != nil {
		return "", fmt.Errorf("reading the database password from %s/data/%s: %w", spec.KVMount, db.PasswordKV.Path, err)
	}
	v, ok := kv.Data[db.PasswordKV.Key].(string)
	if !ok || v == "" {
		return "", fmt.Errorf("%s/data/%s has no key %q", spec.KVMount, db.PasswordKV.Path, db.PasswordKV.Key)
	}
	return v, nil
}

func roleNames(db *Database) []string {
	out := make([]string, len(db.Roles))
	for i, r := range db.Roles {
		out[i] = r.Name
	}
	sort.Strings(out)
	return out
}

func dbRoleData(db *Database, r DBRole) map[string]any {
	stmts := r.CreationStatements
	if stmts == "" {
		stmts = DefaultCreationStatements
	}
	return map[string]any{
		"db_name":             db.Connection,
		"creation_statements": []string{stmts},
		"default_ttl":         int(r.DefaultTTL.Seconds()),
		"max_ttl":             int(r.MaxTTL.Seconds()),
	}
}

func checkDBRole(c *api.Client, db *Database, r DBRole) func(context.Context) (Change, error) {
	return func(ctx context.Context) (Change, error) {
		s, err := c.Logical().ReadWithContext(ctx, "database/roles/"+r.Name)
		if err != nil {
			return Change{}, blockedIfUnready(ctx, c, fmt.Errorf("reading database/roles/%s: %w", r.Name, err))
		}
		if s == nil {
			return Needs("create (ttl %s, max %s)", r.DefaultTTL, r.MaxTTL), nil
		}
		if drift := driftedKeys(s.Data, dbRoleData(db, r)); len(drift) > 0 {
			return Needs("repair %s", strings.Join(drift, ", ")), nil
		}
		return Unchanged(fmt.Sprintf("ttl %s, max %s", r.DefaultTTL, r.MaxTTL)), nil
	}
}

func applyDBRole(c *api.Client, db *Database, r DBRole) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Logical().WriteWithContext(ctx, "database/roles/"+r.Name, dbRoleData(db, r))
		return err
	}
}

// redactURL drops credentials from a URL for messages.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + u[i+1:]
		}
	}
	return u
}
