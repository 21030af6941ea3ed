package database_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/testenv"
)

func TestClassify(t *testing.T) {
	conflict := fault.New(fault.Conflict, "taken")
	tests := []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"bad connection", fmt.Errorf("query: %w", driver.ErrBadConn), fault.Unavailable},
		{"connection done", sql.ErrConnDone, fault.Unavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, fault.Unavailable},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, fault.Unavailable},
		{"starting up", &pgconn.PgError{Code: "57P03"}, fault.Unavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, fault.Unavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, fault.Unavailable},
		{"disk full", &pgconn.PgError{Code: "53100"}, fault.InsufficientStorage},
		{"ENOSPC", fmt.Errorf("write: %w", syscall.ENOSPC), fault.InsufficientStorage},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), fault.Unavailable},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), fault.Unavailable},
		{"conn closed", pgconn.ErrConnClosed, fault.Unavailable},
		// Not outages: a lost race, a constraint, a bug, the caller leaving.
		{"serialization failure", &pgconn.PgError{Code: "40001"}, fault.Internal},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, fault.Internal},
		{"unique violation", &pgconn.PgError{Code: "23505"}, fault.Internal},
		{"syntax", errors.New("syntax error at or near"), fault.Internal},
		{"canceled", context.Canceled, fault.Canceled},
		{"already a kind", fmt.Errorf("x: %w", conflict), fault.Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := database.Classify(tt.err)
			if k := fault.KindOf(got); k != tt.want {
				t.Fatalf("Classify(%v) is %s, want %s", tt.err, k, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("Classify(%v) lost its cause", tt.err)
			}
			if tt.want == fault.Unavailable || tt.want == fault.InsufficientStorage {
				if code, msg, _ := fault.Describe(got); code != tt.want.Code() || strings.Contains(msg, "SQLSTATE") {
					t.Fatalf("described as %s %q: the caller must learn the kind, not the server's text", code, msg)
				}
			}
		})
	}
	if database.Classify(nil) != nil {
		t.Fatal("Classify(nil) != nil")
	}
}

// A backend terminated while it waits — a PostgreSQL restart, an
// administrator's pg_terminate_backend — is an outage, not an internal
// error.
func TestClassifyTerminatedBackend(t *testing.T) {
	db := databasetest.Open(t, database.Postgres)
	databasetest.Lock(t, db, `SELECT seq FROM journal_head WHERE id = 1 FOR UPDATE`)
	errc := make(chan error, 1)
	go func() {
		errc <- db.InTx(t.Context(), func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), `UPDATE journal_head SET seq = seq + 1 WHERE id = 1`)
			return err
		})
	}()
	databasetest.TerminateWaiter(t, db)
	err := <-errc
	if !errors.Is(err, fault.Unavailable) {
		t.Fatalf("terminated backend: %v (kind %s), want unavailable", err, fault.KindOf(err))
	}
}

// A PostgreSQL server that cannot be reached is an outage for every call.
func TestClassifyUnreachablePostgres(t *testing.T) {
	base, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, base.Host)
	base.Host = proxy.Addr()
	db, err := database.Open(t.Context(), base.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	proxy.Cut()
	checks := map[string]func() error{
		"ping":  func() error { return db.PingContext(t.Context()) },
		"exec":  func() error { _, err := db.ExecContext(t.Context(), `SELECT 1`); return err },
		"query": func() error { _, err := db.QueryContext(t.Context(), `SELECT 1`); return err },
		"tx":    func() error { return db.InTx(t.Context(), func(*sql.Tx) error { return nil }) },
	}
	for name, call := range checks {
		if err := call(); !errors.Is(err, fault.Unavailable) {
			t.Errorf("%s with the server unreachable: %v (kind %s), want unavailable", name, err, fault.KindOf(err))
		}
	}
	proxy.Restore()
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("ping after the server came back: %v", err)
	}
}

// SQLite busy beyond its timeout is an outage: another writer holds the
// database.
func TestClassifySQLiteBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20)&_pragma=journal_mode(WAL)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	if _, err := a.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	tx, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec(`INSERT INTO t VALUES (2)`)
	if err == nil {
		t.Fatal("a second writer got in while the first held the lock")
	}
	if got := database.Classify(err); !errors.Is(got, fault.Unavailable) {
		t.Fatalf("SQLite busy: %v (kind %s), want unavailable", got, fault.KindOf(got))
	}
}

// SQLite on a full disk: its writes fail as insufficient storage.
func TestClassifySQLiteFull(t *testing.T) {
	dir := testenv.SmallFS(t, 4<<20)
	db, err := database.Open(t.Context(), "sqlite:"+filepath.Join(dir, "full.db"), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 256<<10)
	for i := 0; ; i++ {
		_, err = db.ExecContext(t.Context(), `INSERT INTO t VALUES ($1)`, blob)
		if err != nil {
			break
		}
		if i > 64 {
			t.Fatal("a 4 MiB file system took 16 MiB")
		}
	}
	if !errors.Is(err, fault.InsufficientStorage) {
		t.Fatalf("insert on a full disk: %v (kind %s), want insufficient_storage", err, fault.KindOf(err))
	}
}
