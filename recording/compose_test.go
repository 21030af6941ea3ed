package recording

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording/webm"
)

// willPDF is a one-page PDF the tests present.
const willPDF = "../documents/pades/testdata/libreoffice-will.pdf"

// fakeDocuments serves one document of one session, version 1.
type fakeDocuments struct {
	session, doc uuid.UUID
	pdf          []byte
}

func (d fakeDocuments) Presented(_ context.Context, sessionID, documentID uuid.UUID, _ time.Time) (io.ReadCloser, PresentedVersion, error) {
	if sessionID != d.session || documentID != d.doc {
		return nil, PresentedVersion{}, errors.New("no such document")
	}
	return io.NopCloser(bytes.NewReader(d.pdf)), PresentedVersion{Version: 1, SHA256: sha256Hex(d.pdf), ContentType: "application/pdf"}, nil
}

// fixture is a controller over SQLite and a local store, with a session.
type fixture struct {
	c     *Controller
	db    *database.DB
	store evidence.Store
	jnl   *journal.Journal
	sid   uuid.UUID
	logs  *logLines
}

func newFixture(t *testing.T, cfg CompositeConfig, wrap func(evidence.Store) evidence.Store) *fixture {
	t.Helper()
	db := databasetest.Open(t, database.SQLite)
	local, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	var store evidence.Store = local
	if wrap != nil {
		store = wrap(local)
	}
	jnl := journal.New(journal.Config{DB: db})
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	logs := &logLines{}
	c := New(Config{DB: db, Journal: jnl, Store: store, Logger: slog.New(logs), Scope: allow{}, SpoolDir: t.TempDir(),
		Retention: time.Hour, Composite: cfg})
	return &fixture{c: c, db: db, store: store, jnl: jnl, sid: session(t, db), logs: logs}
}

// logLines keeps the messages logged at Warn and above, with their
// attributes.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
func (l *logLines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(m string) bool { return strings.Contains(m, s) })
}

