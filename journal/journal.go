// Package journal keeps Chamber's tamper-evident record of everything that
// happened: one append-only table whose entries are chained by SHA-256.
//
// Every entry's hash covers the previous entry's hash and a canonical
// encoding of the entry itself, so altering, inserting or deleting a row
// breaks the chain at that row. Entries of one session are additionally
// chained among themselves (session_prev_hash), so a session's entries can
// leave the database in an evidence bundle and still be verified offline.
// The head hash is timestamped by an RFC 3161 authority at session close and
// periodically, so even rewriting the whole table is detectable.
package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
)

// Entry is one journal record as stored.
type Entry struct {
	Seq             int64           `json:"seq"`
	At              time.Time       `json:"at"`
	SessionID       uuid.UUID       `json:"session_id"`
	Actor           string          `json:"actor"`
	Action          string          `json:"action"`
	Details         json.RawMessage `json:"details"`
	PrevHash        string          `json:"prev_hash"`
	SessionPrevHash string          `json:"session_prev_hash"`
	Hash            string          `json:"hash"`
}

// Record is what a caller appends; the journal fills in the rest.
type Record struct {
	SessionID uuid.UUID // uuid.Nil for entries that belong to no session
	Actor     string    // "staff:<id>", "participant:<id>", "system", …
	Action    string    // e.g. "session.created"
	Details   any       // marshalled to canonical JSON; nil means {}
}

// Timestamper obtains an RFC 3161 timestamp token over a SHA-256 digest.
type Timestamper interface {
	Timestamp(ctx context.Context, sha256Digest []byte) (token []byte, err error)
}

// TokenVerifier checks an RFC 3161 token against the digest it should cover
// and returns the time it asserts.
type TokenVerifier func(token, sha256Digest []byte) (time.Time, error)

// Journal appends to and reads the journal table.
type Journal struct {
	db     *database.DB
	ts     Timestamper
	log    *slog.Logger
	now    func() time.Time
	outbox outbox
	fence  Fence
}

// Fence checks, inside an append's transaction, that this process may
// still write for the session: with several nodes, only the session's home
// node may (package cluster). A refusal ends the append and so the whole
// transaction of the change it records. Nil checks nothing (one node).
type Fence func(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID) error

// SetFence installs the check of every append for a session. Set it before
// the journal is used.
func (j *Journal) SetFence(f Fence) { j.fence = f }

// Config configures a journal.
type Config struct {
	DB *database.DB
	// Timestamper anchors the journal's head; without one Anchor fails.
	Timestamper Timestamper
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// New returns a journal on cfg.DB.
func New(cfg Config) *Journal {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Journal{db: cfg.DB, ts: cfg.Timestamper, log: log, now: database.Now}
}

// Append adds one entry in its own transaction.
func (j *Journal) Append(ctx context.Context, rec Record) (Entry, error) {
	var e Entry
	err := j.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = j.AppendTx(ctx, tx, rec)
		return err
	})
	return e, err
}

