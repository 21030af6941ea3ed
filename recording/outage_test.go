package recording

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/journal"
)

// states hands the recording states the room is told to a channel.
type states chan State

func (s states) Notify(_ uuid.UUID, _ []uuid.UUID, typ string, payload json.RawMessage) {
	var st State
	if typ == "recording" && json.Unmarshal(payload, &st) == nil {
		s <- st
	}
}

// await waits for a state the room is told that satisfies ok.
func (s states) await(t *testing.T, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case st := <-s:
			if ok(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("the room was never told: %s", what)
		}
	}
}

// actions lists a session's journal actions.
func actions(t *testing.T, jnl *journal.Journal, sid uuid.UUID) []string {
	t.Helper()
	entries, err := jnl.Session(context.Background(), sid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action)
	}
	return out
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// recordingRow is what the database says of a recording.
func recordingRow(t *testing.T, db *database.DB, id uuid.UUID) (stopped bool, manifest string) {
	t.Helper()
	var at *int64
	if err := db.DB.QueryRowContext(context.Background(), `SELECT stopped_at, manifest_key FROM recordings WHERE id = $1`, id.String()).Scan(&at, &manifest); err != nil {
		t.Fatal(err)
	}
	return at != nil, manifest
}

// crashRecording starts a recording, feeds it, and leaves its spool as a
// crash would (copied aside mid-recording, then the recording dropped
// with nothing recorded). It returns the copy's spool directory.
func crashRecording(t *testing.T, c *Controller, sid uuid.UUID) (spool string, recordingID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Start(ctx, sid, "participant:judge"); err != nil {
		t.Fatal(err)
	}
	tap, err := c.OpenTap(sid, opus)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, tap, 1500*time.Millisecond)
	recordingID = *c.State(sid).RecordingID
	spool = t.TempDir()
	copyDir(t, filepath.Join(c.cfg.SpoolDir, recordingID.String()), filepath.Join(spool, recordingID.String()))
	c.mu.Lock()
	rec := c.active[sid]
	delete(c.active, sid)
	c.mu.Unlock()
	rec.Discard()
	return spool, recordingID
}

// TestRecoverKeepsSpoolUntilRecorded: a recovery whose database
// transaction fails (PostgreSQL: backend terminated; SQLite: disk full)
// keeps the spool and records nothing; the next pass records the
// recording once, with its manifest, and only then removes the spool.
// Before, the spool was deleted first: the recording stayed stored with no
// recording.recovered entry, stopped_at NULL and an empty manifest, never
// retried.
func TestRecoverKeepsSpoolUntilRecorded(t *testing.T) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db, fail := databasetest.Failing(t, engine)
			store := evidenceLocal(t)
			jnl := journal.New(journal.Config{DB: db})
			sid := session(t, db)
			c := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: t.TempDir(), Retention: time.Hour})
			spool, rid := crashRecording(t, c, sid)

			after := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: spool, Retention: time.Hour})
			if err := fail(func() error { return after.Recover(context.Background()) }); err == nil {
				t.Fatal("recovery during the failure reported success")
			}
			if _, err := os.Stat(filepath.Join(spool, rid.String())); err != nil {
				t.Fatalf("spool gone before the recovery was recorded: %v", err)
			}
			if stopped, manifest := recordingRow(t, db, rid); stopped || manifest != "" {
				t.Fatalf("recording recorded during the failure: stopped %v, manifest %q", stopped, manifest)
			}
			if !after.State(sid).StoragePending {
				t.Fatal("the waiting recording is not shown as pending storage")
			}

			if err := after.Recover(context.Background()); err != nil {
				t.Fatalf("recovery after the failure: %v", err)
			}
			if stopped, manifest := recordingRow(t, db, rid); !stopped || manifest == "" {
				t.Fatalf("after recovery: stopped %v, manifest %q", stopped, manifest)
			}
			if got := count(actions(t, jnl, sid), "recording.recovered"); got != 1 {
				t.Fatalf("recording.recovered journalled %d times", got)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Fatalf("spool after the recorded recovery: %v", entries)
			}
			if after.State(sid).StoragePending {
				t.Fatal("still pending after the recovery was recorded")
			}
			// A further pass finds nothing to do.
			if err := after.Recover(context.Background()); err != nil || count(actions(t, jnl, sid), "recording.recovered") != 1 {
				t.Fatalf("second pass: %v, %v", err, actions(t, jnl, sid))
			}
		})
	}
}

