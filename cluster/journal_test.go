package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/journal"
)

// TestJournalIsOneChainAcrossThreeNodes appends concurrently from three
// nodes, each with its own connection pool and its own room, plus writes
// that belong to no room; a fourth writer that lost its room is refused
// throughout. The chain verifies and holds exactly the allowed entries.
func TestJournalIsOneChainAcrossThreeNodes(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	const perNode = 40
	type writer struct {
		n    *testNode
		j    *journal.Journal
		room uuid.UUID
	}
	var ws []writer
	for _, id := range []string{"a", "b", "c"} {
		own, err := database.Open(ctx, dsn, t.TempDir()) // a pool of its own, as a separate process has
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { own.Close() })
		n := newNode(t, own, dsn, id, Load{})
		j := journal.New(journal.Config{DB: own})
		j.SetFence(n.Fence)
		room := uuid.New()
		if _, _, err := n.Claim(ctx, room); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, writer{n, j, room})
	}
	// A stale writer: it held room a's lease once, a newer process holds it now.
	stale := newNode(t, db, dsn, "stale", Load{})
	staleJ := journal.New(journal.Config{DB: db})
	staleJ.SetFence(stale.Fence)
	stale.mu.Lock()
	stale.held[ws[0].room] = 0
	// Its Lost never finishes: it keeps believing it holds the room, as a
	// node that has not noticed yet does.
	stale.losing[ws[0].room] = true
	stale.mu.Unlock()

	var wg sync.WaitGroup
	errs := make(chan error, 4*perNode)
	for _, w := range ws {
		wg.Go(func() {
			for i := range perNode {
				rec := journal.Record{SessionID: w.room, Actor: "node:" + w.n.NodeID(), Action: "test.write", Details: map[string]int{"i": i}}
				if i%4 == 0 {
					rec.SessionID = uuid.Nil
				}
				if _, err := w.j.Append(ctx, rec); err != nil {
					errs <- fmt.Errorf("%s: %w", w.n.NodeID(), err)
				}
			}
		})
	}
	refused := 0
	var mu sync.Mutex
	wg.Go(func() {
		for i := range perNode {
			_, err := staleJ.Append(ctx, journal.Record{SessionID: ws[0].room, Actor: "node:stale", Action: "test.write", Details: map[string]int{"i": i}})
			if errors.Is(err, ErrFenced) {
				mu.Lock()
				refused++
				mu.Unlock()
				continue
			}
			errs <- fmt.Errorf("stale writer: %v, want ErrFenced", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if refused != perNode {
		t.Fatalf("%d stale writes refused, want %d", refused, perNode)
	}
	rep, err := ws[0].j.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 3*perNode {
		t.Fatalf("chain of %d entries, want %d", rep.Entries, 3*perNode)
	}
}