// AppendTx adds one entry inside the caller's transaction, so that a state
// change and its journal entry commit together or not at all. The journal
// head stays locked until the transaction ends: call it last.
func (j *Journal) AppendTx(ctx context.Context, tx *sql.Tx, rec Record) (Entry, error) {
	details, err := Canonical(rec.Details)
	if err != nil {
		return Entry{}, fmt.Errorf("journal: details of %s: %w", rec.Action, err)
	}
	if j.fence != nil && rec.SessionID != uuid.Nil {
		// Before the head's lock: a refused writer does not hold up others.
		if err := j.fence(ctx, tx, rec.SessionID); err != nil {
			return Entry{}, fmt.Errorf("journal: %s: %w", rec.Action, err)
		}
	}
	e := Entry{
		At:        j.now(),
		SessionID: rec.SessionID,
		Actor:     rec.Actor,
		Action:    rec.Action,
		Details:   details,
	}
	// The UPDATE takes the head row's lock (PostgreSQL) inside a write
	// transaction (SQLite), so concurrent appenders queue here and each sees
	// the head its predecessor left.
	if err := tx.QueryRowContext(ctx,
		`UPDATE journal_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash`,
	).Scan(&e.Seq, &e.PrevHash); err != nil {
		return Entry{}, fmt.Errorf("journal: advance head: %w", err)
	}
	if rec.SessionID != uuid.Nil {
		err := tx.QueryRowContext(ctx,
			`SELECT hash FROM journal_session_head WHERE session_id = $1`, rec.SessionID.String(),
		).Scan(&e.SessionPrevHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Entry{}, fmt.Errorf("journal: session head: %w", err)
		}
	}
	e.Hash = e.ComputeHash()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO journal (seq, at, session_id, actor, action, details, prev_hash, session_prev_hash, hash)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.Seq, database.Micros(e.At), nullUUID(e.SessionID), e.Actor, e.Action, string(e.Details),
		e.PrevHash, e.SessionPrevHash, e.Hash,
	); err != nil {
		return Entry{}, fmt.Errorf("journal: insert entry %d: %w", e.Seq, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE journal_head SET hash = $1 WHERE id = 1`, e.Hash); err != nil {
		return Entry{}, fmt.Errorf("journal: update head: %w", err)
	}
	if rec.SessionID != uuid.Nil {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO journal_session_head (session_id, seq, hash) VALUES ($1, $2, $3)
			 ON CONFLICT (session_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`,
			rec.SessionID.String(), e.Seq, e.Hash,
		); err != nil {
			return Entry{}, fmt.Errorf("journal: update session head: %w", err)
		}
	}
	return e, nil
}

func nullUUID(id uuid.UUID) sql.NullString {
	if id == uuid.Nil {
		return sql.NullString{}
	}
	return sql.NullString{String: id.String(), Valid: true}
}

// timeLayout fixes the width of the time in the canonical encoding, so the
// encoding of a stored entry never depends on trailing zeros.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// CanonicalBytes is the encoding the hash covers: a JSON object with the
// fields in this fixed order, details as stored (already canonical JSON).
func (e Entry) CanonicalBytes() []byte {
	var b bytes.Buffer
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	b.WriteString(`,"at":`)
	writeString(&b, e.At.UTC().Format(timeLayout))
	b.WriteString(`,"session_id":`)
	if e.SessionID == uuid.Nil {
		b.WriteString(`""`)
	} else {
		writeString(&b, e.SessionID.String())
	}
	b.WriteString(`,"actor":`)
	writeString(&b, e.Actor)
	b.WriteString(`,"action":`)
	writeString(&b, e.Action)
	b.WriteString(`,"details":`)
	if len(e.Details) == 0 {
		b.WriteString(`{}`)
	} else {
		// As stored: AppendTx stored them canonical. A copy that was
		// re-encoded on its way (indented JSON in a bundle) is made
		// canonical where it comes in, not here, so that the hash of a
		// stored entry never depends on today's Canonical.
		b.Write(e.Details)
	}
	b.WriteString(`,"session_prev_hash":`)
	writeString(&b, e.SessionPrevHash)
	b.WriteString(`}`)
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// ComputeHash returns hex(SHA-256(prev ‖ canonical)), where prev is the
// previous entry's hash as raw bytes (empty for the first entry).
func (e Entry) ComputeHash() string {
	h := sha256.New()
	if prev, err := hex.DecodeString(e.PrevHash); err == nil {
		h.Write(prev)
	} else {
		// A stored prev_hash that is not hex cannot come from Append;
		// hashing its text keeps verification deterministic and failing.
		h.Write([]byte(e.PrevHash))
	}
	h.Write(e.CanonicalBytes())
	return hex.EncodeToString(h.Sum(nil))
}

// Canonical encodes v as canonical JSON: object keys sorted, no
// insignificant whitespace, numbers as written. nil encodes as {}.
func Canonical(v any) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage(`{}`), nil
	}
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	if _, isObject := generic.(map[string]any); !isObject {
		return nil, errors.New("details must be a JSON object")
	}
	// encoding/json writes map keys in sorted order.
	out, err := json.Marshal(generic)
	if err != nil {
		return nil, err
	}
	return out, nil
}
