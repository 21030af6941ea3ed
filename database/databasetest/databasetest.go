// Package databasetest gives tests a freshly migrated database on every
// engine Chamber supports, so one test body runs on SQLite and PostgreSQL.
package databasetest

import (
	"context"
	"log/slog"
	"testing"

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