// mediaFile makes a WebM with ffmpeg: a picture of source, a tone, d long.
func mediaFile(t *testing.T, source string, tone int, d time.Duration) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.webm")
	cmd := exec.Command(testenv.Command(t, "ffmpeg"), "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", source,
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", tone), "-t", secs(d),
		"-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k", "-c:a", "libopus", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorded stores files as a stopped recording of the fixture's session
// from start to stop and records it as Stop would; it returns the
// manifest.
func (f *fixture) recorded(t *testing.T, start, stop time.Time, files []webm.File, data [][]byte) webm.Manifest {
	t.Helper()
	ctx := context.Background()
	rid := uuid.Must(uuid.NewV7())
	m := webm.Manifest{Version: 2, SessionID: f.sid, RecordingID: rid, StartedAt: start, StoppedAt: stop, StoppedBy: "participant:judge",
		Speakers: []webm.SpeakerChange{}}
	for i, file := range files {
		file.Key = prefix(f.sid) + rid.String() + fmt.Sprintf("/%s-%03d.webm", file.ParticipantID, i+1)
		file.ContentType = "video/webm"
		obj, err := f.store.Put(ctx, file.Key, bytes.NewReader(data[i]), evidence.PutOptions{ContentType: file.ContentType})
		if err != nil {
			t.Fatal(err)
		}
		file.Size, file.SHA256 = obj.Size, obj.SHA256
		m.Files = append(m.Files, file)
	}
	b, _ := json.Marshal(m)
	obj, err := f.store.Put(ctx, prefix(f.sid)+rid.String()+"/manifest.json", bytes.NewReader(b), evidence.PutOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	m.Stored = webm.Object{Key: obj.Key, Size: obj.Size, SHA256: obj.SHA256}
	if _, err := f.db.ExecContext(ctx, `INSERT INTO recordings (id, session_id, started_by, started_at) VALUES ($1, $2, 'participant:judge', $3)`,
		rid.String(), f.sid.String(), database.Micros(start)); err != nil {
		t.Fatal(err)
	}
	if err := f.c.commit(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// entry waits for the session's journal entry of action.
func (f *fixture) entry(t *testing.T, action string, timeout time.Duration) journal.Entry {
	t.Helper()
	var found journal.Entry
	ok := wait.WithinEvery(timeout, 50*time.Millisecond, func() bool {
		entries, err := f.jnl.Session(context.Background(), f.sid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Action == action {
				found = e
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no %s in the journal after %v; log:\n%s", action, timeout, f.logs)
	}
	return found
}

// colour samples the mean luma and red-difference of region r of the
// composite's frame at at.
func colour(t *testing.T, path string, at time.Duration, r rect) (y, v float64) {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffmpeg"), "-v", "error", "-ss", secs(at), "-i", path, "-frames:v", "1",
		"-vf", fmt.Sprintf("crop=%d:%d:%d:%d,signalstats,metadata=print:file=-", r.W, r.H, r.X, r.Y), "-f", "null", "-").Output()
	if err != nil {
		t.Fatalf("sampling %s at %v: %v", path, at, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "lavfi.signalstats.YAVG="); ok {
			y, _ = strconv.ParseFloat(s, 64)
		}
		if s, ok := strings.CutPrefix(line, "lavfi.signalstats.VAVG="); ok {
			v, _ = strconv.ParseFloat(s, 64)
		}
	}
	return y, v
}

// TestComposite: a recording of two people, the second arriving 1.5 s in,
// while a page was presented from 2 s on, is composed after it is
// recorded: stored, catalogued as derived, journalled with its SHA-256,
// the SHA-256 of every original and the document version it shows, the
// ffmpeg version and the command; the picture shows each person in their
// cell from their own start and the page from when the journal says it
// was shown; the sound is there.
func TestComposite(t *testing.T) {
	testenv.Command(t, "ffmpeg")
	testenv.Command(t, "pdftoppm")
	pdf, err := os.ReadFile(willPDF)
	if err != nil {
		t.Fatal(err)
	}
	docID := uuid.New()
	// A relative work directory, as a relative --data-dir gives (a first
	// start with no configuration): the slides' list must still resolve.
	t.Chdir(t.TempDir())
	if err := os.Mkdir("tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, CompositeConfig{TempDir: "tmp"}, nil)
	f.c.composites.cfg.Documents = fakeDocuments{session: f.sid, doc: docID, pdf: pdf}
	ctx := context.Background()

	shown, err := f.jnl.Append(ctx, journal.Record{SessionID: f.sid, Actor: "participant:judge", Action: "document.presented",
		Details: map[string]any{"document_id": docID, "page": 1}})
	if err != nil {
		t.Fatal(err)
	}
	start := shown.At.Add(-2 * time.Second)
	stop := start.Add(4 * time.Second)
	alice, bob := uuid.New(), uuid.New()
	av := func(w, h int) []webm.Track {
		return []webm.Track{{Number: 1, Kind: "audio", Codec: "opus"}, {Number: 2, Kind: "video", Codec: "vp8", Width: w, Height: h}}
	}
	m := f.recorded(t, start, stop, []webm.File{
		{ParticipantID: alice, ParticipantName: "Alice", StreamID: "a", StartOffsetMs: 0, DurationMs: 4000, Tracks: av(640, 480)},
		{ParticipantID: bob, ParticipantName: "Bob", StreamID: "b", StartOffsetMs: 1500, DurationMs: 2000, Tracks: av(320, 240)},
	}, [][]byte{
		mediaFile(t, "testsrc=size=640x480:rate=15", 440, 4*time.Second),
		mediaFile(t, "color=c=red:size=320x240:rate=15", 880, 2*time.Second),
	})
	if st := f.state(t, m.RecordingID); st.State != CompositePending {
		t.Errorf("composite %+v before the job ran, want pending", st)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.c.RunComposites(runCtx) }()
	defer func() { cancel(); <-done }()
	e := f.entry(t, "recording.composite_stored", 3*time.Minute)

	var d struct {
		RecordingID uuid.UUID        `json:"recording_id"`
		Key         string           `json:"key"`
		SHA256      string           `json:"sha256"`
		Size        int64            `json:"size"`
		DerivedFrom []derivation     `json:"derived_from"`
		Pages       []pageShown      `json:"pages"`
		FFmpeg      string           `json:"ffmpeg"`
		PDFToPPM    string           `json:"pdftoppm"`
		Command     []string         `json:"command"`
		FilterGraph string           `json:"filter_graph"`
		Objects     []catalog.Object `json:"objects"`
	}
	if err := json.Unmarshal(e.Details, &d); err != nil {
		t.Fatal(err)
	}
	if e.Actor != "system" || d.RecordingID != m.RecordingID || !strings.HasPrefix(d.Key, prefix(f.sid)+m.RecordingID.String()+"/composite-") {
		t.Errorf("entry %s", e.Details)
	}
	// The derivation: the manifest and both files, with the SHA-256s the
	// record holds for them.
	want := []derivation{{Key: m.Stored.Key, Kind: catalog.RecordingManifest, SHA256: m.Stored.SHA256, Size: m.Stored.Size}}
	for i, file := range m.Files {
		want = append(want, derivation{Key: file.Key, Kind: catalog.RecordingFile, SHA256: file.SHA256, Size: file.Size, Input: fmt.Sprintf("in-%03d.webm", i)})
	}
	if !slices.Equal(d.DerivedFrom, want) {
		t.Errorf("derived from %+v\nwant %+v", d.DerivedFrom, want)
	}
	if len(d.Pages) != 1 || d.Pages[0].DocumentID != docID || d.Pages[0].Version != 1 || d.Pages[0].SHA256 != sha256Hex(pdf) ||
		d.Pages[0].Page != 1 || !d.Pages[0].Rendered || d.Pages[0].FromMs != 2000 || d.Pages[0].ToMs != 4000 {
		t.Errorf("pages %+v", d.Pages)
	}
	if !strings.HasPrefix(d.FFmpeg, "ffmpeg version ") || !strings.HasPrefix(d.PDFToPPM, "pdftoppm version ") {
		t.Errorf("versions %q, %q", d.FFmpeg, d.PDFToPPM)
	}
	cmd := strings.Join(d.Command, " ")
	if !strings.Contains(cmd, "-i in-000.webm") || !strings.Contains(cmd, "-i slides.ffconcat") || strings.Contains(cmd, os.TempDir()) ||
		!slices.Contains(d.Command, d.FilterGraph) || !strings.Contains(d.FilterGraph, "overlay") {
		t.Errorf("command %q", cmd)
	}
	// Stored, with the SHA-256 the journal gives, and part of the record
	// as derived evidence.
	// Retention is applied just after the commit that journalled it.
	var obj evidence.Object
	wait.Within(10*time.Second, func() bool {
		obj, err = evidence.Verify(ctx, f.store, d.Key)
		return err == nil && !obj.RetainUntil.IsZero()
	})
	if err != nil || obj.SHA256 != d.SHA256 || obj.Size != d.Size || obj.RetainUntil.IsZero() {
		t.Fatalf("stored composite %+v (%v), journal says %s %d; want it retained", obj, err, d.SHA256, d.Size)
	}
	if rec, ok, err := catalog.Lookup(ctx, f.db, f.sid, d.Key); err != nil || !ok || rec.Kind != catalog.RecordingComposite || rec.SHA256 != d.SHA256 ||
		!slices.Equal(d.Objects, []catalog.Object{rec}) {
		t.Errorf("catalog %+v %v %v; journal objects %+v", rec, ok, err, d.Objects)
	}
	if st := f.state(t, m.RecordingID); st.State != CompositeStored || st.Name != filepath.Base(d.Key) || st.SHA256 != d.SHA256 {
		t.Errorf("composite state %+v", st)
	}

	// The picture and the sound.
	path := filepath.Join(t.TempDir(), "composite.webm")
	data, _ := io.ReadAll(must(f.store.Get(ctx, d.Key, 0, -1)))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := probeFile(t, path)
	if p.codecs != "vp8,opus" || p.width != compositeW || p.height != compositeH || p.duration < 3800*time.Millisecond || p.duration > 4200*time.Millisecond {
		t.Errorf("composite %+v", p)
	}
	page := rect{200, 100, 400, 400}
	aliceCell := rect{852 + 150, 100, 100, 100}
	bobCell := rect{852 + 150, 480, 100, 100}
	bgY, _ := colour(t, path, 500*time.Millisecond, rect{300, 300, 50, 50})
	for _, c := range []struct {
		what string
		at   time.Duration
		r    rect
		test func(y, v float64) bool
	}{
		{"no page before it was shown", 1500 * time.Millisecond, page, func(y, _ float64) bool { return y < bgY+10 }},
		{"the page once shown", 3 * time.Second, page, func(y, _ float64) bool { return y > 200 }},
		{"alice from the start", 500 * time.Millisecond, aliceCell, func(y, _ float64) bool { return y > bgY+20 || y < bgY-20 }},
		{"bob not before his start", time.Second, bobCell, func(y, v float64) bool { return y < bgY+10 && v < 140 }},
		{"bob, red, from 1.5 s", 2500 * time.Millisecond, bobCell, func(_, v float64) bool { return v > 200 }},
		{"bob gone when his file ends", 3800 * time.Millisecond, bobCell, func(_, v float64) bool { return v < 140 }},
	} {
		y, v := colour(t, path, c.at, c.r)
		t.Logf("%s: Y %.0f V %.0f (bg %.0f)", c.what, y, v, bgY)
		if !c.test(y, v) {
			t.Errorf("%s: at %v region %v has Y %.0f V %.0f (background Y %.0f)", c.what, c.at, c.r, y, v, bgY)
		}
	}
	if n := audioSamples(t, path); n < 48000*3 {
		t.Errorf("composite has %d audio samples", n)
	}
}

func (f *fixture) state(t *testing.T, rid uuid.UUID) Composite {
	t.Helper()
	list, err := f.c.Recordings(context.Background(), f.sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID == rid {
			return r.Composite
		}
	}
	t.Fatalf("recording %s not listed", rid)
	return Composite{}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type probed struct {
	codecs        string
	width, height int
	duration      time.Duration
}

func probeFile(t *testing.T, path string) probed {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffprobe"), "-v", "error", "-of", "json",
		"-show_entries", "format=duration:stream=codec_name,width,height", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var r probed
	var names []string
	for _, s := range p.Streams {
		names = append(names, s.CodecName)
		if s.Width > 0 {
			r.width, r.height = s.Width, s.Height
		}
	}
	r.codecs = strings.Join(names, ",")
	sec, _ := strconv.ParseFloat(p.Format.Duration, 64)
	r.duration = time.Duration(sec * float64(time.Second))
	return r
}

// audioSamples decodes the audio and counts its samples that are not silent.
func audioSamples(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffmpeg"), "-v", "error", "-i", path, "-map", "0:a", "-ac", "1", "-ar", "48000",
		"-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("decoding audio: %v", err)
	}
	n := 0
	for i := 0; i+1 < len(out); i += 2 {
		if s := int16(uint16(out[i]) | uint16(out[i+1])<<8); s > 300 || s < -300 {
			n++
		}
	}
	return n
}

// alteringStore returns other bytes than it stored for one key.
type alteringStore struct {
	evidence.Store
	key string
}

func (s alteringStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, key, off, n)
	if err != nil || key != s.key {
		return rc, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	b[len(b)/2] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), nil
}

// TestCompositeChecksOriginals: an original whose bytes in the store are
// not those the record holds is not composed: nothing is stored or
// journalled, and the composite shows as failed.
func TestCompositeChecksOriginals(t *testing.T) {
	testenv.Command(t, "ffmpeg")
	var altered *alteringStore
	f := newFixture(t, CompositeConfig{Retry: time.Hour}, func(s evidence.Store) evidence.Store {
		altered = &alteringStore{Store: s}
		return altered
	})
	start := time.Now().UTC().Truncate(time.Microsecond)
	p := uuid.New()
	data := mediaFile(t, "testsrc=size=320x240:rate=15", 440, time.Second)
	key := prefix(f.sid)
	m := f.recorded(t, start, start.Add(time.Second), []webm.File{{ParticipantID: p, StreamID: "a", DurationMs: 1000,
		Tracks: []webm.Track{{Kind: "audio"}, {Kind: "video", Width: 320, Height: 240}}}}, [][]byte{data})
	altered.key = m.Files[0].Key
	if !strings.HasPrefix(altered.key, key) {
		t.Fatalf("key %s", altered.key)
	}
	job := compositeJob{sessionID: f.sid, recordingID: m.RecordingID}
	err := f.c.compose(context.Background(), job)
	if !errors.Is(err, evidence.ErrCorrupt) {
		t.Fatalf("compose over an altered original: %v", err)
	}
	f.c.composites.done(job, err)
	if st := f.state(t, m.RecordingID); st.State != CompositeFailed {
		t.Errorf("state %+v, want failed", st)
	}
	objs, _ := f.store.List(context.Background(), key+m.RecordingID.String()+"/composite")
	entries, _ := f.jnl.Session(context.Background(), f.sid, 0, 0)
	if len(objs) != 0 || slices.ContainsFunc(entries, func(e journal.Entry) bool { return e.Action == "recording.composite_stored" }) {
		t.Errorf("stored %v; journal %v", objs, entries)
	}
}

// TestCompositeWithoutFFmpeg: a server without ffmpeg records as ever; the
// composite is skipped with a log line that says why, and shows as not
// available.
func TestCompositeWithoutFFmpeg(t *testing.T) {
	f := newFixture(t, CompositeConfig{FFmpeg: "off"}, nil)
	start := time.Now().UTC().Truncate(time.Microsecond)
	m := f.recorded(t, start, start.Add(time.Second), []webm.File{{ParticipantID: uuid.New(), StreamID: "a", DurationMs: 1000}}, [][]byte{[]byte("webm")})
	done := make(chan struct{})
	go func() { defer close(done); f.c.RunComposites(context.Background()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunComposites without ffmpeg did not return")
	}
	if st := f.state(t, m.RecordingID); st.State != CompositeUnavailable {
		t.Errorf("state %+v, want unavailable", st)
	}
	if !f.logs.has("composite skipped: ffmpeg not found") || !f.logs.has("ffmpeg not found: recordings are not composed") {
		t.Errorf("log:\n%s", f.logs)
	}
	entries, _ := f.jnl.Session(context.Background(), f.sid, 0, 0)
	if len(entries) != 1 || entries[0].Action != "recording.stopped" {
		t.Errorf("journal %v", entries)
	}
}

// TestCompositeNeverBlocks: while a composite takes long (an ffmpeg that
// never finishes), recordings still stop and are recorded at once, and
// the job is killed at its deadline; stopping the job runner kills the one
// under way.
func TestCompositeNeverBlocks(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "ffmpeg")
	// It becomes a sleep whose command line names this test's run.
	marker := fmt.Sprintf("sleep 599.%09d", time.Now().Nanosecond())
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n# an ffmpeg that never finishes\nexec "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var deadline time.Duration = time.Hour
	var mu sync.Mutex
	f := newFixture(t, CompositeConfig{FFmpeg: fake, Retry: time.Hour, Deadline: func(time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return deadline
	}}, nil)
	start := time.Now().UTC().Truncate(time.Microsecond)
	data := []byte("not media: the fake ffmpeg never reads it")
	file := webm.File{ParticipantID: uuid.New(), StreamID: "a", DurationMs: 1000}
	first := f.recorded(t, start, start.Add(time.Second), []webm.File{file}, [][]byte{data})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.c.RunComposites(ctx) }()
	// The first job is under way (its ffmpeg sleeps); a recording
	// stops and is recorded meanwhile.
	waitFor(t, func() bool { return len(processesOf(t, marker)) > 0 })
	ctx2 := context.Background()
	if _, err := f.c.Start(ctx2, f.sid, "participant:judge"); err != nil {
		t.Fatal(err)
	}
	tap, err := f.c.OpenTap(f.sid, opus)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, tap, 500*time.Millisecond)
	tap.Close()
	stopped := make(chan error, 1)
	go func() {
		out, err := f.c.Stop(ctx2, f.sid, "participant:judge")
		if err == nil && out.StoragePending {
			err = errors.New("storage pending")
		}
		stopped <- err
	}()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop waited for the composite job")
	}
	if st := f.state(t, first.RecordingID); st.State != CompositePending {
		t.Errorf("first composite %+v while its job runs", st)
	}
	// Stopping the runner kills the job under way.
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("RunComposites did not return")
	}
	if ps := processesOf(t, marker); len(ps) != 0 {
		t.Errorf("ffmpeg left running: %v", ps)
	}

	// At its deadline a job is killed and fails.
	mu.Lock()
	deadline = 300 * time.Millisecond
	mu.Unlock()
	t0 := time.Now()
	err = f.c.compose(context.Background(), compositeJob{sessionID: f.sid, recordingID: first.RecordingID})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 15*time.Second {
		t.Errorf("compose past its deadline: %v after %v", err, time.Since(t0))
	}
	if ps := processesOf(t, marker); len(ps) != 0 {
		t.Errorf("ffmpeg left running past its deadline: %v", ps)
	}
}

// processesOf lists the processes whose command line contains program.
func processesOf(t *testing.T, program string) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && bytes.Contains(bytes.ReplaceAll(b, []byte{0}, []byte(" ")), []byte(program)) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	wait.For(t, 20*time.Second, "a condition", cond)
}
