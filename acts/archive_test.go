package acts_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
)

var notary = acts.Caller{Actor: "participant:notary", Name: "Notary", Role: access.Notary}

// archiveFixture is an act service over a local store whose directory the
// test can break.
func archiveFixture(t *testing.T, db *database.DB) (*acts.Service, *journal.Journal, evidence.Store, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := evidence.NewLocal(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	jnl := journal.New(journal.Config{DB: db})
	svc := acts.New(acts.Config{DB: db, Journal: jnl, Store: store, Logger: discard, Retention: time.Hour,
		Principals: func(context.Context, uuid.UUID) ([]acts.Principal, error) { return nil, nil }})
	return svc, jnl, store, dir
}

func archived(t *testing.T, jnl *journal.Journal, sid uuid.UUID) []journal.Entry {
	t.Helper()
	entries, err := jnl.Session(context.Background(), sid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for _, e := range entries {
		if e.Action == "act.journal_archived" {
			out = append(out, e)
		}
	}
	return out
}

// wantArchived checks that the act's journal archive is recorded once,
// in the catalog and under retention.
func wantArchived(t *testing.T, db *database.DB, jnl *journal.Journal, store evidence.Store, sid uuid.UUID) {
	t.Helper()
	if got := archived(t, jnl, sid); len(got) != 1 {
		t.Fatalf("act.journal_archived journalled %d times; want once", len(got))
	}
	rec, err := catalog.Session(context.Background(), db, sid)
	if err != nil || len(rec) != 1 || rec[0].Kind != catalog.JournalArchive {
		t.Fatalf("recorded %v, %v; want the archive", rec, err)
	}
	obj, err := store.Stat(context.Background(), rec[0].Key)
	if err != nil || obj.SHA256 != rec[0].SHA256 || obj.RetainUntil.IsZero() {
		t.Fatalf("the archive in the store: %+v, %v", obj, err)
	}
}

// TestArchiveOwedAfterSeal: when the sealed act's journal cannot be stored
// right after the seal commits (as after a crash there), the act is sealed
// and the archive owed; ArchivePending stores and records it, once. Before,
// nothing ever retried it.
func TestArchiveOwedAfterSeal(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		svc, jnl, store, dir := archiveFixture(t, db)
		sid := notarisedActs(t, db, 1)[0]
		// A file where the session's journal folder goes: the store
		// refuses the archive.
		blocker := filepath.Join(dir, "sessions", sid.String(), "journal")
		if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blocker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		act, _, err := svc.Seal(context.Background(), notary, sid, acts.SealInput{ActType: "will", Title: "Act", Notary: "Notary"})
		if err != nil || act.State != acts.Sealed {
			t.Fatalf("seal: %+v, %v", act, err)
		}
		if got := archived(t, jnl, sid); len(got) != 0 {
			t.Fatalf("archive journalled though it was not stored: %v", got)
		}
		if n, err := svc.ArchivePending(context.Background()); err == nil || n != 0 {
			t.Fatalf("ArchivePending with the store still refusing: %d, %v", n, err)
		}
		os.Remove(blocker)
		if n, err := svc.ArchivePending(context.Background()); err != nil || n != 1 {
			t.Fatalf("ArchivePending: %d, %v", n, err)
		}
		wantArchived(t, db, jnl, store, sid)
		if n, err := svc.ArchivePending(context.Background()); err != nil || n != 0 {
			t.Fatalf("second ArchivePending: %d, %v", n, err)
		}
		wantArchived(t, db, jnl, store, sid)
	})
}

// TestArchiveStoredNotRecorded: an archive stored whose recording
// transaction fails (PostgreSQL: backend terminated; SQLite: disk full)
// — the store holds it, nothing records it — is recorded by the next pass
// with the very object stored (same key, same bytes), once. Before, the
// archive stayed in the store without its act.journal_archived entry.
func TestArchiveStoredNotRecorded(t *testing.T) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db, fail := databasetest.Failing(t, engine)
			svc, jnl, store, _ := archiveFixture(t, db)
			sid := notarisedActs(t, db, 1)[0]
			// Sealed with the archive owed, as a crash right after the
			// seal's commit leaves it.
			if _, err := db.ExecContext(context.Background(), `UPDATE acts SET state = 'sealed', number = '2026/000001' WHERE session_id = $1`, sid.String()); err != nil {
				t.Fatal(err)
			}
			if _, err := jnl.Append(context.Background(), journal.Record{SessionID: sid, Actor: notary.Actor, Action: "act.sealed"}); err != nil {
				t.Fatal(err)
			}
			err := fail(func() error { _, err := svc.ArchivePending(context.Background()); return err })
			if err == nil {
				t.Fatal("archiving during the failure reported success")
			}
			stored, err := store.List(context.Background(), "sessions/"+sid.String()+"/journal/")
			if err != nil || len(stored) != 1 {
				t.Fatalf("stored during the failure: %v, %v; want the archive", stored, err)
			}
			if got := archived(t, jnl, sid); len(got) != 0 {
				t.Fatalf("journalled during the failure: %v", got)
			}
			if n, err := svc.ArchivePending(context.Background()); err != nil || n != 1 {
				t.Fatalf("ArchivePending: %d, %v", n, err)
			}
			wantArchived(t, db, jnl, store, sid)
			if rec, _ := catalog.Session(context.Background(), db, sid); rec[0].Key != stored[0].Key {
				t.Fatalf("recorded %s; want the object stored before, %s", rec[0].Key, stored[0].Key)
			}
		})
	}
}
