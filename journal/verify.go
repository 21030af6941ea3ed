package journal

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
)

// ErrBroken is wrapped by every verification failure.
var ErrBroken = errors.New("journal chain broken")

// BrokenError names the first entry that does not verify.
type BrokenError struct {
	Seq    int64
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("journal entry %d: %s", e.Seq, e.Reason)
}

// Unwrap lets errors.Is(err, ErrBroken) match.
func (e *BrokenError) Unwrap() error { return ErrBroken }

// Report summarises a successful verification.
type Report struct {
	Entries int64     `json:"entries"`
	Head    string    `json:"head"`
	Anchors int       `json:"anchors"`
	Latest  time.Time `json:"latest_anchor,omitzero"`
}

// Chain checks entries one at a time, in order. It carries only the last
// hash overall and per session, so a journal of any length verifies in
// constant memory per session.
type Chain struct {
	// Subset is true when the entries are one session's entries taken out
	// of the global chain (an evidence bundle): then only each entry's own
	// hash and the per-session links are checked, not global continuity.
	Subset bool

	n           int64
	lastSeq     int64
	lastHash    string
	sessionLast map[uuid.UUID]string
}

// Add checks the next entry. It returns a *BrokenError for the first
// entry that does not fit.
func (c *Chain) Add(e Entry) error {
	if c.sessionLast == nil {
		c.sessionLast = map[uuid.UUID]string{}
	}
	broken := func(format string, args ...any) error {
		return &BrokenError{Seq: e.Seq, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Subset {
		if c.n > 0 && e.Seq <= c.lastSeq {
			return broken("out of order after entry %d", c.lastSeq)
		}
	} else {
		if e.Seq != c.lastSeq+1 {
			return broken("sequence number follows %d (an entry is missing or inserted)", c.lastSeq)
		}
		if e.PrevHash != c.lastHash {
			return broken("prev_hash %s does not match the hash of entry %d (%s)", short(e.PrevHash), c.lastSeq, short(c.lastHash))
		}
	}
	switch {
	case e.SessionID != uuid.Nil:
		last, seen := c.sessionLast[e.SessionID]
		if c.Subset && !seen && c.n > 0 {
			return broken("entry of another session %s in a single-session chain", e.SessionID)
		}
		// last is "" for a session's first entry, which links to nothing.
		if e.SessionPrevHash != last {
			return broken("session_prev_hash %s does not match the previous entry of session %s (%s)", short(e.SessionPrevHash), e.SessionID, short(last))
		}
		c.sessionLast[e.SessionID] = e.Hash
	case c.Subset:
		return broken("entry outside any session in a single-session chain")
	case e.SessionPrevHash != "":
		return broken("entry outside any session has a session_prev_hash")
	}
	if got := e.ComputeHash(); got != e.Hash {
		return broken("hash %s does not match its content (recomputed %s): the entry was altered", short(e.Hash), short(got))
	}
	c.n++
	c.lastSeq = e.Seq
	c.lastHash = e.Hash
	return nil
}

// Count returns how many entries verified; Head the last hash.
func (c *Chain) Count() int64 { return c.n }

// Head returns the hash of the last entry added.
func (c *Chain) Head() string { return c.lastHash }

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	if h == "" {
		return "(none)"
	}
	return h
}

// Anchor is a stored RFC 3161 token over the head hash at Seq.
type Anchor struct {
	Seq   int64     `json:"seq"`
	Hash  string    `json:"hash"`
	At    time.Time `json:"at"`
	Token []byte    `json:"token"`
}

// VerifyAnchor checks that a's token covers a.Hash and returns its time.
func VerifyAnchor(a Anchor, verify TokenVerifier) (time.Time, error) {
	digest, err := hex.DecodeString(a.Hash)
	if err != nil || len(digest) != 32 {
		return time.Time{}, fmt.Errorf("anchor at %d: malformed hash %q", a.Seq, a.Hash)
	}
	t, err := verify(a.Token, digest)
	if err != nil {
		return time.Time{}, fmt.Errorf("anchor at %d: timestamp token does not verify: %w", a.Seq, err)
	}
	return t, nil
}

// Verify walks the whole journal from the first entry, and then checks every
// stored anchor against the chain and, when verify is not nil, its token.
func (j *Journal) Verify(ctx context.Context, verify TokenVerifier) (Report, error) {
	anchors, err := j.Anchors(ctx)
	if err != nil {
		return Report{}, err
	}
	want := map[int64]string{}
	for _, a := range anchors {
		want[a.Seq] = a.Hash
	}
	rows, err := j.db.QueryContext(ctx, `SELECT `+entryColumns+` FROM journal ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("journal: read: %w", err)
	}
	defer rows.Close()
	var c Chain
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return Report{}, &BrokenError{Seq: e.Seq, Reason: err.Error()}
		}
		if err := c.Add(e); err != nil {
			return Report{}, err
		}
		if h, ok := want[e.Seq]; ok && h != e.Hash {
			return Report{}, &BrokenError{Seq: e.Seq, Reason: "hash differs from the one timestamped at this entry: the journal was rewritten"}
		}
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("journal: read: %w", err)
	}
	headSeq, headHash, err := j.Head(ctx)
	if err != nil {
		return Report{}, err
	}
	if headSeq != c.lastSeq || headHash != c.lastHash {
		return Report{}, &BrokenError{Seq: headSeq, Reason: fmt.Sprintf("journal head (%d, %s) does not match the last entry (%d, %s): entries were removed from the end", headSeq, short(headHash), c.lastSeq, short(c.lastHash))}
	}
	rep := Report{Entries: c.n, Head: c.lastHash, Anchors: len(anchors)}
	for _, a := range anchors {
		if a.Seq > c.lastSeq {
			return Report{}, &BrokenError{Seq: a.Seq, Reason: "a timestamp anchor covers an entry that no longer exists: entries were removed"}
		}
		if verify == nil {
			continue
		}
		t, err := VerifyAnchor(a, verify)
		if err != nil {
			return Report{}, &BrokenError{Seq: a.Seq, Reason: err.Error()}
		}
		if t.After(rep.Latest) {
			rep.Latest = t
		}
	}
	return rep, nil
}

// Anchors returns every stored anchor in order.
func (j *Journal) Anchors(ctx context.Context) ([]Anchor, error) {
	return j.anchors(ctx, `SELECT seq, hash, at, token FROM journal_anchors ORDER BY seq`)
}

// AnchorsBetween returns the anchors with from <= seq <= to.
func (j *Journal) AnchorsBetween(ctx context.Context, from, to int64) ([]Anchor, error) {
	return j.anchors(ctx, `SELECT seq, hash, at, token FROM journal_anchors WHERE seq >= $1 AND seq <= $2 ORDER BY seq`, from, to)
}

func (j *Journal) anchors(ctx context.Context, q string, args ...any) ([]Anchor, error) {
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: anchors: %w", err)
	}
	defer rows.Close()
	var out []Anchor
	for rows.Next() {
		var (
			a     Anchor
			at    int64
			token string
		)
		if err := rows.Scan(&a.Seq, &a.Hash, &at, &token); err != nil {
			return nil, err
		}
		a.At = database.Time(at)
		if a.Token, err = base64.StdEncoding.DecodeString(token); err != nil {
			return nil, &BrokenError{Seq: a.Seq, Reason: "stored timestamp token is not base64"}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Anchor timestamps the current head and stores the token. It does nothing
// when the head is already anchored or the journal is empty. The network
// call to the authority happens outside any transaction.
func (j *Journal) Anchor(ctx context.Context) (Anchor, error) {
	if j.ts == nil {
		return Anchor{}, errors.New("journal: no timestamp authority configured")
	}
	seq, hash, err := j.Head(ctx)
	if err != nil || seq == 0 {
		return Anchor{}, err
	}
	var exists int
	err = j.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal_anchors WHERE seq = $1`, seq).Scan(&exists)
	if err != nil {
		return Anchor{}, fmt.Errorf("journal: anchors: %w", err)
	}
	if exists > 0 {
		return Anchor{Seq: seq, Hash: hash}, nil
	}
	digest, err := hex.DecodeString(hash)
	if err != nil {
		return Anchor{}, fmt.Errorf("journal: head hash %q: %w", hash, err)
	}
	token, err := j.ts.Timestamp(ctx, digest)
	if err != nil {
		return Anchor{}, fmt.Errorf("journal: timestamp head %d: %w", seq, err)
	}
	a := Anchor{Seq: seq, Hash: hash, At: j.now(), Token: token}
	_, err = j.db.ExecContext(ctx,
		`INSERT INTO journal_anchors (seq, hash, at, token) VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING`,
		a.Seq, a.Hash, database.Micros(a.At), base64.StdEncoding.EncodeToString(token))
	if err != nil {
		return Anchor{}, fmt.Errorf("journal: store anchor: %w", err)
	}
	j.log.Info("journal head timestamped", "seq", seq, "hash", hash)
	return a, nil
}

// RunAnchors timestamps the head every interval until ctx ends. Failures
// are logged and retried at the next tick; they never stop the loop.
func (j *Journal) RunAnchors(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := j.Anchor(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("journal anchor failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
