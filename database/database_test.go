package database

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/chamber-court/chamber/internal/testenv"
)

// engines returns one freshly migrated database per engine. Tests that take
// it run unchanged on SQLite and PostgreSQL.
func engines(t *testing.T) map[Engine]*DB {
	t.Helper()
	out := map[Engine]*DB{}
	for _, e := range []Engine{SQLite, Postgres} {
		var dsn string
		if e == Postgres {
			dsn = testenv.PostgresDB(t)
		}
		db, err := Open(context.Background(), dsn, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		out[e] = db
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		dsn      string
		engine   Engine
		location string
		bad      bool
	}{
		{dsn: "", engine: SQLite, location: filepath.Join("/d", "chamber.db")},
		{dsn: "sqlite:/tmp/x.db", engine: SQLite, location: "/tmp/x.db"},
		{dsn: "file:/tmp/y.db?mode=rwc", engine: SQLite, location: "/tmp/y.db"},
		{dsn: "postgres://u:secret@h:5432/db", engine: Postgres, location: "postgres://u:xxxxx@h:5432/db"},
		{dsn: "postgresql://h/db", engine: Postgres, location: "postgresql://h/db"},
		{dsn: "mysql://h/db", bad: true},
		{dsn: "postgres://", bad: true},
		{dsn: "sqlite:", bad: true},
		{dsn: "chamber.db", bad: true},
	}
	for _, tt := range tests {
		engine, _, location, err := parse(tt.dsn, "/d")
		if tt.bad {
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("parse(%q) error = %v, want ErrBadURL", tt.dsn, err)
			}
			continue
		}
		if err != nil || engine != tt.engine || location != tt.location {
			t.Errorf("parse(%q) = %v, %q, %v; want %v, %q", tt.dsn, engine, location, err, tt.engine, tt.location)
		}
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", t.TempDir())
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
}

func TestMigrateTwiceAndTypes(t *testing.T) {
	for engine, db := range engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("second migrate: %v", err)
			}
			v, err := db.Version(ctx)
			if err != nil || v < 2 {
				t.Fatalf("version = %d, %v", v, err)
			}
			now := Now()
			if _, err := db.ExecContext(ctx, `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
				"s1", "Ada", "clerk", "h", Micros(now)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, state, created_by, created_at, public) VALUES ($1, 'hearing', 'T', 'scheduled', $2, $3, $4)`,
				"x1", "s1", Micros(now), true); err != nil {
				t.Fatal(err)
			}
			var public bool
			var at int64
			if err := db.QueryRowContext(ctx, `SELECT public, created_at FROM sessions WHERE id = $1`, "x1").Scan(&public, &at); err != nil {
				t.Fatal(err)
			}
			if !public || !Time(at).Equal(now) {
				t.Fatalf("round trip: public=%v at=%v want %v", public, Time(at), now)
			}
			// Foreign keys are enforced on both engines.
			if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, state, created_by, created_at) VALUES ('x2', 'hearing', 'T', 'scheduled', 'nobody', 0)`); err == nil {
				t.Fatal("foreign key not enforced")
			}
		})
	}
}
