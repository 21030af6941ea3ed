// Package database opens Chamber's SQL database — an embedded SQLite file by
// default, PostgreSQL when configured — and applies its versioned migrations.
//
// The same SQL runs on both engines: placeholders are written $1, $2, …
// (modernc's SQLite driver accepts them), times are BIGINT Unix microseconds
// and IDs TEXT, so no query needs a dialect switch.
package database

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Engine names the database engine behind a DB.
type Engine string

// The engines Chamber runs on.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// ErrBadURL reports a --database value that names no engine Chamber knows.
var ErrBadURL = errors.New("database: unrecognised database URL")

// DB is an open Chamber database.
type DB struct {
	*sql.DB
	Engine Engine
	// Location is a printable description of where the data lives, with
	// any password removed.
	Location string
}

// Open connects to the database named by dsn and checks that it answers.
//
// An empty dsn means the SQLite file chamber.db in dataDir. A dsn starting
// with postgres:// or postgresql:// selects PostgreSQL; sqlite:PATH or
// file:PATH selects an SQLite file elsewhere.
func Open(ctx context.Context, dsn, dataDir string) (*DB, error) {
	engine, driverDSN, location, err := parse(dsn, dataDir)
	if err != nil {
		return nil, err
	}
	driver := "sqlite"
	if engine == Postgres {
		driver = "pgx"
	} else if err := os.MkdirAll(filepath.Dir(location), 0o750); err != nil {
		return nil, fmt.Errorf("database: create directory for %s: %w", location, err)
	}
	sqlDB, err := sql.Open(driver, driverDSN)
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", location, err)
	}
	if engine == Postgres {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		// SQLite has one writer at a time; a few connections let readers
		// proceed under WAL while the busy timeout queues writers.
		sqlDB.SetMaxOpenConns(4)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("database: cannot reach %s: %w", location, err)
	}
	return &DB{DB: sqlDB, Engine: engine, Location: location}, nil
}

func parse(dsn, dataDir string) (engine Engine, driverDSN, location string, err error) {
	switch {
	case dsn == "":
		path := filepath.Join(dataDir, "chamber.db")
		return SQLite, sqliteDSN(path), path, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, perr := url.Parse(dsn)
		if perr != nil || u.Host == "" {
			return "", "", "", fmt.Errorf("%w: %q is not a valid PostgreSQL URL", ErrBadURL, redact(dsn))
		}
		return Postgres, dsn, u.Redacted(), nil
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return "", "", "", fmt.Errorf("%w: %q has no file path", ErrBadURL, dsn)
		}
		return SQLite, sqliteDSN(path), path, nil
	default:
		return "", "", "", fmt.Errorf("%w: %q (want postgres://…, sqlite:PATH or empty for the default SQLite file)", ErrBadURL, redact(dsn))
	}
}

// sqliteDSN turns on what Chamber relies on: WAL so readers do not block the
// writer, a busy timeout so concurrent writers queue instead of failing,
// foreign keys, full fsync for a legal record, and BEGIN IMMEDIATE so a
// transaction takes the write lock up front rather than failing on upgrade.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// redact hides a password in a URL-like string that failed to parse.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if i := strings.Index(s, "@"); i >= 0 {
		return "…" + s[i:]
	}
	return s
}

// Migrate brings the schema to the newest version.
func (db *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	p, err := db.provider(log)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	for _, r := range results {
		log.Info("applied migration", "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "duration", r.Duration)
	}
	return nil
}

// Version returns the schema version currently applied.
func (db *DB) Version(ctx context.Context) (int64, error) {
	p, err := db.provider(slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

func (db *DB) provider(log *slog.Logger) (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	if db.Engine == Postgres {
		dialect = goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithSlog(log)}
	if db.Engine == Postgres {
		// Two replicas starting together must not migrate at once.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("database: migrations: %w", err)
	}
	return p, nil
}

// Micros converts a time to the stored representation.
func Micros(t time.Time) int64 { return t.UTC().UnixMicro() }

// Time converts a stored value back.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// NullTime converts a nullable stored value; zero when NULL.
func NullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return Time(v.Int64)
}

// NullMicros converts an optional time for storage: NULL when zero.
func NullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: Micros(t), Valid: true}
}

// Now returns the current time as Chamber stores it: UTC, microseconds.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// ErrCommitUncertain marks an error of the COMMIT itself: the connection
// may have failed after the server committed, so the caller cannot tell
// whether the transaction took effect. Whoever undoes side effects of a
// failed transaction (a stored object, say) must not undo them on this
// error; the periodic reconciliation settles it from what was committed.
var ErrCommitUncertain = errors.New("database: commit outcome unknown")

// InTx runs f in a transaction, committing when f returns nil and rolling
// back otherwise. On SQLite the transaction holds the write lock from its
// start (BEGIN IMMEDIATE), on PostgreSQL it is READ COMMITTED. Errors are
// classified (Classify); a failed COMMIT also wraps ErrCommitUncertain.
func (db *DB) InTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return Classify(fmt.Errorf("database: begin: %w", err))
	}
	defer tx.Rollback() // a no-op once committed
	if err := f(tx); err != nil {
		return Classify(err)
	}
	if err := tx.Commit(); err != nil {
		if db.Engine == SQLite && !uncertainCommit(err) {
			return Classify(fmt.Errorf("database: commit: %w", err))
		}
		return Classify(fmt.Errorf("database: commit: %w: %w", ErrCommitUncertain, err))
	}
	return nil
}

// uncertainCommit reports whether a failed SQLite COMMIT may have taken
// effect anyway: only an I/O error after the commit frame was written can
// leave it so. A full disk or a busy database means it did not.
func uncertainCommit(err error) bool {
	var lite *sqlite.Error
	return errors.As(err, &lite) && lite.Code()&0xff == sqlite3.SQLITE_IOERR && !full(err)
}

// ExecContext is sql.DB's, with the error classified (Classify).
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := db.DB.ExecContext(ctx, query, args...)
	return res, Classify(err)
}

// QueryContext is sql.DB's, with the error classified (Classify).
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := db.DB.QueryContext(ctx, query, args...)
	return rows, Classify(err)
}

// PingContext is sql.DB's, with the error classified (Classify).
func (db *DB) PingContext(ctx context.Context) error {
	return Classify(db.DB.PingContext(ctx))
}

// Probe writes one row, so that readiness fails on a database that answers
// but cannot write (a full disk is fault.InsufficientStorage). Run it
// periodically, not on every readiness request.
func (db *DB) Probe(ctx context.Context) error {
	_, err := db.ExecContext(ctx, `UPDATE health_probe SET at = $1 WHERE id = 1`, Micros(Now()))
	return err
}
