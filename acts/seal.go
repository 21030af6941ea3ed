package acts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// FinalDocument is the act's document as the notary signed it.
type FinalDocument struct {
	ID      uuid.UUID `json:"id"`
	Name    string    `json:"name"`
	Version int       `json:"version"`
	SHA256  string    `json:"sha256"`
}

// SealInput is what the session layer and the notary's request say of the
// act; its document and principals the act service finds itself.
type SealInput struct {
	ActType string
	Title   string
	Notary  string
	// Fee and Description come from the notary's seal request.
	Fee         string `json:"fee"`
	Description string `json:"description"`
}

// SealRequest is what the notary sends to seal.
type SealRequest struct {
	Fee         string `json:"fee,omitempty"`
	Description string `json:"description,omitempty"`
}

// Seal closes the act for good: it must be notarised, and no recording of
// the session may be running or waiting to be stored (the register names
// every recording's stored manifest, never a placeholder); it gets the
// next notarial number of the year (YYYY/NNNNNN, gap-free even under
// concurrent sealing) and its register entry. Its journal is archived in
// the evidence store after the seal commits: the act's journal_archived
// flag is the archive's outbox, which ArchivePending works off until the
// archive and its journal entry are recorded.
func (s *Service) Seal(ctx context.Context, c Caller, sessionID uuid.UUID, in SealInput) (Act, RegisterEntry, error) {
	if err := access.Check(c.Role, access.Seal); err != nil {
		return Act{}, RegisterEntry{}, err
	}
	if len(in.Fee) > 100 || len(in.Description) > 2000 {
		return Act{}, RegisterEntry{}, &fault.Error{Kind: fault.Invalid, Message: "fee is at most 100 characters, description at most 2000",
			Fields: map[string]string{"fee": "at most 100 characters"}}
	}
	checks, err := s.Checks(ctx, sessionID)
	if err != nil {
		return Act{}, RegisterEntry{}, err
	}
	doc, principals, err := s.sealFacts(ctx, sessionID)
	if err != nil {
		return Act{}, RegisterEntry{}, err
	}
	var (
		act   Act
		entry RegisterEntry
	)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if act, err = s.lock(ctx, tx, sessionID); err != nil {
			return err
		}
		switch act.State {
		case Sealed:
			return outOfOrder("the act is already sealed (number %s)", act.Number)
		case Notarised:
		default:
			return outOfOrder("the act can be sealed only after the notary's signature (act is %s)", act.State)
		}
		recordings, err := s.recordings(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		now := s.now()
		year := now.Year()
		if _, err := tx.ExecContext(ctx, `INSERT INTO act_numbers (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING`, year); err != nil {
			return fmt.Errorf("acts: number: %w", err)
		}
		var n int64
		if err := tx.QueryRowContext(ctx, `UPDATE act_numbers SET last = last + 1 WHERE year = $1 RETURNING last`, year).Scan(&n); err != nil {
			return fmt.Errorf("acts: number: %w", err)
		}
		number := fmt.Sprintf("%04d/%06d", year, n)
		if _, err := tx.ExecContext(ctx, `UPDATE acts SET state = $1, number = $2, sealed_at = $3, sealed_by = $4 WHERE session_id = $5`,
			string(Sealed), number, database.Micros(now), c.Actor, sessionID.String()); err != nil {
			return fmt.Errorf("acts: seal: %w", err)
		}
		act.State, act.Number, act.SealedAt = Sealed, number, &now
		entry = buildEntry(number, sessionID, now, in, doc, principals, checks, recordings)
		if err := s.insertEntry(ctx, tx, c.Actor, entry); err != nil {
			return err
		}
		return s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "act.sealed",
			Details: map[string]any{"number": number, "document": doc, "register_entry": entry.ID}})
	})
	if err != nil {
		return Act{}, RegisterEntry{}, err
	}
	s.notify(sessionID, EventActUpdated, act)
	if err := s.archive(ctx, sessionID); err != nil {
		// The act is sealed and its journal intact in the database; the
		// archive stays owed (journal_archived is false) and
		// ArchivePending stores and records it on its next pass.
		s.cfg.Logger.Error("archiving the sealed act's journal failed; it will be retried", "session", sessionID, "err", err)
	}
	return act, entry, nil
}

