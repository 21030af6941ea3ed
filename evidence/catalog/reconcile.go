package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/journal"
)

// Report is what a reconciliation found.
type Report struct {
	Sessions int `json:"sessions"`
	// Objects counts the objects stored under the sessions' prefixes.
	Objects  int `json:"objects"`
	Recorded int `json:"recorded"`
	// Pending counts objects of writes still under way (or younger than
	// the grace period), left for a later pass.
	Pending int `json:"pending"`
	// KnownOrphans counts orphans found by earlier passes.
	KnownOrphans int `json:"known_orphans"`
	// Orphans are the objects found, journalled and recorded as orphans
	// by this pass.
	Orphans []Object `json:"orphans"`
	// Adopted are objects that a record older than the catalog names
	// (the journal or a table lists their key and SHA-256): added to the
	// catalog and journalled as evidence.adopted.
	Adopted []Object `json:"adopted"`
	// Missing are keys the record names but the store does not hold:
	// evidence lost behind Chamber's back. They are logged as errors.
	Missing []string `json:"missing"`
}

// Reconcile compares every session's objects in the store with the
// record. An object the catalog does not name, older than the grace period
// and outside any pending write, is an orphan: it is recorded in
// evidence_orphans and journalled once as orphan.found, in one
// transaction, so two passes (or two servers) never journal it twice.
func (c *Catalog) Reconcile(ctx context.Context) (Report, error) {
	rep := Report{Orphans: []Object{}, Adopted: []Object{}, Missing: []string{}}
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT id FROM sessions ORDER BY created_at, id`)
	if err != nil {
		return rep, fmt.Errorf("catalog: sessions: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return rep, err
		}
		if u, err := uuid.Parse(id); err == nil {
			ids = append(ids, u)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	for _, id := range ids {
		if err := c.reconcileSession(ctx, id, &rep); err != nil {
			return rep, err
		}
		rep.Sessions++
	}
	return rep, nil
}

// reconcileSession compares what the store holds of one session with its
// record: it reports recorded objects the store lacks, and adopts or
// journals as orphans the stored objects no record names.
func (c *Catalog) reconcileSession(ctx context.Context, sid uuid.UUID, rep *Report) error {
	stored, err := c.cfg.Store.List(ctx, sessionPrefix(sid))
	if err != nil {
		return fmt.Errorf("catalog: list session %s: %w", sid, err)
	}
	// Pending writes are read before the catalog: a write that commits in
	// between is then seen as pending or as recorded, never as neither.
	pending, err := c.pending(ctx, sid)
	if err != nil {
		return err
	}
	recorded, err := Session(ctx, c.cfg.DB, sid)
	if err != nil {
		return err
	}
	known, err := c.orphans(ctx, sid)
	if err != nil {
		return err
	}
	isRecorded := c.noteMissing(sid, stored, recorded, rep)
	candidates := c.unnamed(stored, isRecorded, known, pending, rep)
	if len(candidates) == 0 {
		return nil
	}
	names, err := c.legacyNames(ctx, sid)
	if err != nil {
		return err
	}
	for _, o := range candidates {
		if err := c.settle(ctx, sid, o, names, rep); err != nil {
			return err
		}
	}
	return nil
}

// pending lists the key prefixes of the session's writes under way.
func (c *Catalog) pending(ctx context.Context, sid uuid.UUID) ([]string, error) {
	var pending []string
	for _, f := range c.cfg.Pending {
		p, err := f(ctx, sid)
		if err != nil {
			return nil, fmt.Errorf("catalog: pending writes of session %s: %w", sid, err)
		}
		pending = append(pending, p...)
	}
	return pending, nil
}

// noteMissing reports the recorded objects the store lacks, and returns
// the recorded keys.
func (c *Catalog) noteMissing(sid uuid.UUID, stored []evidence.Object, recorded []Object, rep *Report) map[string]bool {
	inStore := make(map[string]bool, len(stored))
	for _, o := range stored {
		inStore[o.Key] = true
	}
	isRecorded := make(map[string]bool, len(recorded))
	for _, o := range recorded {
		isRecorded[o.Key] = true
		if !inStore[o.Key] {
			c.log.Error("evidence the record names is missing from the store", "session", sid, "key", o.Key, "sha256", o.SHA256)
			rep.Missing = append(rep.Missing, o.Key)
		}
	}
	return isRecorded
}

// unnamed counts the stored objects by what is known of them, and
// returns those nothing accounts for: no record names them, they are no
// known orphan, and they are neither pending nor within the grace period.
func (c *Catalog) unnamed(stored []evidence.Object, isRecorded, known map[string]bool, pending []string, rep *Report) []evidence.Object {
	cutoff := time.Now().Add(-c.cfg.Grace)
	var candidates []evidence.Object
	for _, o := range stored {
		rep.Objects++
		switch {
		case isRecorded[o.Key]:
			rep.Recorded++
		case known[o.Key]:
			rep.KnownOrphans++
		case isPending(o.Key, pending) || o.Created.After(cutoff):
			rep.Pending++
		default:
			candidates = append(candidates, o)
		}
	}
	return candidates
}

// settle adopts an unnamed object that a record older than the catalog
// names with its SHA-256 (names), and journals any other as an orphan.
func (c *Catalog) settle(ctx context.Context, sid uuid.UUID, o evidence.Object, names map[string]string, rep *Report) error {
	if sha, ok := names[o.Key]; ok && sha == o.SHA256 {
		adopted, err := c.adopt(ctx, sid, o)
		if err != nil {
			return err
		}
		if adopted {
			rep.Adopted = append(rep.Adopted, Of(Adopted, o))
		} else {
			rep.Recorded++
		}
		return nil
	}
	found, err := c.orphan(ctx, sid, o)
	if err != nil {
		return err
	}
	if found {
		c.log.Warn("orphan found: a stored object no record names", "session", sid, "key", o.Key, "sha256", o.SHA256, "size", o.Size)
		rep.Orphans = append(rep.Orphans, Of("orphan", o))
	} else {
		rep.KnownOrphans++
	}
	return nil
}

func (c *Catalog) orphans(ctx context.Context, sid uuid.UUID) (map[string]bool, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT object_key FROM evidence_orphans WHERE session_id = $1`, sid.String())
	if err != nil {
		return nil, fmt.Errorf("catalog: orphans: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = true
	}
	return out, rows.Err()
}

