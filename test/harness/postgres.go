package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresRoot is where Debian's postgresql-<ver> packages put their
// server binaries, one folder per major version.
const postgresRoot = "/usr/lib/postgresql"

// postgresUser is the system user the Debian package creates. PostgreSQL
// refuses to run as root, and tests here run as root.
const postgresUser = "postgres"

// Postgres is a real PostgreSQL server (Debian's package) on a free loopback
// port, with its data, socket and log in one directory.
type Postgres struct {
	Host      string
	Port      int
	SuperUser string
	Password  string
	// Dir holds data/ (the cluster), socket/ and postgres.log.
	Dir     string
	LogFile string

	binDir string
	cred   *syscall.Credential
	proc   *daemon
}

// PostgresBinDir finds the server binaries of the newest installed major
// version.
func PostgresBinDir() (string, error) {
	entries, err := os.ReadDir(postgresRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", postgresRoot, err)
	}
	var versions []int
	for _, e := range entries {
		v, err := strconv.Atoi(e.Name())
		if err == nil && isExecutable(filepath.Join(postgresRoot, e.Name(), "bin", "postgres")) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no PostgreSQL server under %s/<version>/bin; install it with `apt-get install -y postgresql` (.ci/run does)", postgresRoot)
	}
	return filepath.Join(postgresRoot, strconv.Itoa(slices.Max(versions)), "bin"), nil
}

// StartPostgres creates a cluster in dir/data (initdb), owned by the
// postgres system user, with superuser postgres and a random password
// required over TCP and the socket alike (scram-sha-256), and starts it on
// 127.0.0.1:<free port>. Every directory above dir must be searchable by
// the postgres user.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	binDir, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := systemUser(postgresUser)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := prepareDir(dir, cred); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("choosing a port for PostgreSQL: %w", err)
	}
	password, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	p := &Postgres{Host: "127.0.0.1", Port: port, SuperUser: postgresUser, Password: password,
		Dir: dir, LogFile: filepath.Join(dir, "postgres.log"), binDir: binDir, cred: cred}
	if err := p.initdb(ctx); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// PostgresForTest starts a server in a fresh directory for one test, and
// stops it and removes the directory at cleanup.
func PostgresForTest(t testing.TB) *Postgres {
	t.Helper()
	// Not t.TempDir: its parent is 0700 root, which the postgres user
	// cannot enter.
	dir, err := os.MkdirTemp("", "blinkchamber-pg-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
		if t.Failed() {
			t.Log(logTail(p.LogFile, 4000))
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return p
}

// DSN is a connection URL for database db as the superuser.
func (p *Postgres) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(p.SuperUser, p.Password),
		Host:     net.JoinHostPort(p.Host, strconv.Itoa(p.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down with `pg_ctl stop -m fast` (connections are
// cut, the cluster is left consistent) and waits for the process. Calling
// it twice is harmless.
func (p *Postgres) Stop() error {
	if p.proc == nil || p.proc.stopped {
		return nil
	}
	if !p.proc.running() {
		p.proc.stopped = true
		return p.proc.exitError()
	}
	out, err := p.command(context.Background(), "pg_ctl", "stop", "-D", p.dataDir(), "-m", "fast", "-w", "-t", "30").CombinedOutput()
	if err != nil {
		// pg_ctl failed; the postmaster still ends, by signal.
		return errors.Join(fmt.Errorf("pg_ctl stop: %w: %s", err, out), p.proc.stop(syscall.SIGTERM, 10*time.Second))
	}
	return p.proc.awaitExit(10 * time.Second)
}

func (p *Postgres) dataDir() string   { return filepath.Join(p.Dir, "data") }
func (p *Postgres) socketDir() string { return filepath.Join(p.Dir, "socket") }

// command runs one of the server's tools as the postgres user.
func (p *Postgres) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, tool), args...)
	cmd.Env = p.env()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

func (p *Postgres) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + p.Dir}
}

// initdb creates the cluster. The password travels in a file that only the
// postgres user can read and that is removed right after.
func (p *Postgres) initdb(ctx context.Context) error {
	pwfile := filepath.Join(p.Dir, ".pwfile")
	if err := writeOwned(pwfile, []byte(p.Password+"\n"), 0o600, p.cred); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	cmd := p.command(ctx, "initdb", "-D", p.dataDir(), "-U", p.SuperUser, "--pwfile="+pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", p.dataDir(), err, out)
	}
	if err := os.Mkdir(p.socketDir(), 0o700); err != nil {
		return fmt.Errorf("creating socket dir: %w", err)
	}
	return os.Chown(p.socketDir(), int(p.cred.Uid), int(p.cred.Gid))
}

// start runs the postmaster as a child of this process and waits until it
// accepts an authenticated connection.
func (p *Postgres) start(ctx context.Context) error {
	args := []string{"-D", p.dataDir(),
		"-c", "listen_addresses=" + p.Host,
		"-c", "port=" + strconv.Itoa(p.Port),
		"-c", "unix_socket_directories=" + p.socketDir(),
		// Test data need not survive a machine crash; these make
		// start-up and writes fast.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	}
	proc, err := startDaemon(filepath.Join(p.binDir, "postgres"), args, p.env(), p.LogFile, p.cred)
	if err != nil {
		return err
	}
	p.proc = proc
	if err := p.waitReady(ctx); err != nil {
		_ = p.proc.stop(syscall.SIGTERM, 10*time.Second) // the wait error says why
		return err
	}
	return nil
}

func (p *Postgres) waitReady(ctx context.Context) error {
	var last error
	for {
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		last = err
		if !p.proc.running() {
			return p.proc.exitError()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL on port %d not ready: %w (last: %v)\n%s", p.Port, ctx.Err(), last, logTail(p.LogFile, 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// systemUser looks up a user's uid and gid for SysProcAttr.Credential.
func systemUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("looking up system user %s (created by Debian's postgresql package): %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prepareDir creates dir for the user cred and checks that the user can
// reach it: a root-only parent would make initdb fail with a less clear
// message.
func prepareDir(dir string, cred *syscall.Credential) error {
	for parent := filepath.Dir(dir); ; parent = filepath.Dir(parent) {
		if err := checkSearchable(parent, cred); err != nil {
			return err
		}
		if parent == "/" {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to uid %d: %w", dir, cred.Uid, err)
	}
	return nil
}

func checkSearchable(dir string, cred *syscall.Credential) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	ok := st.Mode&0o001 != 0 ||
		st.Uid == cred.Uid && st.Mode&0o100 != 0 ||
		st.Gid == cred.Gid && st.Mode&0o010 != 0
	if !ok {
		return fmt.Errorf("uid %d cannot enter %s (mode %o, owner %d:%d); put the PostgreSQL directory where every parent is searchable, e.g. os.MkdirTemp(\"\", ...)",
			cred.Uid, dir, st.Mode&0o7777, st.Uid, st.Gid)
	}
	return nil
}

func writeOwned(path string, data []byte, mode os.FileMode, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