// sealFacts reads what the register entry names besides the notary's
// request: the act's designated document as its newest version (the one
// the signatures were made on), and the principals not removed. The
// transaction checks the act's state again under its lock; a document
// changed in between cannot be: signatures fix it (Designate).
func (s *Service) sealFacts(ctx context.Context, sessionID uuid.UUID) (FinalDocument, []Principal, error) {
	act, err := s.Get(ctx, sessionID)
	if err != nil {
		return FinalDocument{}, nil, err
	}
	var doc FinalDocument
	if act.DocumentID != nil {
		if s.cfg.Documents == nil {
			return FinalDocument{}, nil, errors.New("acts: no document source configured")
		}
		d, err := s.cfg.Documents.Get(ctx, *act.DocumentID)
		if err != nil {
			return FinalDocument{}, nil, err
		}
		if len(d.Versions) == 0 {
			return FinalDocument{}, nil, fmt.Errorf("acts: document %s has no version", d.ID)
		}
		last := d.Versions[len(d.Versions)-1]
		doc = FinalDocument{ID: d.ID, Name: d.Name, Version: last.Version, SHA256: last.SHA256}
	}
	principals, err := s.cfg.Principals(ctx, sessionID)
	if err != nil {
		return FinalDocument{}, nil, err
	}
	return doc, principals, nil
}

type recordingRef struct {
	ID             uuid.UUID `json:"id"`
	StartedAt      time.Time `json:"started_at"`
	ManifestKey    string    `json:"manifest_key"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	Files          int       `json:"files"`
	Recovered      bool      `json:"recovered,omitempty"`
}

// recordings lists the session's stored recordings for the register,
// inside the sealing transaction. A recording still running, or stopped
// but not yet stored, refuses the seal: its register line would be a
// placeholder, and the bundle made right after would lack it.
func (s *Service) recordings(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID) ([]recordingRef, error) {
	var unstored int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recordings WHERE session_id = $1 AND (stopped_at IS NULL OR manifest_key = '')`,
		sessionID.String()).Scan(&unstored); err != nil {
		return nil, fmt.Errorf("acts: recordings: %w", err)
	}
	if unstored > 0 {
		return nil, outOfOrder("a recording of this act is running or waiting to be stored: stop it, and seal once it is stored")
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, started_at, manifest_key, manifest_sha256, files, recovered FROM recordings
		WHERE session_id = $1 ORDER BY started_at`, sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("acts: recordings: %w", err)
	}
	defer rows.Close()
	var out []recordingRef
	for rows.Next() {
		var (
			r       recordingRef
			id      string
			started int64
		)
		if err := rows.Scan(&id, &started, &r.ManifestKey, &r.ManifestSHA256, &r.Files, &r.Recovered); err != nil {
			return nil, err
		}
		r.ID, _ = uuid.Parse(id)
		r.StartedAt = database.Time(started)
		out = append(out, r)
	}
	return out, rows.Err()
}

// LegalHold places or lifts a legal hold on every object of the session's
// evidence and records it.
func (s *Service) LegalHold(ctx context.Context, c Caller, sessionID uuid.UUID, on bool) (int, error) {
	if err := access.Check(c.Role, access.LegalHold); err != nil {
		return 0, err
	}
	// The record's objects, not whatever the store holds: an orphan is
	// not evidence.
	objs, err := catalog.Session(ctx, s.cfg.DB, sessionID)
	if err != nil {
		return 0, fmt.Errorf("acts: legal hold: %w", err)
	}
	for _, o := range objs {
		if err := s.cfg.Store.LegalHold(ctx, o.Key, on); err != nil {
			return 0, fmt.Errorf("acts: legal hold on %s: %w", o.Key, err)
		}
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		act, err := s.get(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO acts (session_id, state, legal_hold) VALUES ($1, $2, $3) ON CONFLICT (session_id) DO UPDATE SET legal_hold = excluded.legal_hold`,
			sessionID.String(), string(act.State), on); err != nil {
			return err
		}
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.Key
		}
		// "keys", not "objects": a journal entry's "objects" are what it
		// makes part of the record (see bundle.CheckRecord).
		_, err = s.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "evidence.legal_hold",
			Details: map[string]any{"on": on, "keys": keys}})
		return err
	})
	return len(objs), err
}

func trimmed(s string) string { return strings.TrimSpace(s) }
