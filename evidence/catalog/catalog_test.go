package catalog_test

import (
	"context"
	"database/sql"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/evidence/evidencetest"
	"github.com/chamber-court/chamber/journal"
)

var discard = slog.New(slog.DiscardHandler)

type fixture struct {
	db    *database.DB
	store evidence.Store
	jnl   *journal.Journal
	sid   uuid.UUID
}

func newFixture(t testing.TB, db *database.DB, store evidence.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	staff, sid := uuid.NewString(), uuid.New()
	if _, err := db.ExecContext(ctx, `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, 'Clerk', 'clerk', $2, 0)`, staff, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, state, created_by, created_at) VALUES ($1, 'hearing', 'H', 'open', $2, 0)`,
		sid.String(), staff); err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, store: store, jnl: journal.New(journal.Config{DB: db}), sid: sid}
}

func (fx *fixture) key(name string) string { return "sessions/" + fx.sid.String() + "/" + name }

func (fx *fixture) put(t testing.TB, name, body string) evidence.Object {
	t.Helper()
	obj, err := fx.store.Put(context.Background(), fx.key(name), strings.NewReader(body), evidence.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// record makes objects part of the record the way every writer does.
func (fx *fixture) record(t testing.TB, until time.Time, objs ...catalog.Object) {
	t.Helper()
	ctx := context.Background()
	err := fx.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := catalog.Add(ctx, tx, fx.sid, until, objs...); err != nil {
			return err
		}
		_, err := fx.jnl.AppendTx(ctx, tx, journal.Record{SessionID: fx.sid, Actor: "system", Action: "test.recorded",
			Details: map[string]any{"objects": objs}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) actions(t *testing.T, action string) []journal.Entry {
	t.Helper()
	entries, err := fx.jnl.Session(context.Background(), fx.sid, 0, 0)
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

func keys(objs []catalog.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	slices.Sort(out)
	return out
}

// TestReconcile: of the objects under a session, those the record names
// are left alone, as are writes still pending and objects younger than the
// grace period; an object named by a record older than the catalog is
// adopted; every other one is an orphan, journalled once as orphan.found —
// also when two reconcilers run at once — and a recorded object missing
// from the store is reported. Orphans stay out of the record.
func TestReconcile(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		fx := newFixture(t, db, evidencetest.Local(t))
		ctx := context.Background()
		doc := fx.put(t, "documents/a/v1.pdf", "recorded")
		fx.record(t, time.Time{}, catalog.Of(catalog.Upload, doc))
		fx.record(t, time.Time{}, catalog.Object{Key: fx.key("documents/gone/v1.pdf"), Kind: catalog.Upload, Size: 1, SHA256: strings.Repeat("0", 64)})
		failed := fx.put(t, "documents/b/v1.pdf", "an upload whose transaction failed")
		signed := fx.put(t, "documents/a/v2-abcdefghij.pdf", "a signature whose transaction failed")
		running := fx.put(t, "recordings/r1/p-001.webm", "a file of a running recording")
		legacy := fx.put(t, "journal/sealed-7.json", "an archive journalled before the catalog")
		if _, err := fx.jnl.Append(ctx, journal.Record{SessionID: fx.sid, Actor: "system", Action: "act.journal_archived",
			Details: map[string]any{"key": legacy.Key, "sha256": legacy.SHA256}}); err != nil {
			t.Fatal(err)
		}
		pending := func(_ context.Context, sid uuid.UUID) ([]string, error) {
			return []string{"sessions/" + sid.String() + "/recordings/r1/"}, nil
		}

		// Within the grace period nothing is an orphan yet.
		young := catalog.New(catalog.Config{DB: db, Store: fx.store, Journal: fx.jnl, Logger: discard, Pending: []func(context.Context, uuid.UUID) ([]string, error){pending}})
		rep, err := young.Reconcile(ctx)
		if err != nil || len(rep.Orphans) != 0 || rep.Pending != 4 {
			t.Fatalf("within the grace period: %+v, %v", rep, err)
		}

		c := catalog.New(catalog.Config{DB: db, Store: fx.store, Journal: fx.jnl, Logger: discard, Grace: time.Nanosecond,
			Pending: []func(context.Context, uuid.UUID) ([]string, error){pending}})
		var (
			wg      sync.WaitGroup
			reports [2]catalog.Report
			errs    [2]error
		)
		for i := range reports {
			wg.Go(func() { reports[i], errs[i] = c.Reconcile(ctx) })
		}
		wg.Wait()
		var orphans []catalog.Object
		for i := range reports {
			if errs[i] != nil {
				t.Fatalf("reconcile %d: %v", i, errs[i])
			}
			orphans = append(orphans, reports[i].Orphans...)
		}
		if got, want := keys(orphans), slices.Sorted(slices.Values([]string{failed.Key, signed.Key})); !slices.Equal(got, want) {
			t.Fatalf("orphans found %v; want %v", got, want)
		}
		if found := fx.actions(t, "orphan.found"); len(found) != 2 {
			t.Fatalf("orphan.found journalled %d times; want once per orphan", len(found))
		}
		if adopted := fx.actions(t, "evidence.adopted"); len(adopted) != 1 || !strings.Contains(string(adopted[0].Details), legacy.Key) {
			t.Fatalf("evidence.adopted entries %v; want the legacy archive once", adopted)
		}
		missing := append(reports[0].Missing, reports[1].Missing...)
		if len(missing) == 0 || missing[0] != fx.key("documents/gone/v1.pdf") {
			t.Fatalf("missing %v", missing)
		}

		again, err := c.Reconcile(ctx)
		if err != nil || len(again.Orphans) != 0 || len(again.Adopted) != 0 || again.KnownOrphans != 2 || again.Pending != 1 {
			t.Fatalf("second pass: %+v, %v", again, err)
		}
		if found := fx.actions(t, "orphan.found"); len(found) != 2 {
			t.Fatalf("orphan.found journalled again: %d", len(found))
		}
		rec, err := catalog.Session(ctx, db, fx.sid)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keys(rec), []string{doc.Key, fx.key("documents/gone/v1.pdf"), legacy.Key}; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Fatalf("the record holds %v; want %v (no orphan, no pending write)", got, want)
		}
		_ = running
	})
}

// TestApplyRetention: an object recorded while the store could not take
// its retention is protected by the next pass, and marked so.
func TestApplyRetention(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		fx := newFixture(t, db, evidencetest.Local(t))
		ctx := context.Background()
		obj := fx.put(t, "documents/a/v1.pdf", "recorded")
		until := time.Now().Add(time.Hour)
		fx.record(t, until, catalog.Of(catalog.Upload, obj))
		if got, _ := fx.store.Stat(ctx, obj.Key); !got.RetainUntil.IsZero() {
			t.Fatalf("retained before anything applied it: %v", got.RetainUntil)
		}
		c := catalog.New(catalog.Config{DB: db, Store: fx.store, Journal: fx.jnl, Logger: discard})
		n, err := c.ApplyRetention(ctx)
		if err != nil || n != 1 {
			t.Fatalf("ApplyRetention = %d, %v", n, err)
		}
		got, err := fx.store.Stat(ctx, obj.Key)
		if err != nil || got.RetainUntil.Before(until.Truncate(time.Second)) {
			t.Fatalf("retention %v, %v; want until %v", got.RetainUntil, err, until)
		}
		if err := fx.store.Delete(ctx, obj.Key); err == nil {
			t.Fatal("a recorded object was deleted")
		}
		if n, err := c.ApplyRetention(ctx); err != nil || n != 0 {
			t.Fatalf("second pass applied %d, %v", n, err)
		}
	})
}
