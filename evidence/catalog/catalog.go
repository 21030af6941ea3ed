// Package catalog says which objects of the evidence store are part of the
// record.
//
// The store is write-once, but a write can succeed while what should
// follow it fails: the database transaction that records a document
// version, a crash between the two. So an object in the store is not, by
// itself, evidence. It becomes part of the record only when a row of the
// catalog (table evidence_objects) names it, written by Add in the same
// transaction as the state that refers to it (a document version, an
// identity still, a stopped recording, a sealed act's archived journal)
// and the journal entry that lists it under "objects". Views — bundles,
// legal holds, downloads — take the catalog's objects, never a listing of
// the store.
//
// Retention is applied when an object becomes part of the record: callers
// store without retention, commit, then call Retain; ApplyRetention, run
// periodically, applies whatever a crash or an outage left owed. Reconcile
// finds the objects no record names (orphans: failed writes), journals
// each once as orphan.found and records it in evidence_orphans, which
// keeps it out of nothing because no view looks past the catalog anyway.
// docs/evidence.md states the rules.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/journal"
)

var (
	metricOrphans = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_evidence_orphans_found_total",
		Help: "Stored objects found that no record names (failed writes), journalled as orphan.found.",
	})
	metricRetentionOwed = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_evidence_retention_owed",
		Help: "Recorded objects whose retention the store has not taken yet (after the last pass).",
	})
)

// Object kinds: what made an object part of the record.
const (
	Upload            = "document"           // version 1 of a document
	Signed            = "signed_version"     // a signed version of a document
	Still             = "identity_still"     // a face still or document photo
	RecordingFile     = "recording"          // one file of a recording
	RecordingManifest = "recording_manifest" // a recording's manifest
	JournalArchive    = "journal_archive"    // a sealed act's archived journal
	// RecordingComposite is derived, not original, evidence: a recording's
	// files composed into one (grid of speakers, presented pages, mixed
	// audio) after it stopped. Its journal entry names the originals.
	RecordingComposite = "derived_composite"
	Adopted            = "adopted" // named by a record older than the catalog
)

// Object is an object of the record, as the catalog and the journal's
// "objects" lists name it.
type Object struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Of describes a stored object as an object of the record.
func Of(kind string, o evidence.Object) Object {
	return Object{Key: o.Key, Kind: kind, Size: o.Size, SHA256: o.SHA256}
}

// Add records objs as part of the session's record inside tx, the
// transaction that also writes the state naming them and the journal entry
// listing them. retainUntil is the retention the record asks for (zero:
// none). An object the catalog already holds (stored bytes two documents
// share) stays as it is; a key recorded with other bytes is an error.
func Add(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, retainUntil time.Time, objs ...Object) error {
	for _, o := range objs {
		if _, err := add(ctx, tx, sessionID, retainUntil, o); err != nil {
			return err
		}
	}
	return nil
}

// add records one object and reports whether this call added it.
func add(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, retainUntil time.Time, o Object) (bool, error) {
	if o.Key == "" || o.SHA256 == "" {
		return false, fmt.Errorf("catalog: object %q without key or SHA-256", o.Key)
	}
	var until sql.NullInt64
	if !retainUntil.IsZero() {
		until = sql.NullInt64{Int64: database.Micros(retainUntil), Valid: true}
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO evidence_objects (object_key, session_id, kind, size, sha256, recorded_at, retain_until, retained)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (object_key) DO NOTHING`,
		o.Key, sessionID.String(), o.Kind, o.Size, o.SHA256, database.Micros(database.Now()), until, !until.Valid)
	if err != nil {
		return false, fmt.Errorf("catalog: record %s: %w", o.Key, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	var sha string
	if err := tx.QueryRowContext(ctx, `SELECT sha256 FROM evidence_objects WHERE object_key = $1`, o.Key).Scan(&sha); err != nil {
		return false, fmt.Errorf("catalog: record %s: %w", o.Key, err)
	}
	if sha != o.SHA256 {
		return false, fmt.Errorf("%w: %s is recorded with SHA-256 %s, not %s", evidence.ErrCorrupt, o.Key, sha, o.SHA256)
	}
	return false, nil
}

// Querier runs a query: the database or a transaction.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Session returns the objects of a session's record, sorted by key.
func Session(ctx context.Context, q Querier, sessionID uuid.UUID) ([]Object, error) {
	rows, err := q.QueryContext(ctx, `SELECT object_key, kind, size, sha256 FROM evidence_objects WHERE session_id = $1 ORDER BY object_key`,
		sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("catalog: session %s: %w", sessionID, err)
	}
	defer rows.Close()
	out := []Object{}
	for rows.Next() {
		var o Object
		if err := rows.Scan(&o.Key, &o.Kind, &o.Size, &o.SHA256); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Lookup returns the object of a session's record stored under key, and
// whether the record names it.
func Lookup(ctx context.Context, q Querier, sessionID uuid.UUID, key string) (Object, bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT object_key, kind, size, sha256 FROM evidence_objects WHERE object_key = $1 AND session_id = $2`,
		key, sessionID.String())
	if err != nil {
		return Object{}, false, fmt.Errorf("catalog: lookup %s: %w", key, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return Object{}, false, rows.Err()
	}
	var o Object
	if err := rows.Scan(&o.Key, &o.Kind, &o.Size, &o.SHA256); err != nil {
		return Object{}, false, err
	}
	return o, true, rows.Err()
}

// Config configures a Catalog.
type Config struct {
	DB      *database.DB
	Store   evidence.Store
	Journal *journal.Journal
	Logger  *slog.Logger
	// Grace is how old an object the catalog does not name must be before
	// Reconcile calls it an orphan: longer than any write takes from its
	// Put to its commit (default 1 h).
	Grace time.Duration
	// Pending lists, per session, the key prefixes of writes that are
	// still under way and may take longer than Grace (a recording
	// running or waiting to be stored, a sealed act's journal archive
	// waiting to be recorded). Reconcile leaves them alone.
	Pending []func(ctx context.Context, sessionID uuid.UUID) ([]string, error)
}

// Catalog applies owed retention and reconciles the store with the record.
type Catalog struct {
	cfg Config
	log *slog.Logger
}

// New returns a Catalog.
func New(cfg Config) *Catalog {
	if cfg.Grace <= 0 {
		cfg.Grace = time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Catalog{cfg: cfg, log: log}
}

// Retain applies the retention the record asks for to keys, just recorded,
// a few at a time. It is best effort: what fails here (the store went away
// after the commit) stays owed in the catalog and ApplyRetention applies it
// later.
func (c *Catalog) Retain(ctx context.Context, keys ...string) {
	ctx = context.WithoutCancel(ctx) // the caller's request may end; the record's protection must not wait for the next pass
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.retainRecorded(ctx, key); err != nil {
				c.log.Warn("retention owed; applying it later", "key", key, "err", err)
			}
		})
	}
	wg.Wait()
}

