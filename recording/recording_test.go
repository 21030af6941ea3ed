package recording

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording/webm"
	"github.com/chamber-court/chamber/signaling/sfu"
)

var discard = slog.New(slog.DiscardHandler)

type allow struct{}

func (allow) MayRecord(uuid.UUID, uuid.UUID, string) bool { return true }
func (allow) ParticipantName(uuid.UUID, uuid.UUID) string { return "Mari Tamm" }

type notes struct{ types []string }

func (n *notes) Notify(_ uuid.UUID, _ []uuid.UUID, typ string, _ json.RawMessage) {
	n.types = append(n.types, typ)
}

func session(t *testing.T, db *database.DB) uuid.UUID {
	id := uuid.New()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, 'C', 'clerk', $1, 0)`, id.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, state, created_by, created_at) VALUES ($1, 'hearing', 'H', 'open', $1, 0)`, id.String()); err != nil {
		t.Fatal(err)
	}
	return id
}

// feed writes d of 20 ms Opus packets into a tap, after a sender report
// of the stream, as the media server hands a tap the latest it has.
func feed(t *testing.T, tap sfu.Tap, d time.Duration) {
	tap.(sfu.TapSenderReporter).SenderReport(sfu.SenderReport{SSRC: 7, NTPTime: 3_973_000_000 << 32, RTPTime: 0})
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 7}, Payload: []byte{0xfc, 0xff, 0xfe}}
	// Paced as a microphone sends: the recorder sees real time pass.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	for i := range int(d / (20 * time.Millisecond)) {
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
		if err := tap.WriteRTP(&p); err != nil {
			t.Fatal(err)
		}
		<-pace.C
	}
}

var opus = sfu.TrackInfo{TrackID: "mic", ParticipantID: uuid.New(), ParticipantName: "Mari Tamm", ConnectionID: uuid.New(), StreamID: "stream-1", Source: sfu.SourceMicrophone,
	Kind: webrtc.RTPCodecTypeAudio, Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}}

// TestStartStopAndRecover: a recording is started, fed, stopped and
// journalled; a copy of another recording's spool taken mid-recording —
// what a crash leaves — is stored and journalled by Recover at the next
// start. Both end up in the evidence catalog, and only there.
func TestStartStopAndRecover(t *testing.T) {
	db := databasetest.Open(t, database.SQLite)
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	jnl := journal.New(journal.Config{DB: db})
	spool := t.TempDir()
	c := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: spool, Retention: time.Hour})
	n := &notes{}
	c.SetNotifier(n)
	sid, crashedSID := session(t, db), session(t, db)
	ctx := context.Background()

	// A recording the process "crashes" in: its spool is copied while it
	// runs, then it ends without a Stop or anything recorded.
	if _, err := c.Start(ctx, crashedSID, "participant:judge"); err != nil {
		t.Fatal(err)
	}
	ctap, err := c.OpenTap(crashedSID, opus)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, ctap, 2500*time.Millisecond)
	crashed := t.TempDir()
	crashedID := *c.State(crashedSID).RecordingID
	copyDir(t, filepath.Join(spool, crashedID.String()), filepath.Join(crashed, crashedID.String()))
	c.mu.Lock()
	lost := c.active[crashedSID]
	delete(c.active, crashedSID)
	c.mu.Unlock()
	lost.Discard()
	n.types = nil

	if c.MayRecord(sid, opus.ParticipantID, sfu.SourceMicrophone) {
		t.Fatal("MayRecord before Start")
	}
	st, err := c.Start(ctx, sid, "participant:judge")
	if err != nil || !st.Recording {
		t.Fatalf("start: %+v %v", st, err)
	}
	if _, err := c.Start(ctx, sid, "participant:judge"); err != ErrRecording {
		t.Fatalf("second start: %v", err)
	}
	if !c.MayRecord(sid, opus.ParticipantID, sfu.SourceMicrophone) {
		t.Fatal("MayRecord false while recording")
	}
	tap, err := c.OpenTap(sid, opus)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, tap, 1000*time.Millisecond)
	c.ActiveSpeaker(sid, opus.ParticipantID, opus.TrackID)
	c.ActiveSpeaker(crashedSID, opus.ParticipantID, opus.TrackID) // not recording: nothing happens
	tap.Close()
	stopped, err := c.Stop(ctx, sid, "participant:judge")
	if err != nil || stopped.StoragePending || len(stopped.Files) != 1 || stopped.ManifestSHA256 == "" {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	if _, err := c.Stop(ctx, sid, "x"); err != ErrNotRecording {
		t.Fatalf("second stop: %v", err)
	}
	if !slices.Equal(n.types, []string{"recording", "recording", "recording"}) {
		t.Fatalf("notifications %v", n.types)
	}
	obj, err := store.Stat(ctx, stopped.ManifestKey)
	if err != nil || obj.SHA256 != stopped.ManifestSHA256 || obj.RetainUntil.IsZero() {
		t.Fatalf("manifest in store: %+v %v; want it under retention", obj, err)
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 0 {
		t.Fatalf("spool after a recorded stop: %v", entries)
	}
	// Who spoke is in the stored manifest.
	rc, err := store.Get(ctx, stopped.ManifestKey, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var stored webm.Manifest
	err = json.NewDecoder(rc).Decode(&stored)
	rc.Close()
	if err != nil || len(stored.Speakers) != 1 || stored.Speakers[0].ParticipantID == nil || *stored.Speakers[0].ParticipantID != opus.ParticipantID {
		t.Fatalf("stored manifest's speakers %+v (%v)", stored.Speakers, err)
	}

	// The next start recovers the crashed copy.
	c2 := New(Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: allow{}, SpoolDir: crashed, Retention: time.Hour})
	if err := c2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sid  uuid.UUID
		want []string
	}{
		{sid, []string{"recording.started", "recording.stopped"}},
		{crashedSID, []string{"recording.started", "recording.recovered"}},
	} {
		entries, err := jnl.Session(ctx, tc.sid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		if !slices.Equal(actions, tc.want) {
			t.Fatalf("journal %v, want %v", actions, tc.want)
		}
	}
	objs, err := store.List(ctx, "sessions/"+crashedSID.String()+"/recordings/")
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := catalog.Session(ctx, db, crashedSID)
	if err != nil || len(recorded) != len(objs) {
		t.Fatalf("recorded %v (%v); stored %v", recorded, err, objs)
	}
	var recovered bool
	for _, o := range objs {
		if strings.Contains(o.Key, ".recovered") && strings.HasSuffix(o.Key, ".webm") {
			recovered = true
			rc, _ := store.Get(ctx, o.Key, 0, 4)
			head, _ := io.ReadAll(rc)
			rc.Close()
			if string(head) != "\x1a\x45\xdf\xa3" {
				t.Fatalf("recovered file is not WebM: %x", head)
			}
		}
	}
	if !recovered {
		t.Fatalf("no recovered file among %v", objs)
	}
	if entries, _ := os.ReadDir(crashed); len(entries) != 0 {
		t.Fatalf("spool after recovery: %v", entries)
	}
}

func copyDir(t *testing.T, from, to string) {
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
