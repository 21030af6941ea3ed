package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// The composite: after a recording is stopped and recorded, a background
// job composes its files into one WebM — the grid of speakers, the pages
// that were presented, everyone's sound — with ffmpeg (layout.go). It is
// derived evidence: stored in the evidence store, catalogued with the kind
// derived_composite, and journalled (recording.composite_stored) with its
// SHA-256, the SHA-256 of every original it was made from, the versions of
// ffmpeg and pdftoppm and the exact command and filter graph, so anyone
// can make it again from the originals and compare. The originals stay
// the evidence.
//
// The job never holds up a stop or a seal: it runs after the recording is
// recorded, one at a time, at the lowest CPU priority (nice 19, one
// thread), with a deadline. Without ffmpeg there is no composite, the log
// says so, and the playback page shows "composite not available".

var metricComposites = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "chamber_recording_composites_total",
	Help: "Recording composites by outcome: stored, failed, or skipped (ffmpeg missing).",
}, []string{"result"})

// Composite states, as the playback page shows them.
const (
	CompositeStored      = "stored"      // made, stored and recorded
	CompositePending     = "pending"     // queued or being made
	CompositeFailed      = "failed"      // the last attempt failed; see the log
	CompositeUnavailable = "unavailable" // this server has no ffmpeg
	CompositeNone        = "none"        // not made (a recording older than the job)
)