// TestStopDuringDatabaseOutage: a Stop whose database transaction fails
// still stops the recording (the room is told; the state shows it pending
// storage); the stored manifest is recorded by the next recovery pass as
// recording.stopped, by whoever stopped it, without storing anything again.
func TestStopDuringDatabaseOutage(t *testing.T) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db, fail := databasetest.Failing(t, engine)
			store := evidenceLocal(t)
			jnl := journal.New(journal.Config{DB: db})
			sid := session(t, db)
			c := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: t.TempDir(), Retention: time.Hour})
			ctx := context.Background()
			if _, err := c.Start(ctx, sid, "participant:judge"); err != nil {
				t.Fatal(err)
			}
			tap, err := c.OpenTap(sid, opus)
			if err != nil {
				t.Fatal(err)
			}
			feed(t, tap, 1000*time.Millisecond)
			tap.Close()
			var out Stopped
			if err := fail(func() error { var err error; out, err = c.Stop(ctx, sid, "participant:clerk"); return err }); err != nil {
				t.Fatalf("stop during the outage: %v", err)
			}
			if out.Recording || !out.StoragePending || !c.State(sid).StoragePending {
				t.Fatalf("stop during the outage: %+v; want stopped, storage pending", out)
			}
			stored, err := store.List(ctx, prefix(sid))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Recover(ctx); err != nil {
				t.Fatalf("recovery after the outage: %v", err)
			}
			acts := actions(t, jnl, sid)
			if count(acts, "recording.stopped") != 1 || count(acts, "recording.recovered") != 0 {
				t.Fatalf("journal %v; want one recording.stopped", acts)
			}
			entries, _ := jnl.Session(ctx, sid, 0, 0)
			if last := entries[len(entries)-1]; last.Actor != "participant:clerk" {
				t.Fatalf("recorded by %q; want whoever stopped it", last.Actor)
			}
			again, err := store.List(ctx, prefix(sid))
			if err != nil || len(again) != len(stored) {
				t.Fatalf("recovery stored again: %d objects before, %d after (%v)", len(stored), len(again), err)
			}
			recorded, err := catalog.Session(ctx, db, sid)
			if err != nil || len(recorded) != len(again) {
				t.Fatalf("recorded %d of %d stored objects (%v)", len(recorded), len(again), err)
			}
			if c.State(sid).StoragePending {
				t.Fatal("still pending after it was recorded")
			}
		})
	}
}

// TestStopWhileStoreDown: with MinIO killed, stopping a recording (as
// closing a session does) succeeds and shows the recording pending
// storage; once MinIO is back, the running server stores and records it
// by itself, and tells the room — no restart needed.
func TestStopWhileStoreDown(t *testing.T) {
	m := testenv.StartMinIO(t, "")
	store, err := evidence.NewS3(t.Context(), evidence.S3Config{Endpoint: m.Endpoint, Bucket: "recordings", AccessKey: m.AccessKey,
		SecretKey: m.SecretKey, Insecure: true, OpTimeout: 2 * time.Second, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	db := databasetest.Open(t, database.Postgres)
	jnl := journal.New(journal.Config{DB: db})
	sid := session(t, db)
	c := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: t.TempDir(), Retention: time.Hour})
	room := make(states, 64)
	c.SetNotifier(room)
	ctx := context.Background()
	if _, err := c.Start(ctx, sid, "participant:judge"); err != nil {
		t.Fatal(err)
	}
	tap, err := c.OpenTap(sid, opus)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, tap, 1000*time.Millisecond)
	tap.Close()

	m.Kill()
	out, err := c.Stop(ctx, sid, "participant:clerk")
	if err != nil || out.Recording || !out.StoragePending {
		t.Fatalf("stop with the store down: %+v, %v", out, err)
	}
	room.await(t, "recording stopped, storage pending", func(st State) bool { return !st.Recording && st.StoragePending })
	if acts := actions(t, jnl, sid); count(acts, "recording.stopped")+count(acts, "recording.recovered") != 0 {
		t.Fatalf("journalled while nothing is stored: %v", acts)
	}

	bg, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.RunRecovery(bg, 100*time.Millisecond) }()
	defer func() { stop(); <-done }()
	m.Start()
	room.await(t, "recording stored", func(st State) bool { return !st.StoragePending })
	if acts := actions(t, jnl, sid); count(acts, "recording.stopped")+count(acts, "recording.recovered") != 1 {
		t.Fatalf("journal after the store came back: %v", acts)
	}
	recorded, err := catalog.Session(ctx, db, sid)
	if err != nil || len(recorded) < 2 {
		t.Fatalf("recorded %v, %v; want the file and the manifest", recorded, err)
	}
	for _, o := range recorded {
		obj, err := store.Stat(ctx, o.Key)
		if err != nil || obj.SHA256 != o.SHA256 || obj.RetainUntil.IsZero() {
			t.Fatalf("%s in the store: %+v, %v; want it retained with the recorded SHA-256", o.Key, obj, err)
		}
	}
}

func evidenceLocal(t *testing.T) evidence.Store {
	t.Helper()
	s, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
