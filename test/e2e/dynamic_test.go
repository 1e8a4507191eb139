package e2e

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// TestDynamicPostgresCredentials: a sidecar-mode pod gets ONE database
// credential across its init container and sidecar, the sidecar renews that
// lease (same username) at least twice, re-issues it once the max TTL is
// near, and the rendered credentials log in to the real PostgreSQL.
func TestDynamicPostgresCredentials(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg := harness.PostgresForTest(t)
	startAgentInjector(t, ctx, e)
	configureDatabase(t, ctx, e, pg, 4*time.Second, 16*time.Second)
	if err := kube.Namespace(ctx, "orders", true, "orders"); err != nil {
		t.Fatal(err)
	}
	policy := `path "database/creds/orders" { capabilities = ["read"] }`
	if err := e.vault.AppRole(ctx, "orders", "orders", "orders", policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	createPod(t, ctx, "orders", "api", "orders", map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.AnnotationMode:           string(mutate.ModeSidecar),
		mutate.PrefixSecret + "pg":      "database/creds/orders",
		mutate.PrefixTemplate + "pg":    `{{ with secret "database/creds/orders" }}{{ .Data.username }} {{ .Data.password }}{{ end }}`,
		mutate.AnnotationRenderInterval: "1s",
	})
	out := &syncBuffer{}
	run := kube.RunPodForTest(t, "orders", "api", e.shim(out))
	file := filepath.Join(run.VolumeDir(mutate.SecretsVolume), "pg")

	first, firstPW := readCreds(t, file)
	if n := dynamicRoles(t, ctx, pg); n != 1 {
		t.Fatalf("%d database users exist after init + sidecar start, want 1", n)
	}
	_, metrics := get(t, run.HealthAddr(), "/metrics")
	if strings.Contains(metrics, `blinkchamber_agent_logins_total{result="success"}`) {
		t.Errorf("the sidecar logged in again instead of resuming the init container's token")
	}

	// Renewals keep the same user until the max TTL is near.
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 12*time.Second, true, func(context.Context) (bool, error) {
		_, m := get(t, run.HealthAddr(), "/metrics")
		return metricValue(m, "blinkchamber_agent_lease_renewals_total") >= 2, nil
	})
	if err != nil {
		t.Fatalf("fewer than two lease renewals: %s", grep(metrics, "renewals"))
	}
	if u, _ := readCreds(t, file); u != first {
		t.Fatalf("username changed from %s to %s before the max TTL", first, u)
	}
	login(t, ctx, pg, first, firstPW)

	// Re-issued before the max TTL ends.
	var second, secondPW string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		second, secondPW = readCreds(t, file)
		return second != first, nil
	})
	if err != nil {
		t.Fatalf("credentials were never re-issued after the max TTL")
	}
	login(t, ctx, pg, second, secondPW)
	assertNoLeak(t, out.String(), firstPW, secondPW)
}

func configureDatabase(t *testing.T, ctx context.Context, e *vaultEnv, pg *harness.Postgres, ttl, maxTTL time.Duration) {
	t.Helper()
	c := e.vault.Client()
	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts["database/"]; !ok {
		if err := c.Sys().MountWithContext(ctx, "database", &vaultapi.MountInput{Type: "database"}); err != nil {
			t.Fatal(err)
		}
	}
	conn := url.URL{Scheme: "postgresql", Host: net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	_, err = c.Logical().WriteWithContext(ctx, "database/config/orders-db", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": strings.Replace(conn.String(), "postgresql://", "postgresql://{{username}}:{{password}}@", 1),
		"username":       pg.SuperUser, "password": pg.Password,
		"allowed_roles": "orders",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Logical().WriteWithContext(ctx, "database/roles/orders", map[string]any{
		"db_name": "orders-db",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
GRANT CONNECT ON DATABASE postgres TO "{{name}}";`,
		"default_ttl": ttl.String(), "max_ttl": maxTTL.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readCreds(t *testing.T, file string) (user, password string) {
	t.Helper()
	var b []byte
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		b, _ = os.ReadFile(file)
		return len(strings.Fields(string(b))) == 2, nil
	})
	if err != nil {
		t.Fatalf("%s holds no credentials", file)
	}
	f := strings.Fields(string(b))
	return f[0], f[1]
}

func dynamicRoles(t *testing.T, ctx context.Context, pg *harness.Postgres) int {
	t.Helper()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func login(t *testing.T, ctx context.Context, pg *harness.Postgres, user, password string) {
	t.Helper()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("logging in to PostgreSQL as the rendered user %s: %v", user, err)
	}
	defer c.Close(ctx)
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query as %s: %v", user, err)
	}
}

var metricLine = regexp.MustCompile(`(?m)^(\S+) (\S+)$`)

// metricValue reads an unlabelled sample from Prometheus text output.
func metricValue(text, name string) float64 {
	for _, m := range metricLine.FindAllStringSubmatch(text, -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}