// Composite is the state of a recording's composite.
type Composite struct {
	State  string `json:"state"`
	Name   string `json:"name,omitempty"` // served under …/recordings/{id}/files/{name}
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Documents gives the composite the pages that were presented.
type Documents interface {
	// Presented opens the version of a session's document that was shown
	// at time at: the newest version created by then.
	Presented(ctx context.Context, sessionID, documentID uuid.UUID, at time.Time) (io.ReadCloser, PresentedVersion, error)
}

// PresentedVersion is the document version a presentation showed.
type PresentedVersion struct {
	Version     int
	SHA256      string
	ContentType string
}

// CompositeConfig configures the composite job.
type CompositeConfig struct {
	// FFmpeg and PDFToPPM are the programs' paths; empty looks them up on
	// PATH. "off" disables the composite (or the pages).
	FFmpeg, PDFToPPM string
	// TempDir holds the job's copies of the files while it runs.
	TempDir string
	// Documents opens presented documents; nil leaves the pages out.
	Documents Documents
	// Deadline is how long one composite may take, given the recording's
	// length (default 15 min + twice the length).
	Deadline func(length time.Duration) time.Duration
	// Backfill: at start, recordings stopped this long ago or less that
	// have no composite are composed (default 72 h; negative: none).
	Backfill time.Duration
	// Retry is how long a failed composite waits before its next attempt
	// (default 5 min); it gets three.
	Retry time.Duration
}

const compositeAttempts = 3

// composer queues and runs composite jobs, one at a time.
type composer struct {
	cfg      CompositeConfig
	log      *slog.Logger
	ffmpeg   string // "" when there is none
	pdftoppm string
	nice     string // the nice program, if any

	mu       sync.Mutex
	queue    []compositeJob
	states   map[uuid.UUID]*jobState
	wake     chan struct{}
	warnOnce sync.Once
}

type compositeJob struct{ sessionID, recordingID uuid.UUID }

type jobState struct {
	state    string // pending or failed
	attempts int
}

func newComposer(cfg CompositeConfig, log *slog.Logger) *composer {
	if cfg.Deadline == nil {
		cfg.Deadline = func(d time.Duration) time.Duration { return 15*time.Minute + 2*d }
	}
	if cfg.Backfill == 0 {
		cfg.Backfill = 72 * time.Hour
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Minute
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	c := &composer{cfg: cfg, log: log, states: map[uuid.UUID]*jobState{}, wake: make(chan struct{}, 1)}
	c.ffmpeg = lookProgram(cfg.FFmpeg, "ffmpeg")
	c.pdftoppm = lookProgram(cfg.PDFToPPM, "pdftoppm")
	c.nice = lookProgram("", "nice")
	return c
}

// lookProgram resolves a configured program: a path, "off", or "" for the
// one on PATH. It returns "" when there is none.
func lookProgram(configured, name string) string {
	if configured == "off" {
		return ""
	}
	if configured == "" {
		configured = name
	}
	p, err := exec.LookPath(configured)
	if err != nil {
		return ""
	}
	return p
}

// available reports whether composites can be made here.
func (c *composer) available() bool { return c.ffmpeg != "" }

// enqueue queues a recording's composite; it never blocks.
func (c *composer) enqueue(job compositeJob) {
	if !c.available() {
		metricComposites.WithLabelValues("skipped").Inc()
		c.log.Warn("composite skipped: ffmpeg not found (install ffmpeg to have recordings composed)", "recording", job.recordingID)
		return
	}
	c.mu.Lock()
	st := c.states[job.recordingID]
	if st != nil && st.state == CompositePending {
		c.mu.Unlock()
		return
	}
	if st == nil {
		st = &jobState{}
		c.states[job.recordingID] = st
	}
	st.state = CompositePending
	c.queue = append(c.queue, job)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes the next job, if any.
func (c *composer) next() (compositeJob, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return compositeJob{}, false
	}
	j := c.queue[0]
	c.queue = c.queue[1:]
	return j, true
}

// done records a job's outcome: a stored composite is the catalog's to
// tell; a failure is tried again later, a few times.
func (c *composer) done(job compositeJob, err error) (retry bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[job.recordingID]
	if err == nil {
		delete(c.states, job.recordingID)
		return false
	}
	st.attempts++
	st.state = CompositeFailed
	return st.attempts < compositeAttempts
}

// state tells a recording's composite state; objs is its session's record.
func (c *composer) state(recordingID uuid.UUID, objs []catalog.Object) Composite {
	for _, o := range objs {
		if o.Kind == catalog.RecordingComposite && strings.Contains(o.Key, "/recordings/"+recordingID.String()+"/") {
			return Composite{State: CompositeStored, Name: fileName(o.Key), Size: o.Size, SHA256: o.SHA256}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.states[recordingID]; st != nil {
		return Composite{State: st.state}
	}
	if !c.available() {
		return Composite{State: CompositeUnavailable}
	}
	return Composite{State: CompositeNone}
}

// RunComposites makes the composites of recordings as they are recorded,
// one at a time, until ctx ends (a job under way is cancelled: its
// recording is composed again at the next start). First it queues the
// recordings of the last CompositeConfig.Backfill that have none.
func (c *Controller) RunComposites(ctx context.Context) {
	if !c.composites.available() {
		c.log.Warn("ffmpeg not found: recordings are not composed (the originals are unaffected)")
		return
	}
	if err := c.backfill(ctx); err != nil {
		c.log.Warn("looking for recordings without a composite", "err", err)
	}
	for {
		job, ok := c.composites.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-c.composites.wake:
				continue
			}
		}
		err := c.compose(ctx, job)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			metricComposites.WithLabelValues("failed").Inc()
			c.log.Error("making a recording's composite", "recording", job.recordingID, "err", err)
		}
		if c.composites.done(job, err) {
			time.AfterFunc(c.composites.cfg.Retry, func() {
				if ctx.Err() == nil {
					c.composites.enqueue(job)
				}
			})
		}
	}
}

// backfill queues the recent recordings that have no composite.
func (c *Controller) backfill(ctx context.Context) error {
	if c.composites.cfg.Backfill < 0 {
		return nil
	}
	since := database.Micros(database.Now().Add(-c.composites.cfg.Backfill))
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT r.id, r.session_id FROM recordings r
		WHERE r.manifest_key <> '' AND r.stopped_at >= $1 AND NOT EXISTS (
			SELECT 1 FROM evidence_objects o WHERE o.session_id = r.session_id AND o.kind = $2
			AND o.object_key LIKE 'sessions/' || r.session_id || '/recordings/' || r.id || '/%')
		ORDER BY r.stopped_at`, since, catalog.RecordingComposite)
	if err != nil {
		return err
	}
	var jobs []compositeJob
	for rows.Next() {
		var rid, sid string
		if err := rows.Scan(&rid, &sid); err != nil {
			rows.Close()
			return err
		}
		r, err1 := uuid.Parse(rid)
		s, err2 := uuid.Parse(sid)
		if err1 == nil && err2 == nil {
			jobs = append(jobs, compositeJob{sessionID: s, recordingID: r})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, j := range jobs {
		c.composites.enqueue(j)
	}
	return nil
}

// compose makes, stores and records one recording's composite.
func (c *Controller) compose(ctx context.Context, job compositeJob) error {
	rec, err := c.Recording(ctx, job.sessionID, job.recordingID)
	if err != nil {
		return err
	}
	if rec.Composite.State == CompositeStored {
		return nil
	}
	m := rec.Manifest.Manifest
	length := m.StoppedAt.Sub(m.StartedAt)
	ctx, cancel := context.WithTimeout(ctx, c.composites.cfg.Deadline(length))
	defer cancel()
	work, err := os.MkdirTemp(c.composites.cfg.TempDir, "composite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// ffmpeg reads the files an ffconcat list names relative to the list's
	// own directory: under a relative work directory (a relative
	// --data-dir, as on a first start with no configuration) every slide
	// would be looked for under the work directory twice over.
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	start := time.Now()

	inputs, derived, err := c.fetchOriginals(ctx, job.sessionID, rec, work)
	if err != nil {
		return err
	}
	slides, pages, err := c.renderSlides(ctx, job.sessionID, m, work)
	if err != nil {
		return err
	}
	out := filepath.Join(work, "composite.webm")
	plan, err := planComposite(inputs, slides, length, out)
	if err != nil {
		return err
	}
	if err := c.composites.run(ctx, plan.Args); err != nil {
		return fmt.Errorf("ffmpeg: %w", err)
	}
	key := prefix(job.sessionID) + job.recordingID.String() + "/composite-" + uuid.Must(uuid.NewV7()).String() + ".webm"
	obj, err := storeFile(ctx, c.cfg.Store, key, out, "video/webm")
	if err != nil {
		return err
	}
	cobj := catalog.Of(catalog.RecordingComposite, obj)
	details := map[string]any{
		"recording_id": job.recordingID, "key": obj.Key, "sha256": obj.SHA256, "size": obj.Size, "content_type": "video/webm",
		"duration_ms": length.Milliseconds(), "derived_from": derived, "pages": pages,
		"ffmpeg": c.composites.version(ctx, c.composites.ffmpeg, "-version"), "command": redact(plan.Args, work),
		"filter_graph": plan.FilterGraph, "objects": []catalog.Object{cobj},
	}
	if len(pages) > 0 {
		details["pdftoppm"] = c.composites.version(ctx, c.composites.pdftoppm, "-v")
	}
	var until time.Time
	if c.cfg.Retention > 0 {
		until = database.Now().Add(c.cfg.Retention)
	}
	err = c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := catalog.Add(ctx, tx, job.sessionID, until, cobj); err != nil {
			return err
		}
		_, err := c.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: job.sessionID, Actor: "system",
			Action: "recording.composite_stored", Details: details})
		return err
	})
	if err != nil {
		return fmt.Errorf("recording: record the composite %s: %w", key, err)
	}
	c.catalog.Retain(ctx, key)
	metricComposites.WithLabelValues("stored").Inc()
	c.log.Info("recording composite stored", "recording", job.recordingID, "key", key, "sha256", obj.SHA256,
		"length", length.Round(time.Second), "took", time.Since(start).Round(time.Second))
	return nil
}

// derivation names an original a composite was made from.
type derivation struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Input  string `json:"input,omitempty"` // its name in the command
}

// fetchOriginals copies the recording's files from the store into work,
// checking each against the record as it is read.
func (c *Controller) fetchOriginals(ctx context.Context, sessionID uuid.UUID, rec Recorded, work string) ([]compositeInput, []derivation, error) {
	m := rec.Manifest.Manifest
	derived := []derivation{{Key: rec.manifestObject.Key, Kind: catalog.RecordingManifest, SHA256: rec.manifestObject.SHA256, Size: rec.manifestObject.Size}}
	var inputs []compositeInput
	for i, f := range m.Files {
		obj, ok, err := catalog.Lookup(ctx, c.cfg.DB, sessionID, f.Key)
		if err != nil {
			return nil, nil, database.Classify(err)
		}
		if !ok || obj.SHA256 != f.SHA256 || obj.Kind != catalog.RecordingFile {
			return nil, nil, fmt.Errorf("%w: %s is not the recorded file the manifest names", evidence.ErrCorrupt, f.Key)
		}
		path := filepath.Join(work, fmt.Sprintf("in-%03d%s", i, filepath.Ext(f.Key)))
		if err := copyVerified(ctx, c.cfg.Store, obj, path); err != nil {
			return nil, nil, err
		}
		inputs = append(inputs, compositeInput{File: f, Path: path})
		derived = append(derived, derivation{Key: f.Key, Kind: catalog.RecordingFile, SHA256: f.SHA256, Size: f.Size, Input: filepath.Base(path)})
	}
	return inputs, derived, nil
}

// copyVerified copies a catalogued object to path and checks its size and
// SHA-256 against the catalog.
func copyVerified(ctx context.Context, store evidence.Store, obj catalog.Object, path string) error {
	rc, err := store.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recording: copy %s: %w", obj.Key, err)
	}
	if n != obj.Size || hex.EncodeToString(h.Sum(nil)) != obj.SHA256 {
		return fmt.Errorf("%w: %s read back as %d bytes, recorded %d", evidence.ErrCorrupt, obj.Key, n, obj.Size)
	}
	return nil
}

// storeFile streams a local file into the store and checks that the store
// kept what was read.
func storeFile(ctx context.Context, store evidence.Store, key, path, contentType string) (evidence.Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return evidence.Object{}, err
	}
	defer f.Close()
	h := sha256.New()
	obj, err := store.Put(ctx, key, io.TeeReader(f, h), evidence.PutOptions{ContentType: contentType})
	if err != nil {
		return evidence.Object{}, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); obj.SHA256 != sum {
		return evidence.Object{}, fmt.Errorf("%w: %s stored as %s, read %s", evidence.ErrCorrupt, key, obj.SHA256, sum)
	}
	return obj, nil
}

// redact replaces the job's temporary paths in a command with the names
// the journal entry gives its inputs, so the command reads the same
// wherever it ran.
func redact(args []string, work string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.HasPrefix(a, work+string(filepath.Separator)) {
			out[i] = filepath.Base(a)
		}
	}
	return out
}

// run runs ffmpeg with args at the lowest priority, killed at ctx's end.
func (c *composer) run(ctx context.Context, args []string) error {
	return c.runProgram(ctx, c.ffmpeg, args...)
}

// runProgram runs a program at the lowest CPU priority (nice 19) and
// returns its error with the end of what it wrote to stderr.
func (c *composer) runProgram(ctx context.Context, program string, args ...string) error {
	name := program
	if c.nice != "" {
		args = append([]string{"-n", "19", program}, args...)
		name = c.nice
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	if c.nice == "" {
		lowerPriority(cmd.Process.Pid)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", filepath.Base(program), ctx.Err())
		}
		return fmt.Errorf("%s: %w: %s", filepath.Base(program), err, bytes.TrimSpace(stderr.b))
	}
	return nil
}

// version returns the first line a program prints about its version.
func (c *composer) version(ctx context.Context, program, flag string) string {
	if program == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, program, flag).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// errNoPages is returned by a Documents that cannot show a document.
var errNoPages = errors.New("recording: document cannot be shown")

// presentation is a journal entry of a document shown to the main room.
type presentation struct {
	At       time.Time
	Document *uuid.UUID `json:"document_id"`
	Page     int        `json:"page"`
}

// presentations reads from the session's journal what was shown to the
// main room up to to: each document.presented entry (a null document ends
// the presentation), and the session's close.
func (c *Controller) presentations(ctx context.Context, sessionID uuid.UUID, to time.Time) ([]presentation, error) {
	entries, err := c.cfg.Journal.Session(ctx, sessionID, 0, 0)
	if err != nil {
		return nil, err
	}
	var out []presentation
	for _, e := range entries {
		if e.At.After(to) {
			break
		}
		switch e.Action {
		case "document.presented":
			p := presentation{At: e.At}
			if err := json.Unmarshal(e.Details, &p); err != nil {
				continue
			}
			out = append(out, p)
		case "session.closed":
			out = append(out, presentation{At: e.At})
		}
	}
	return out, nil
}

// DocumentsOf gives the composite a document service's presented pages.
func DocumentsOf(s *documents.Service) Documents { return serviceDocuments{s} }

type serviceDocuments struct{ s *documents.Service }

// Presented opens the newest version of a session's document created by
// at. A document of another session is not found.
func (d serviceDocuments) Presented(ctx context.Context, sessionID, documentID uuid.UUID, at time.Time) (io.ReadCloser, PresentedVersion, error) {
	doc, err := d.s.Get(ctx, documentID)
	if err != nil {
		return nil, PresentedVersion{}, err
	}
	if doc.SessionID != sessionID {
		return nil, PresentedVersion{}, fmt.Errorf("document %s: %w", documentID, fault.NotFound)
	}
	shown := 0
	for _, v := range doc.Versions {
		if !v.CreatedAt.After(at) && v.Version > shown {
			shown = v.Version
		}
	}
	if shown == 0 {
		return nil, PresentedVersion{}, fmt.Errorf("document %s had no version at %s: %w", documentID, at, fault.NotFound)
	}
	rd, v, err := d.s.Open(ctx, doc, shown)
	if err != nil {
		return nil, PresentedVersion{}, err
	}
	return rd, PresentedVersion{Version: v.Version, SHA256: v.SHA256, ContentType: doc.ContentType}, nil
}
