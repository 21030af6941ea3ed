package acts_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

var discard = slog.New(slog.DiscardHandler)

func newService(t *testing.T, db *database.DB) *acts.Service {
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	return acts.New(acts.Config{DB: db, Journal: journal.New(journal.Config{DB: db}), Store: store, Logger: discard,
		Principals: func(context.Context, uuid.UUID) ([]acts.Principal, error) { return nil, nil }})
}

// notarisedActs creates n notarial sessions whose acts are notarised.
func notarisedActs(t *testing.T, db *database.DB, n int) []uuid.UUID {
	ctx := context.Background()
	staff := uuid.NewString()
	if _, err := db.ExecContext(ctx, `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, 'N', 'notary', $2, 0)`, staff, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
		if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, act_type, state, created_by, created_at) VALUES ($1, 'notarisation', 'Act', 'will', 'open', $2, 0)`,
			ids[i].String(), staff); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO acts (session_id, state) VALUES ($1, 'notarised')`, ids[i].String()); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestConcurrentSealingNumbers: concurrent seals get sequential numbers
// with no gap and no duplicate, and refused seals consume none.
func TestConcurrentSealingNumbers(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		const n = 24
		svc := newService(t, db)
		ids := notarisedActs(t, db, n)
		// A few acts that are not ready: their seal is refused in the
		// same rush and must not burn a number.
		notReady := notarisedActs(t, db, 4)
		for _, id := range notReady {
			if _, err := db.ExecContext(context.Background(), `UPDATE acts SET state = 'identity_verified' WHERE session_id = $1`, id.String()); err != nil {
				t.Fatal(err)
			}
		}
		c := acts.Caller{Actor: "participant:notary", Name: "Notary", Role: access.Notary}
		var (
			mu      sync.Mutex
			numbers []string
			wg      sync.WaitGroup
		)
		for _, id := range append(slices.Clone(ids), notReady...) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				act, _, err := svc.Seal(context.Background(), c, id, acts.SealInput{ActType: "will", Title: "Act", Notary: "Notary"})
				if slices.Contains(notReady, id) {
					if !errors.Is(err, fault.Conflict) {
						t.Errorf("sealing an act that is not notarised: %v", err)
					}
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				numbers = append(numbers, act.Number)
				mu.Unlock()
			}()
		}
		wg.Wait()
		slices.Sort(numbers)
		year := time.Now().Year()
		for i, got := range numbers {
			if want := fmt.Sprintf("%04d/%06d", year, i+1); got != want {
				t.Fatalf("numbers %v: position %d is %s, want %s", numbers, i, got, want)
			}
		}
		if len(numbers) != n {
			t.Fatalf("%d numbers for %d acts", len(numbers), n)
		}
		// Sealing twice is refused and the register has one entry per act.
		if _, _, err := svc.Seal(context.Background(), c, ids[0], acts.SealInput{}); !errors.Is(err, fault.Conflict) {
			t.Fatalf("second seal: %v", err)
		}
		reg, err := svc.Register(context.Background(), acts.RegisterFilter{})
		if err != nil || len(reg) != n {
			t.Fatalf("register: %d entries, %v", len(reg), err)
		}
	})
}
