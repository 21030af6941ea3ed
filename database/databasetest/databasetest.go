// Package databasetest gives tests a freshly migrated database on every
// engine Chamber supports, so one test body runs on SQLite and PostgreSQL.
package databasetest

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/internal/testenv"
)

// Open returns a new, migrated database of the given engine, closed when
// the test ends. PostgreSQL gets a database of its own on the test server.
func Open(t testing.TB, engine database.Engine) *database.DB {
	t.Helper()
	var dsn string
	if engine == database.Postgres {
		dsn = testenv.PostgresDB(t)
	}
	db, err := database.Open(context.Background(), dsn, t.TempDir())
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate %s: %v", engine, err)
	}
	return db
}

// Each runs f as a subtest once per engine, each with a fresh database.
func Each(t *testing.T, f func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			f(t, Open(t, engine))
		})
	}
}

// Lock runs statement (a SELECT … FOR UPDATE, an UPDATE) in a transaction
// of its own on one of db's connections and keeps that transaction open,
// holding its row locks, until release is called or the test ends. Writers
// of those rows then wait, as behind a slow or stuck transaction.
func Lock(t testing.TB, db *database.DB, statement string, args ...any) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, statement, args...); err != nil {
		tx.Rollback()
		conn.Close()
		t.Fatalf("lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback()
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// TerminateWaiter waits until a backend of db's PostgreSQL database is
// waiting for a lock (see Lock) and terminates it with pg_terminate_backend,
// as a server restart or an administrator would: the waiting statement
// fails with SQLSTATE 57P01. It returns the terminated backend's pid.
func TerminateWaiter(t testing.TB, db *database.DB) int {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pid int
		err := db.DB.QueryRowContext(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() LIMIT 1`).Scan(&pid)
		if err == nil {
			var ok bool
			if err := db.DB.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
			}
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no backend came to wait for the lock")
		}
		time.Sleep(10 * time.Millisecond) // polling a server-side condition with a deadline
	}
}

// Failing opens a migrated database of engine and returns, with it, a
// function that runs call while the database's next journalled write
// transaction fails the way it fails in production: on PostgreSQL the
// backend waiting for the journal's head is terminated (a server restart,
// an administrator's pg_terminate_backend: 57P01); on SQLite, which lives
// on a small file system of its own, the file system is full (SQLITE_FULL).
// fail returns call's error and leaves the database healthy again.
func Failing(t testing.TB, engine database.Engine) (db *database.DB, fail func(call func() error) error) {
	t.Helper()
	if engine == database.Postgres {
		db = Open(t, engine)
		return db, func(call func() error) error {
			release := Lock(t, db, `SELECT seq FROM journal_head WHERE id = 1 FOR UPDATE`)
			defer release()
			errc := make(chan error, 1)
			go func() { errc <- call() }()
			TerminateWaiter(t, db)
			return <-errc
		}
	}
	dir := testenv.SmallFS(t, 16<<20)
	db, err := database.Open(context.Background(), "sqlite:"+filepath.Join(dir, "chamber.db"), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return db, func(call func() error) error {
		// An emptied write-ahead log must grow to take the next write.
		if _, err := db.DB.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		free := testenv.Fill(t, dir)
		defer free()
		return call()
	}
}
