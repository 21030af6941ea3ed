// Package recording starts and stops a session's recording: it taps the
// media server's tracks while the session layer says they may be recorded
// (the main room only), writes them through recording/webm into the
// evidence store, and journals the start, the stop and the manifest with
// every file's SHA-256.
package recording

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording/webm"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// Errors callers tell apart.
var (
	ErrRecording    = fault.New(fault.Conflict, "recording is already running")
	ErrNotRecording = fault.New(fault.Conflict, "no recording is running")
)

// State is what everyone in a session is told about its recording.
type State struct {
	Recording   bool       `json:"recording"`
	RecordingID *uuid.UUID `json:"recording_id,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
}

// Stopped describes a finished recording.
type Stopped struct {
	State
	ManifestKey    string      `json:"manifest_key"`
	ManifestSHA256 string      `json:"manifest_sha256"`
	Files          []webm.File `json:"files"`
}

// Policy says whose media belongs in the recording: the session layer's
// MayRecord (the main room only).
type Policy interface {
	MayRecord(sessionID, participantID uuid.UUID, source string) bool
}

// EventRecording is the event telling a session's participants that its
// recording started or stopped; it carries a State.
const EventRecording = "recording"

// Notifier tells a session's participants that recording started or
// stopped, and makes the media server re-evaluate which tracks to tap.
type Notifier interface {
	Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage)
}

// Config configures a Controller.
type Config struct {
	DB        *database.DB
	Journal   *journal.Journal
	Store     evidence.Store
	Log       *slog.Logger
	Policy    Policy
	SpoolDir  string
	Retention time.Duration
}

// Controller runs the recordings of all sessions. It implements the
// signalling server's Recorder hook.
type Controller struct {
	cfg      Config
	mu       sync.Mutex
	active   map[uuid.UUID]*webm.Recording
	notifier Notifier
}

// New returns a controller.
func New(cfg Config) *Controller {
	return &Controller{cfg: cfg, active: map[uuid.UUID]*webm.Recording{}}
}

// SetNotifier plugs in the signalling server (built after the controller).
func (c *Controller) SetNotifier(n Notifier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notifier = n
}

func (c *Controller) notify(sessionID uuid.UUID, st State) {
	c.mu.Lock()
	n := c.notifier
	c.mu.Unlock()
	if n != nil {
		b, _ := json.Marshal(st)
		n.Notify(sessionID, nil, EventRecording, b)
	}
}

// State reports whether a session is being recorded.
func (c *Controller) State(sessionID uuid.UUID) State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return stateOf(c.active[sessionID])
}

func stateOf(r *webm.Recording) State {
	if r == nil {
		return State{}
	}
	id, at := r.ID(), r.StartedAt().UTC()
	return State{Recording: true, RecordingID: &id, StartedAt: &at}
}

// sink stores recorder files in the evidence store under retention.
type sink struct {
	store     evidence.Store
	retention time.Duration
}

func (s sink) Put(ctx context.Context, key string, r io.Reader, contentType string) (int64, string, error) {
	opts := evidence.PutOptions{ContentType: contentType}
	if s.retention > 0 {
		opts.RetainUntil = time.Now().Add(s.retention)
	}
	obj, err := s.store.Put(ctx, key, r, opts)
	if err != nil {
		return 0, "", err
	}
	return obj.Size, obj.SHA256, nil
}

func (c *Controller) sink() webm.Sink { return sink{c.cfg.Store, c.cfg.Retention} }

func prefix(sessionID uuid.UUID) string { return "sessions/" + sessionID.String() + "/recordings/" }

// Start begins recording a session. Everyone connected is told at once;
// the media server then taps every main-room track.
func (c *Controller) Start(ctx context.Context, sessionID uuid.UUID, actor string) (State, error) {
	c.mu.Lock()
	if c.active[sessionID] != nil {
		c.mu.Unlock()
		return State{}, ErrRecording
	}
	rec, err := webm.Start(context.WithoutCancel(ctx), webm.Config{
		Sink: c.sink(), SessionID: sessionID, Prefix: prefix(sessionID), SpoolDir: c.cfg.SpoolDir, Logger: c.cfg.Log,
	})
	if err != nil {
		c.mu.Unlock()
		return State{}, fmt.Errorf("recording: start: %w", err)
	}
	c.active[sessionID] = rec
	c.mu.Unlock()
	st := stateOf(rec)
	if err := c.journalled(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO recordings (id, session_id, started_by, started_at) VALUES ($1, $2, $3, $4)`,
			rec.ID().String(), sessionID.String(), actor, database.Micros(rec.StartedAt()))
		return err
	}, journal.Record{SessionID: sessionID, Actor: actor, Action: "recording.started",
		Details: map[string]any{"recording_id": rec.ID(), "started_at": rec.StartedAt().UTC()}}); err != nil {
		c.mu.Lock()
		delete(c.active, sessionID)
		c.mu.Unlock()
		rec.Stop(context.WithoutCancel(ctx))
		return State{}, err
	}
	c.notify(sessionID, st)
	return st, nil
}

