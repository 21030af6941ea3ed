package cluster

import (
	"context"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/journal"
)

// BenchmarkJournalAppend is the price of fencing: one session entry
// appended on PostgreSQL without a fence (a single node) and with the
// lease check of a home node.
func BenchmarkJournalAppend(b *testing.B) {
	dsn := testenv.PostgresDB(b)
	ctx := context.Background()
	db, err := database.Open(ctx, dsn, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{DB: db, DSN: dsn, NodeID: "a", PublicURL: "http://a"})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Register(ctx); err != nil {
		b.Fatal(err)
	}
	room := uuid.New()
	if _, _, err := c.Claim(ctx, room); err != nil {
		b.Fatal(err)
	}
	for _, fenced := range []bool{false, true} {
		name := "unfenced"
		if fenced {
			name = "fenced"
		}
		b.Run(name, func(b *testing.B) {
			j := journal.New(journal.Config{DB: db})
			if fenced {
				j.SetFence(c.Fence)
			}
			for b.Loop() {
				if _, err := j.Append(ctx, journal.Record{SessionID: room, Actor: "system", Action: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClaim is a signalling connection's lease renewal at its home.
func BenchmarkClaim(b *testing.B) {
	dsn := testenv.PostgresDB(b)
	ctx := context.Background()
	db, err := database.Open(ctx, dsn, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{DB: db, DSN: dsn, NodeID: "a", PublicURL: "http://a"})
	if err != nil {
		b.Fatal(err)
	}
	room := uuid.New()
	for b.Loop() {
		if _, _, err := c.Claim(ctx, room); err != nil {
			b.Fatal(err)
		}
	}
}
