package journal

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
)

const entryColumns = `seq, at, session_id, actor, action, details, prev_hash, session_prev_hash, hash`

func scanEntry(rows interface{ Scan(...any) error }) (Entry, error) {
	var (
		e       Entry
		at      int64
		session sql.NullString
		details string
	)
	if err := rows.Scan(&e.Seq, &at, &session, &e.Actor, &e.Action, &details, &e.PrevHash, &e.SessionPrevHash, &e.Hash); err != nil {
		return Entry{}, err
	}
	e.At = database.Time(at)
	e.Details = []byte(details)
	if session.Valid {
		id, err := uuid.Parse(session.String)
		if err != nil {
			// Keep the row (verification reports it) but make the damage visible.
			return e, fmt.Errorf("journal: entry %d has a malformed session_id %q", e.Seq, session.String)
		}
		e.SessionID = id
	}
	return e, nil
}

// Session returns the entries of one session in order, after afterSeq, at
// most limit of them (limit <= 0 means all).
func (j *Journal) Session(ctx context.Context, sessionID uuid.UUID, afterSeq int64, limit int) ([]Entry, error) {
	q := `SELECT ` + entryColumns + ` FROM journal WHERE session_id = $1 AND seq > $2 ORDER BY seq`
	args := []any{sessionID.String(), afterSeq}
	if limit > 0 {
		q += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: list session %s: %w", sessionID, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Head returns the newest entry's sequence number and hash (0, "" when empty).
func (j *Journal) Head(ctx context.Context) (seq int64, hash string, err error) {
	err = j.db.QueryRowContext(ctx, `SELECT seq, hash FROM journal_head WHERE id = 1`).Scan(&seq, &hash)
	if err != nil {
		return 0, "", database.Classify(fmt.Errorf("journal: head: %w", err))
	}
	return seq, hash, nil
}
