package journal_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/journal"
)

func sessionEntries(t *testing.T, j *journal.Journal, sid uuid.UUID, action string) []journal.Entry {
	t.Helper()
	entries, err := j.Session(context.Background(), sid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// TestAppendEventually: a record that cannot be appended because the
// database fails (PostgreSQL: backend terminated; SQLite: disk full) is
// kept on disk and appended once the database is back — by another
// process, too, after a restart — exactly once, with the time it happened.
func TestAppendEventually(t *testing.T) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db, fail := databasetest.Failing(t, engine)
			dir := t.TempDir()
			j := journal.New(journal.Config{DB: db})
			if err := j.UseOutbox(dir); err != nil {
				t.Fatal(err)
			}
			sid := uuid.New()
			rec := journal.Record{SessionID: sid, Actor: "participant:x", Action: "participant.left", Details: map[string]any{"name": "Mari Tamm"}}
			if err := fail(func() error { return j.AppendEventually(context.Background(), rec) }); err != nil {
				t.Fatalf("AppendEventually during the failure: %v", err)
			}
			if got := sessionEntries(t, j, sid, "participant.left"); len(got) != 0 {
				t.Fatalf("appended during the failure: %v", got)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			if len(files) != 1 {
				t.Fatalf("outbox holds %v", files)
			}
			kept, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}

			// A restarted process delivers what the last one kept.
			j2 := journal.New(journal.Config{DB: db})
			if err := j2.UseOutbox(dir); err != nil {
				t.Fatal(err)
			}
			if n, err := j2.DeliverDeferred(context.Background()); err != nil || n != 1 {
				t.Fatalf("DeliverDeferred = %d, %v", n, err)
			}
			got := sessionEntries(t, j2, sid, "participant.left")
			if len(got) != 1 {
				t.Fatalf("participant.left appended %d times", len(got))
			}
			var d map[string]any
			if err := json.Unmarshal(got[0].Details, &d); err != nil || d["name"] != "Mari Tamm" || d["occurred_at"] == nil {
				t.Fatalf("details %s", got[0].Details)
			}
			// A crash after the commit, before the file went: delivered
			// again, appended never.
			if err := os.WriteFile(files[0], kept, 0o600); err != nil {
				t.Fatal(err)
			}
			if n, err := j2.DeliverDeferred(context.Background()); err != nil || n != 0 {
				t.Fatalf("redelivery = %d, %v", n, err)
			}
			if got := sessionEntries(t, j2, sid, "participant.left"); len(got) != 1 {
				t.Fatalf("participant.left appended %d times after a redelivery", len(got))
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(left) != 0 {
				t.Fatalf("outbox after delivery: %v", left)
			}
			if res, err := j2.Verify(context.Background(), nil); err != nil {
				t.Fatalf("journal after deferred appends: %+v, %v", res, err)
			}
		})
	}
}