// orphan records o as an orphan and journals it, unless the catalog names
// it after all or another pass recorded it first; found reports whether
// this call did.
func (c *Catalog) orphan(ctx context.Context, sid uuid.UUID, o evidence.Object) (found bool, err error) {
	err = c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO evidence_orphans (object_key, session_id, size, sha256, stored_at, found_at)
			 SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM evidence_objects WHERE object_key = $1)
			 ON CONFLICT (object_key) DO NOTHING`,
			o.Key, sid.String(), o.Size, o.SHA256, database.Micros(o.Created), database.Micros(database.Now()))
		if err != nil {
			return fmt.Errorf("catalog: orphan %s: %w", o.Key, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		found = true
		_, err = c.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sid, Actor: "system", Action: "orphan.found",
			Details: map[string]any{
				"object":    map[string]any{"key": o.Key, "sha256": o.SHA256, "size": o.Size, "stored_at": o.Created},
				"reason":    "stored, but no record names it: a write whose transaction failed; it is not evidence and no view shows it",
				"retention": !o.RetainUntil.IsZero(),
			}})
		return err
	})
	if err == nil && found {
		metricOrphans.Inc()
	}
	return found, err
}

// adopt adds to the catalog an object that a record older than the
// catalog names, and journals the adoption, unless another pass got there
// first; adopted reports whether this call did.
func (c *Catalog) adopt(ctx context.Context, sid uuid.UUID, o evidence.Object) (adopted bool, err error) {
	obj := Of(Adopted, o)
	err = c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if adopted, err = add(ctx, tx, sid, time.Time{}, obj); err != nil || !adopted {
			return err
		}
		_, err = c.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sid, Actor: "system", Action: "evidence.adopted",
			Details: map[string]any{"objects": []Object{obj}, "reason": "named with this SHA-256 by a record written before the evidence catalog"}})
		return err
	})
	return adopted, err
}

// legacyNames returns key → SHA-256 of the objects that the session's
// records written before the catalog existed name: document versions,
// identity stills and recording manifests in their tables, and any key
// with its SHA-256 in the session's journal (recording files, archived
// journals), except orphan.found entries.
func (c *Catalog) legacyNames(ctx context.Context, sid uuid.UUID) (map[string]string, error) {
	names := map[string]string{}
	for _, q := range []string{
		`SELECT v.object_key, v.sha256 FROM document_versions v JOIN documents d ON d.id = v.document_id WHERE d.session_id = $1`,
		`SELECT face_key, face_sha256 FROM identity_checks WHERE session_id = $1 AND face_key <> ''`,
		`SELECT document_key, document_sha256 FROM identity_checks WHERE session_id = $1 AND document_key <> ''`,
		`SELECT manifest_key, manifest_sha256 FROM recordings WHERE session_id = $1 AND manifest_key <> ''`,
	} {
		if err := c.collect(ctx, q, sid, names); err != nil {
			return nil, err
		}
	}
	entries, err := c.cfg.Journal.Session(ctx, sid, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Action == "orphan.found" {
			continue
		}
		var v any
		if json.Unmarshal(e.Details, &v) == nil {
			namedIn(v, names)
		}
	}
	return names, nil
}

func (c *Catalog) collect(ctx context.Context, q string, sid uuid.UUID, names map[string]string) error {
	rows, err := c.cfg.DB.QueryContext(ctx, q, sid.String())
	if err != nil {
		return fmt.Errorf("catalog: legacy records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, sha string
		if err := rows.Scan(&k, &sha); err != nil {
			return err
		}
		names[k] = sha
	}
	return rows.Err()
}

// namedIn collects the (key, SHA-256) pairs of journal details: objects
// carrying key/sha256, object_key/sha256 or manifest_key/manifest_sha256.
func namedIn(v any, names map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, f := range [][2]string{{"key", "sha256"}, {"object_key", "sha256"}, {"manifest_key", "manifest_sha256"}} {
			k, _ := v[f[0]].(string)
			sha, _ := v[f[1]].(string)
			if k != "" && sha != "" {
				names[k] = sha
			}
		}
		for _, x := range v {
			namedIn(x, names)
		}
	case []any:
		for _, x := range v {
			namedIn(x, names)
		}
	}
}
