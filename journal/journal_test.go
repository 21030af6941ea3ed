package journal_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/journal"
)

var discard = slog.New(slog.DiscardHandler)

func TestAppendAndVerify(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		j := journal.New(journal.Config{DB: db})
		s1, s2 := uuid.New(), uuid.New()
		for i, rec := range []journal.Record{
			{SessionID: s1, Actor: "staff:a", Action: "session.created", Details: map[string]any{"title": "Tamm v Kask", "n": 1}},
			{Actor: "system", Action: "staff.added", Details: map[string]string{"name": "Ada"}},
			{SessionID: s2, Actor: "staff:a", Action: "session.created"},
			{SessionID: s1, Actor: "participant:p", Action: "participant.joined", Details: struct {
				Z string `json:"z"`
				A string `json:"a"`
			}{"last", "first"}},
		} {
			e, err := j.Append(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != int64(i+1) {
				t.Fatalf("seq = %d, want %d", e.Seq, i+1)
			}
		}
		rep, err := j.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries != 4 {
			t.Fatalf("entries = %d", rep.Entries)
		}
		entries, err := j.Session(ctx, s1, 0, 0)
		if err != nil || len(entries) != 2 {
			t.Fatalf("session entries = %v, %v", entries, err)
		}
		if string(entries[1].Details) != `{"a":"first","z":"last"}` {
			t.Fatalf("details not canonical: %s", entries[1].Details)
		}
		// A session's entries verify on their own, as in an evidence bundle.
		c := journal.Chain{Subset: true}
		for _, e := range entries {
			if err := c.Add(e); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestTamperingIsDetected(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		seq     int64
		wantSeq int64
	}{
		{"details edited", `UPDATE journal SET details = '{"title":"forged"}' WHERE seq = 3`, 3, 3},
		{"actor edited", `UPDATE journal SET actor = 'staff:mallory' WHERE seq = 2`, 2, 2},
		{"time edited", `UPDATE journal SET at = at + 1 WHERE seq = 4`, 4, 4},
		{"row deleted", `DELETE FROM journal WHERE seq = 2`, 2, 3},
		{"tail deleted", `DELETE FROM journal WHERE seq = 5`, 5, 5},
		{"hash recomputed after edit still breaks the link", `UPDATE journal SET hash = 'ab' WHERE seq = 2`, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			databasetest.Each(t, func(t *testing.T, db *database.DB) {
				ctx := context.Background()
				j := journal.New(journal.Config{DB: db})
				s := uuid.New()
				for i := range 5 {
					if _, err := j.Append(ctx, journal.Record{SessionID: s, Actor: "system", Action: "test", Details: map[string]int{"i": i}}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.ExecContext(ctx, tt.sql); err != nil {
					t.Fatal(err)
				}
				_, err := j.Verify(ctx, nil)
				var broken *journal.BrokenError
				if !errors.As(err, &broken) || !errors.Is(err, journal.ErrBroken) {
					t.Fatalf("Verify after %q = %v, want a BrokenError", tt.sql, err)
				}
				if broken.Seq != tt.wantSeq {
					t.Fatalf("first broken entry = %d (%s), want %d", broken.Seq, broken.Reason, tt.wantSeq)
				}
			})
		})
	}
}

// 50 concurrent writers never fork the chain or skip a sequence number.
func TestConcurrentAppends(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		j := journal.New(journal.Config{DB: db})
		const writers, each = 50, 4
		sessions := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, err := j.Append(ctx, journal.Record{
						SessionID: sessions[(w+i)%len(sessions)],
						Actor:     fmt.Sprintf("participant:%d", w),
						Action:    "test.concurrent",
						Details:   map[string]int{"w": w, "i": i},
					})
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep, err := j.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries != writers*each {
			t.Fatalf("entries = %d, want %d", rep.Entries, writers*each)
		}
	})
}

// hmacTimestamper stands in for the RFC 3161 authority in this unit test;
// the real authority is exercised by pki's tests and the end-to-end test.
type hmacTimestamper struct{ key []byte }

func (h hmacTimestamper) Timestamp(_ context.Context, digest []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.key)
	m.Write(digest)
	return m.Sum(nil), nil
}

func (h hmacTimestamper) verify(token, digest []byte) (time.Time, error) {
	want, _ := h.Timestamp(context.Background(), digest)
	if !hmac.Equal(token, want) {
		return time.Time{}, errors.New("token does not match digest")
	}
	return time.Now(), nil
}