// Stop ends a session's recording: the taps close, the files are completed
// and stored, and the manifest with every file's SHA-256 is journalled.
func (c *Controller) Stop(ctx context.Context, sessionID uuid.UUID, actor string) (Stopped, error) {
	c.mu.Lock()
	rec := c.active[sessionID]
	delete(c.active, sessionID)
	c.mu.Unlock()
	if rec == nil {
		return Stopped{}, ErrNotRecording
	}
	// Telling the room first makes the media server close the taps.
	c.notify(sessionID, State{})
	m, err := rec.Stop(ctx)
	out := Stopped{State: stateOf(rec), ManifestKey: m.Stored.Key, ManifestSHA256: m.Stored.SHA256, Files: m.Files}
	out.Recording = false
	details := map[string]any{"recording_id": rec.ID(), "manifest_key": m.Stored.Key, "manifest_sha256": m.Stored.SHA256,
		"files": fileSummaries(m.Files), "stopped_at": m.StoppedAt}
	if err != nil {
		// The spool stays on disk; Recover stores it at the next start.
		details["error"] = err.Error()
	}
	jerr := c.journalled(ctx, func(tx *sql.Tx) error {
		_, e := tx.ExecContext(ctx, `UPDATE recordings SET stopped_at = $1, manifest_key = $2, manifest_sha256 = $3, files = $4 WHERE id = $5`,
			database.Micros(database.Now()), m.Stored.Key, m.Stored.SHA256, len(m.Files), rec.ID().String())
		return e
	}, journal.Record{SessionID: sessionID, Actor: actor, Action: "recording.stopped", Details: details})
	if err != nil {
		return out, fmt.Errorf("recording: stop: %w", err)
	}
	return out, jerr
}

// StopAll stops every running recording, e.g. at shutdown or when a
// session closes.
func (c *Controller) StopAll(ctx context.Context) {
	c.mu.Lock()
	ids := make([]uuid.UUID, 0, len(c.active))
	for id := range c.active {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		if _, err := c.Stop(ctx, id, "system"); err != nil {
			c.cfg.Log.Error("stopping recording", "session", id, "err", err)
		}
	}
}

func fileSummaries(files []webm.File) []map[string]any {
	out := make([]map[string]any, 0, len(files))
	for _, f := range files {
		out = append(out, map[string]any{"key": f.Key, "sha256": f.SHA256, "size": f.Size,
			"participant_id": f.ParticipantID, "start_offset_ms": f.StartOffsetMs, "duration_ms": f.DurationMs, "recovered": f.Recovered})
	}
	return out
}

func (c *Controller) journalled(ctx context.Context, f func(tx *sql.Tx) error, rec journal.Record) error {
	return c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := f(tx); err != nil {
			return fmt.Errorf("recording: %w", err)
		}
		_, err := c.cfg.Journal.AppendTx(ctx, tx, rec)
		return err
	})
}

// Recover stores what a crash left in the spool directory and journals it.
// Call it at start, before any recording begins.
func (c *Controller) Recover(ctx context.Context) error {
	manifests, err := webm.Recover(ctx, c.cfg.SpoolDir, c.sink(), c.cfg.Log)
	for _, m := range manifests {
		jerr := c.journalled(ctx, func(tx *sql.Tx) error {
			_, e := tx.ExecContext(ctx, `UPDATE recordings SET stopped_at = $1, manifest_key = $2, manifest_sha256 = $3, files = $4, recovered = TRUE WHERE id = $5`,
				database.Micros(m.StoppedAt), m.Stored.Key, m.Stored.SHA256, len(m.Files), m.RecordingID.String())
			return e
		}, journal.Record{SessionID: m.SessionID, Actor: "system", Action: "recording.recovered",
			Details: map[string]any{"recording_id": m.RecordingID, "manifest_key": m.Stored.Key, "manifest_sha256": m.Stored.SHA256,
				"files": fileSummaries(m.Files)}})
		if jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	return err
}

// MayRecord implements the signalling server's Recorder hook.
func (c *Controller) MayRecord(sessionID, participantID uuid.UUID, src sfu.Source) bool {
	c.mu.Lock()
	on := c.active[sessionID] != nil
	c.mu.Unlock()
	return on && c.cfg.Policy.MayRecord(sessionID, participantID, string(src))
}

// OpenTap implements the signalling server's Recorder hook: the tap is the
// recorder's track writer for that track.
func (c *Controller) OpenTap(sessionID uuid.UUID, info sfu.TrackInfo) (sfu.Tap, error) {
	c.mu.Lock()
	rec := c.active[sessionID]
	c.mu.Unlock()
	if rec == nil {
		return nil, ErrNotRecording
	}
	// A participant's camera and microphone share a file; a screen share
	// is a file of its own.
	stream := info.StreamID
	if info.Source == sfu.SourceScreen {
		stream += "-screen"
	}
	return rec.Track(webm.TrackInfo{
		ParticipantID:   info.ParticipantID,
		ParticipantName: info.ParticipantName,
		StreamID:        stream,
		TrackID:         info.TrackID,
		Codec:           info.Codec.RTPCodecCapability,
		RequestKeyframe: info.RequestKeyframe,
	})
}
