package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PostgresServer is a PostgreSQL server of the test's own (initdb and
// pg_ctl on a fresh directory and a free loopback port), which the test may
// restart — cleanly or as a crash — without disturbing anyone else's
// database. It is stopped and removed when the test ends.
type PostgresServer struct {
	t    testing.TB
	bin  string // the server programs' directory
	dir  string // the cluster's data directory
	user string // the unprivileged user that runs it ("" = the current one)
	port int
	dbs  atomic.Int64
}

// PostgresBinDir finds the directory of PostgreSQL's server programs
// (initdb, pg_ctl), which Debian keeps off the PATH.
func PostgresBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // newest version first
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server programs (initdb, pg_ctl) not found")
}

// StartPostgres creates and starts a private PostgreSQL cluster. initdb and
// postgres refuse to run as root, so under root they run as the "postgres"
// user, as scripts/test does. Settings may add server options
// (name=value).
func StartPostgres(t testing.TB, settings ...string) *PostgresServer {
	t.Helper()
	bin, err := PostgresBinDir()
	if err != nil {
		missing(t, err.Error())
	}
	p := &PostgresServer{t: t, bin: bin, port: FreePort(t)}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "the postgres user (to run PostgreSQL as someone other than root)")
		}
		p.user = u.Username
	}
	// Not under t.TempDir: the server's user must be able to reach it.
	root, err := os.MkdirTemp("", "chamber-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	p.dir = filepath.Join(root, "data")
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.chown(p.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.run(context.Background(), "pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop")
		os.RemoveAll(root)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := p.run(ctx, "initdb", "-D", p.dir, "-U", "chamber", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := []string{"-h 127.0.0.1", "-p " + strconv.Itoa(p.port), "-k " + p.dir, "-c max_connections=200"}
	for _, s := range settings {
		opts = append(opts, "-c "+s)
	}
	if out, err := p.run(ctx, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", strings.Join(opts, " "), "start"); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, p.LogTail())
	}
	return p
}

func (p *PostgresServer) chown(path string) error {
	if p.user == "" {
		return nil
	}
	u, err := user.Lookup(p.user)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// run runs one of the server programs as the server's user.
func (p *PostgresServer) run(ctx context.Context, prog string, args ...string) (string, error) {
	name := filepath.Join(p.bin, prog)
	if p.user != "" {
		args = append([]string{"-u", p.user, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/" // the server's user may not be able to enter the test's directory
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// URL is the address of database name on this server.
func (p *PostgresServer) URL(name string) string {
	u := url.URL{Scheme: "postgres", User: url.User("chamber"), Host: p.Addr(), Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

// Addr is the server's host:port.
func (p *PostgresServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// CreateDB creates a fresh database and returns its URL. Tests sharing the
// server each take their own.
func (p *PostgresServer) CreateDB(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", p.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("chamber_%d", p.dbs.Add(1))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return p.URL(name)
}

// Restart restarts the server with pg_ctl restart in the given shutdown
// mode: "fast" (connections are ended, a clean shutdown) or "immediate"
// (every process quits at once, as in a crash; the restart recovers from
// the WAL). It returns once the server accepts connections again.
func (p *PostgresServer) Restart(mode string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// -l: the new server must not inherit pg_ctl's output, or pg_ctl's
	// caller would wait for the server to close it.
	if out, err := p.run(ctx, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-m", mode, "-w", "-t", "60", "restart"); err != nil {
		p.t.Fatalf("pg_ctl restart -m %s: %v\n%s\n%s", mode, err, out, p.LogTail())
	}
}

// LogTail is the end of the server's log.
func (p *PostgresServer) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
