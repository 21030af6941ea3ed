package acts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
)

// archive stores a sealed act's journal — its session's entries through
// the act.sealed entry — in the evidence store and records it: the catalog
// entry, the act.journal_archived journal entry and the act's
// journal_archived flag commit together. It can be repeated safely: the
// archive's bytes and key depend only on the journal, so a retry after a
// crash finds the object an earlier attempt stored (same key, same
// SHA-256) and records that one; an act already archived is left alone.
func (s *Service) archive(ctx context.Context, sessionID uuid.UUID) error {
	var (
		number    string
		sealedSeq sql.NullInt64
	)
	err := s.cfg.DB.QueryRowContext(ctx, `SELECT a.number, (SELECT MAX(seq) FROM journal j WHERE j.session_id = a.session_id AND j.action = 'act.sealed')
		FROM acts a WHERE a.session_id = $1 AND a.state = $2 AND NOT a.journal_archived`, sessionID.String(), string(Sealed)).Scan(&number, &sealedSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not sealed, or archived already
	}
	if err != nil {
		return fmt.Errorf("acts: archive: %w", err)
	}
	if !sealedSeq.Valid {
		return fmt.Errorf("acts: archive %s: the sealed act has no act.sealed journal entry", sessionID)
	}
	entries, err := s.cfg.Journal.Session(ctx, sessionID, 0, 0)
	if err != nil {
		return err
	}
	var through []journal.Entry
	for _, e := range entries {
		if e.Seq <= sealedSeq.Int64 {
			through = append(through, e)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(through); err != nil {
		return err
	}
	key := fmt.Sprintf("sessions/%s/journal/sealed-%d.json", sessionID, sealedSeq.Int64)
	obj, err := s.storeArchive(ctx, key, buf.Bytes())
	if err != nil {
		return err
	}
	rec := catalog.Of(catalog.JournalArchive, obj)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE acts SET journal_archived = TRUE WHERE session_id = $1 AND NOT journal_archived`, sessionID.String())
		if err != nil {
			return fmt.Errorf("acts: archive: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another pass recorded it meanwhile
		}
		if err := catalog.Add(ctx, tx, sessionID, s.retainUntil(), rec); err != nil {
			return err
		}
		_, err = s.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sessionID, Actor: "system", Action: "act.journal_archived",
			Details: map[string]any{"number": number, "key": key, "sha256": obj.SHA256, "entries": len(through), "through_seq": sealedSeq.Int64,
				"objects": []catalog.Object{rec}}})
		return err
	})
	if err != nil {
		return err
	}
	s.catalog.Retain(ctx, key)
	return nil
}

// storeArchive stores data under key, or finds it stored by an earlier
// attempt. Other bytes under the key are corruption, never overwritten.
func (s *Service) storeArchive(ctx context.Context, key string, data []byte) (evidence.Object, error) {
	obj, err := s.cfg.Store.Put(ctx, key, bytes.NewReader(data), evidence.PutOptions{ContentType: "application/json"})
	if !errors.Is(err, evidence.ErrExists) {
		return obj, err
	}
	obj, err = s.cfg.Store.Stat(ctx, key)
	if err != nil {
		return evidence.Object{}, err
	}
	sum := sha256.Sum256(data)
	if obj.SHA256 != hex.EncodeToString(sum[:]) || obj.Size != int64(len(data)) {
		return evidence.Object{}, fmt.Errorf("%w: %s holds %d bytes with SHA-256 %s, not the sealed act's journal", evidence.ErrCorrupt, key, obj.Size, obj.SHA256)
	}
	return obj, nil
}

// ArchivePending archives the journals of sealed acts whose archive is
// still owed (a crash or an outage after the seal) and returns how many it
// recorded.
func (s *Service) ArchivePending(ctx context.Context) (int, error) {
	rows, err := s.cfg.DB.QueryContext(ctx, `SELECT session_id FROM acts WHERE state = $1 AND NOT journal_archived ORDER BY sealed_at LIMIT 100`, string(Sealed))
	if err != nil {
		return 0, fmt.Errorf("acts: owed archives: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		if u, err := uuid.Parse(id); err == nil {
			ids = append(ids, u)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		if err := s.archive(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// RunArchiver works off owed archives every interval until ctx ends.
func (s *Service) RunArchiver(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.ArchivePending(ctx); err != nil {
			s.cfg.Logger.Warn("archiving sealed acts' journals", "archived", n, "err", err)
		} else if n > 0 {
			s.cfg.Logger.Info("archived sealed acts' journals", "acts", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PendingWrites lists the key prefixes of the session's writes still owed
// to the record — a sealed act's journal archive — for the reconciler,
// which leaves them alone.
func (s *Service) PendingWrites(ctx context.Context, sessionID uuid.UUID) ([]string, error) {
	var n int
	if err := s.cfg.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM acts WHERE session_id = $1 AND state = $2 AND NOT journal_archived`,
		sessionID.String(), string(Sealed)).Scan(&n); err != nil {
		return nil, fmt.Errorf("acts: pending writes: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	return []string{"sessions/" + sessionID.String() + "/journal/"}, nil
}
