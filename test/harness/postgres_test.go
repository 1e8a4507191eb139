package harness

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := PostgresForTest(t)

	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatalf("connecting as superuser: %v", err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE app LOGIN PASSWORD 'app-pw'"); err != nil {
		t.Fatalf("CREATE ROLE: %v", err)
	}

	t.Run("new role connects with its password", func(t *testing.T) {
		appConn, err := pgx.Connect(ctx, withUser(t, p.DSN("postgres"), "app", "app-pw"))
		if err != nil {
			t.Fatalf("connecting as app: %v", err)
		}
		defer appConn.Close(ctx)
		var who string
		if err := appConn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "app" {
			t.Errorf("current_user = %q, %v", who, err)
		}
	})

	t.Run("wrong password is refused", func(t *testing.T) {
		c, err := pgx.Connect(ctx, withUser(t, p.DSN("postgres"), "postgres", "wrong"))
		if err == nil {
			c.Close(ctx)
			t.Fatal("a wrong superuser password was accepted: TCP auth is not enforced")
		}
		if !strings.Contains(err.Error(), "password authentication failed") {
			t.Errorf("error = %v, want a password authentication failure", err)
		}
	})

	t.Run("runs as the postgres user", func(t *testing.T) {
		st, err := os.Stat(p.dataDir() + "/PG_VERSION")
		if err != nil {
			t.Fatal(err)
		}
		if uid := fileUID(st); uid != p.cred.Uid {
			t.Errorf("cluster owned by uid %d, want postgres (%d)", uid, p.cred.Uid)
		}
		if uid, err := processUID(p.proc.cmd.Process.Pid); err != nil || uid != int(p.cred.Uid) {
			t.Errorf("postmaster uid = %d, %v; want %d", uid, err, p.cred.Uid)
		}
	})
}

func TestPostgresStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := PostgresForTest(t)
	pid := p.proc.cmd.Process.Pid
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("postmaster (pid %d) alive after Stop", pid)
	}
	if c, err := pgx.Connect(ctx, p.DSN("postgres")); err == nil {
		c.Close(ctx)
		t.Error("connected after Stop")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func withUser(t *testing.T, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