// retainRecorded applies the retention the catalog owes to key, if any.
func (c *Catalog) retainRecorded(ctx context.Context, key string) error {
	var (
		until    sql.NullInt64
		retained bool
	)
	err := c.cfg.DB.DB.QueryRowContext(ctx, `SELECT retain_until, retained FROM evidence_objects WHERE object_key = $1`, key).Scan(&until, &retained)
	if err != nil || retained || !until.Valid {
		return err
	}
	return c.retainOne(ctx, key, database.Time(until.Int64))
}

// ApplyRetention applies every retention the catalog still owes and
// returns how many objects it protected.
func (c *Catalog) ApplyRetention(ctx context.Context) (int, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT object_key, retain_until FROM evidence_objects WHERE NOT retained ORDER BY recorded_at LIMIT 1000`)
	if err != nil {
		return 0, fmt.Errorf("catalog: owed retention: %w", err)
	}
	type owed struct {
		key   string
		until time.Time
	}
	var todo []owed
	for rows.Next() {
		var (
			o     owed
			until sql.NullInt64
		)
		if err := rows.Scan(&o.key, &until); err != nil {
			rows.Close()
			return 0, err
		}
		o.until = database.NullTime(until)
		todo = append(todo, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, o := range todo {
		if err := c.retainOne(ctx, o.key, o.until); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	var remaining int
	if err := c.cfg.DB.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM evidence_objects WHERE NOT retained`).Scan(&remaining); err == nil {
		metricRetentionOwed.Set(float64(remaining))
	}
	return n, errors.Join(errs...)
}

// retainOne puts key under retention until then and marks it retained. A
// retention the store already holds for as long or longer, or a date that
// passed while the store was away, leaves nothing to do.
func (c *Catalog) retainOne(ctx context.Context, key string, until time.Time) error {
	if !until.IsZero() {
		err := c.cfg.Store.Retain(ctx, key, until)
		if errors.Is(err, evidence.ErrInvalidRetention) {
			obj, serr := c.cfg.Store.Stat(ctx, key)
			if serr != nil {
				return fmt.Errorf("catalog: retain %s: %w", key, serr)
			}
			if obj.RetainUntil.Before(until.Truncate(time.Second)) && until.After(time.Now()) {
				return fmt.Errorf("catalog: retain %s: %w", key, err)
			}
			err = nil
		}
		if err != nil {
			return fmt.Errorf("catalog: retain %s: %w", key, err)
		}
	}
	if _, err := c.cfg.DB.ExecContext(ctx, `UPDATE evidence_objects SET retained = TRUE WHERE object_key = $1`, key); err != nil {
		return fmt.Errorf("catalog: retain %s: %w", key, err)
	}
	return nil
}

// Run applies owed retention every retainEvery and reconciles every
// reconcileEvery (0: never) until ctx ends; both run once at the start.
// Failures are logged and retried at the next pass.
func (c *Catalog) Run(ctx context.Context, retainEvery, reconcileEvery time.Duration) {
	retain := time.NewTicker(retainEvery)
	defer retain.Stop()
	var reconcile <-chan time.Time
	if reconcileEvery > 0 {
		t := time.NewTicker(reconcileEvery)
		defer t.Stop()
		reconcile = t.C
		c.reconcileOnce(ctx)
	}
	for {
		if n, err := c.ApplyRetention(ctx); err != nil {
			c.log.Warn("applying owed retention; retrying", "applied", n, "err", err)
		} else if n > 0 {
			c.log.Info("applied owed retention", "objects", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-retain.C:
		case <-reconcile:
			c.reconcileOnce(ctx)
		}
	}
}

func (c *Catalog) reconcileOnce(ctx context.Context) {
	rep, err := c.Reconcile(ctx)
	switch {
	case err != nil:
		c.log.Warn("reconciling the evidence store with the record; retrying", "err", err)
	case len(rep.Orphans) > 0 || len(rep.Adopted) > 0 || len(rep.Missing) > 0:
		c.log.Warn("evidence store reconciled", "orphans", len(rep.Orphans), "adopted", len(rep.Adopted), "missing", len(rep.Missing))
	}
}

// sessionPrefix is where a session's objects live.
func sessionPrefix(id uuid.UUID) string { return "sessions/" + id.String() + "/" }

// isPending reports whether key lies under one of prefixes.
func isPending(key string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}