// Rewriting the whole table consistently is caught by the anchors.
func TestAnchorsDetectRewrite(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		ts := hmacTimestamper{key: []byte("k")}
		j := journal.New(journal.Config{DB: db, Timestamper: ts})
		s := uuid.New()
		for i := range 3 {
			if _, err := j.Append(ctx, journal.Record{SessionID: s, Actor: "system", Action: "test", Details: map[string]int{"i": i}}); err != nil {
				t.Fatal(err)
			}
		}
		a, err := j.Anchor(ctx)
		if err != nil || a.Seq != 3 {
			t.Fatalf("anchor = %+v, %v", a, err)
		}
		rep, err := j.Verify(ctx, ts.verify)
		if err != nil || rep.Anchors != 1 {
			t.Fatalf("verify = %+v, %v", rep, err)
		}
		// Forge entry 2 and recompute every hash after it, as an attacker
		// with write access to the table could.
		if _, err := db.ExecContext(ctx, `UPDATE journal SET details = '{"i":99}' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		entries, _ := j.Session(ctx, s, 0, 0)
		prev := entries[0].Hash
		for _, e := range entries[1:] {
			e.PrevHash, e.SessionPrevHash = prev, prev
			e.Hash = e.ComputeHash()
			if _, err := db.ExecContext(ctx, `UPDATE journal SET prev_hash = $1, session_prev_hash = $1, hash = $2 WHERE seq = $3`, e.PrevHash, e.Hash, e.Seq); err != nil {
				t.Fatal(err)
			}
			prev = e.Hash
		}
		if _, err := db.ExecContext(ctx, `UPDATE journal_head SET hash = $1`, prev); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE journal_session_head SET hash = $1`, prev); err != nil {
			t.Fatal(err)
		}
		_, err = j.Verify(ctx, ts.verify)
		var broken *journal.BrokenError
		if !errors.As(err, &broken) || broken.Seq != 3 {
			t.Fatalf("Verify of a consistently rewritten journal = %v, want broken at the anchored entry 3", err)
		}
	})
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   any
		want string
		bad  bool
	}{
		{in: nil, want: `{}`},
		{in: map[string]any{"b": 1.5, "a": []int{2, 1}}, want: `{"a":[2,1],"b":1.5}`},
		{in: []byte(`x`), bad: true},
		{in: []int{1}, bad: true},
		{in: json.RawMessage(`{"big": 12345678901234567890, "x": {"d":1,"c":2}}`), want: `{"big":12345678901234567890,"x":{"c":2,"d":1}}`},
	}
	for _, tt := range tests {
		got, err := journal.Canonical(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("Canonical(%v) succeeded", tt.in)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("Canonical(%v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestFenceRefusesTheAppendAndItsTransaction(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		j := journal.New(journal.Config{DB: db})
		mine, lost := uuid.New(), uuid.New()
		errLost := errors.New("lease lost")
		var checked []uuid.UUID
		j.SetFence(func(_ context.Context, _ *sql.Tx, sid uuid.UUID) error {
			checked = append(checked, sid)
			if sid == lost {
				return errLost
			}
			return nil
		})
		if _, err := j.Append(ctx, journal.Record{SessionID: mine, Actor: "system", Action: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(ctx, journal.Record{Actor: "system", Action: "no.session"}); err != nil {
			t.Fatal(err)
		}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE health_probe SET at = 42 WHERE id = 1`); err != nil {
				return err
			}
			_, err := j.AppendTx(ctx, tx, journal.Record{SessionID: lost, Actor: "system", Action: "b"})
			return err
		})
		if !errors.Is(err, errLost) {
			t.Fatalf("append for a lost session: %v, want the fence's error", err)
		}
		var at int64
		if err := db.QueryRowContext(ctx, `SELECT at FROM health_probe WHERE id = 1`).Scan(&at); err != nil || at == 42 {
			t.Fatalf("the refused change committed (at=%d, %v)", at, err)
		}
		rep, err := j.Verify(ctx, nil)
		if err != nil || rep.Entries != 2 {
			t.Fatalf("verify: %+v %v, want the 2 allowed entries", rep, err)
		}
		if len(checked) != 2 || checked[0] != mine || checked[1] != lost {
			t.Fatalf("fence consulted for %v, want only the session entries", checked)
		}
	})
}
