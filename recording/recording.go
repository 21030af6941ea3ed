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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording/webm"
	"github.com/chamber-court/chamber/signaling/sfu"
)

var metricPending = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "chamber_recordings_storage_pending",
	Help: "Stopped recordings waiting in the spool to be stored and recorded (the store or the database is down).",
})

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
	// StoragePending is true while a stopped recording of the session
	// waits to be stored in the evidence store and recorded (the store or
	// the database is down). It is retried until it is; the act cannot be
	// sealed before.
	StoragePending bool `json:"storage_pending,omitempty"`
}

// Stopped describes a finished recording. While StoragePending is true
// the manifest is not known yet.
type Stopped struct {
	State
	ManifestKey    string      `json:"manifest_key"`
	ManifestSHA256 string      `json:"manifest_sha256"`
	Files          []webm.File `json:"files"`
}

// Scope says whose media belongs in the recording: the session layer's
// MayRecord (the main room only).
type Scope interface {
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
	Logger    *slog.Logger
	Scope     Scope
	SpoolDir  string
	Retention time.Duration
	// Composite configures the composite made of each recording after it
	// is recorded (compose.go); RunComposites runs the job.
	Composite CompositeConfig
}

// Controller runs the recordings of all sessions. It implements the
// signalling server's Recorder hook.
//
// A recording becomes part of the record in one transaction that marks it
// stopped with its manifest, adds its files and manifest to the evidence
// catalog and journals recording.stopped (or recording.recovered). Its
// spool directory is removed only after that commits, so a recording that
// could not be stored or recorded — store or database down — waits in the
// spool, shown as storage_pending, and RunRecovery stores and records it
// as soon as it can, without waiting for a restart.
type Controller struct {
	cfg        Config
	log        *slog.Logger
	catalog    *catalog.Catalog
	composites *composer

	mu       sync.Mutex
	active   map[uuid.UUID]*webm.Recording // by session
	stopping map[uuid.UUID]bool            // recordings whose Stop is under way
	pending  map[uuid.UUID]map[uuid.UUID]bool
	notifier Notifier
}

// New returns a controller.
func New(cfg Config) *Controller {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: log, active: map[uuid.UUID]*webm.Recording{}, stopping: map[uuid.UUID]bool{},
		pending:    map[uuid.UUID]map[uuid.UUID]bool{},
		catalog:    catalog.New(catalog.Config{DB: cfg.DB, Store: cfg.Store, Journal: cfg.Journal, Logger: log}),
		composites: newComposer(cfg.Composite, log)}
}

// SetNotifier plugs in the signalling server (built after the controller).
func (c *Controller) SetNotifier(n Notifier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notifier = n
}

func (c *Controller) notify(sessionID uuid.UUID) {
	c.mu.Lock()
	n := c.notifier
	st := c.stateLocked(sessionID)
	c.mu.Unlock()
	if n != nil {
		b, _ := json.Marshal(st)
		n.Notify(sessionID, nil, EventRecording, b)
	}
}

// State reports whether a session is being recorded, and whether a
// stopped recording of it is waiting to be stored.
func (c *Controller) State(sessionID uuid.UUID) State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked(sessionID)
}

func (c *Controller) stateLocked(sessionID uuid.UUID) State {
	st := stateOf(c.active[sessionID])
	st.StoragePending = len(c.pending[sessionID]) > 0
	return st
}

func stateOf(r *webm.Recording) State {
	if r == nil {
		return State{}
	}
	id, at := r.ID(), r.StartedAt().UTC()
	return State{Recording: true, RecordingID: &id, StartedAt: &at}
}

// sink stores recorder files in the evidence store, without retention: a
// file becomes part of the record, and is retained, when its recording's
// manifest is recorded.
type sink struct{ store evidence.Store }

func (s sink) Put(ctx context.Context, key string, r io.Reader, contentType string) (int64, string, error) {
	obj, err := s.store.Put(ctx, key, r, evidence.PutOptions{ContentType: contentType})
	if err != nil {
		return 0, "", err
	}
	return obj.Size, obj.SHA256, nil
}

func (c *Controller) sink() webm.Sink { return sink{c.cfg.Store} }

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
		Sink: c.sink(), SessionID: sessionID, Prefix: prefix(sessionID), SpoolDir: c.cfg.SpoolDir, Logger: c.cfg.Logger,
	})
	if err != nil {
		c.mu.Unlock()
		return State{}, fmt.Errorf("recording: start: %w", err)
	}
	c.active[sessionID] = rec
	c.mu.Unlock()
	if err := c.journalled(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO recordings (id, session_id, started_by, started_at) VALUES ($1, $2, $3, $4)`,
			rec.ID().String(), sessionID.String(), actor, database.Micros(rec.StartedAt()))
		return err
	}, journal.Record{SessionID: sessionID, Actor: actor, Action: "recording.started",
		Details: map[string]any{"recording_id": rec.ID(), "started_at": rec.StartedAt().UTC()}}); err != nil {
		c.mu.Lock()
		delete(c.active, sessionID)
		c.mu.Unlock()
		// Nobody was told and no media was tapped: nothing to keep.
		rec.Discard()
		return State{}, err
	}
	c.notify(sessionID)
	return c.State(sessionID), nil
}

// Stop ends a session's recording: the taps close, the files are completed
// and stored, and the recording is recorded (see Controller). When storing
// or recording has to wait — the store or the database is down — Stop
// still succeeds: the recording is stopped, the result says
// StoragePending, and RunRecovery finishes the job.
func (c *Controller) Stop(ctx context.Context, sessionID uuid.UUID, actor string) (Stopped, error) {
	c.mu.Lock()
	rec := c.active[sessionID]
	delete(c.active, sessionID)
	if rec != nil {
		c.stopping[rec.ID()] = true
		c.markPendingLocked(sessionID, rec.ID())
	}
	c.mu.Unlock()
	if rec == nil {
		return Stopped{}, ErrNotRecording
	}
	defer func() {
		c.mu.Lock()
		delete(c.stopping, rec.ID())
		c.mu.Unlock()
	}()
	// Telling the room first makes the media server close the taps.
	c.notify(sessionID)
	out := Stopped{State: stateOf(rec)}
	out.Recording = false
	m, err := rec.StopBy(ctx, actor)
	if err == nil {
		err = c.commit(ctx, m)
	}
	if err != nil {
		c.log.Warn("recording stopped; storing it waits for the store or the database, and is retried", "session", sessionID,
			"recording", rec.ID(), "err", err)
		out.StoragePending = true
		return out, nil
	}
	if err := rec.Release(); err != nil {
		c.log.Warn("removing a recorded recording's spool", "recording", rec.ID(), "err", err)
	}
	c.done(sessionID, rec.ID())
	out.State = c.State(sessionID)
	out.ManifestKey, out.ManifestSHA256, out.Files = m.Stored.Key, m.Stored.SHA256, m.Files
	return out, nil
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
		if out, err := c.Stop(ctx, id, "system"); err != nil {
			c.log.Error("stopping recording", "session", id, "err", err)
		} else if out.StoragePending {
			c.log.Warn("recording left in the spool; the next start stores it", "session", id)
		}
	}
}

func (c *Controller) markPendingLocked(sessionID, recordingID uuid.UUID) {
	if c.pending[sessionID] == nil {
		c.pending[sessionID] = map[uuid.UUID]bool{}
	}
	c.pending[sessionID][recordingID] = true
	c.countPendingLocked()
}

// countPendingLocked publishes how many recordings wait for storage.
func (c *Controller) countPendingLocked() {
	n := 0
	for _, recs := range c.pending {
		n += len(recs)
	}
	metricPending.Set(float64(n))
}

// done clears a recording that is stored and recorded, and tells the room
// when nothing of its session waits any more.
func (c *Controller) done(sessionID, recordingID uuid.UUID) {
	c.mu.Lock()
	delete(c.pending[sessionID], recordingID)
	cleared := len(c.pending[sessionID]) == 0
	if cleared {
		delete(c.pending, sessionID)
	}
	c.countPendingLocked()
	c.mu.Unlock()
	if cleared {
		c.notify(sessionID)
	}
}

// commit makes a stored recording part of the record: the recording row
// stopped with its manifest, its files and manifest in the evidence
// catalog, and its journal entry, in one transaction; then retention. A
// recording recorded already (a crash after the commit, before its spool
// went) is left as it is.
func (c *Controller) commit(ctx context.Context, m webm.Manifest) error {
	objs := make([]catalog.Object, 0, len(m.Files)+1)
	keys := make([]string, 0, len(m.Files)+1)
	for _, f := range m.Files {
		objs = append(objs, catalog.Object{Key: f.Key, Kind: catalog.RecordingFile, Size: f.Size, SHA256: f.SHA256})
		keys = append(keys, f.Key)
	}
	objs = append(objs, catalog.Object{Key: m.Stored.Key, Kind: catalog.RecordingManifest, Size: m.Stored.Size, SHA256: m.Stored.SHA256})
	keys = append(keys, m.Stored.Key)
	action, actor := "recording.stopped", m.StoppedBy
	if m.Recovered {
		action = "recording.recovered"
	}
	if actor == "" {
		actor = "system"
	}
	var until time.Time
	if c.cfg.Retention > 0 {
		until = database.Now().Add(c.cfg.Retention)
	}
	recorded := false
	err := c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE recordings SET stopped_at = $1, manifest_key = $2, manifest_sha256 = $3, files = $4, recovered = $5
			WHERE id = $6 AND manifest_key = ''`,
			database.Micros(m.StoppedAt), m.Stored.Key, m.Stored.SHA256, len(m.Files), m.Recovered, m.RecordingID.String())
		if err != nil {
			return fmt.Errorf("recording: record %s: %w", m.RecordingID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return c.alreadyRecorded(ctx, tx, m)
		}
		if err := catalog.Add(ctx, tx, m.SessionID, until, objs...); err != nil {
			return err
		}
		recorded = true
		_, err = c.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: m.SessionID, Actor: actor, Action: action,
			Details: map[string]any{"recording_id": m.RecordingID, "manifest_key": m.Stored.Key, "manifest_sha256": m.Stored.SHA256,
				"files": fileSummaries(m.Files), "stopped_at": m.StoppedAt, "recovered": m.Recovered, "objects": objs}})
		return err
	})
	if err != nil {
		return err
	}
	if recorded {
		c.catalog.Retain(ctx, keys...)
		// Recorded: its composite can be made, in the background.
		c.composites.enqueue(compositeJob{sessionID: m.SessionID, recordingID: m.RecordingID})
	}
	return nil
}

// alreadyRecorded explains a recording whose row has its manifest
// already: recorded by an earlier commit (nothing to do), or a second copy
// of its spool (what it stored is left for the reconciler to report).
func (c *Controller) alreadyRecorded(ctx context.Context, tx *sql.Tx, m webm.Manifest) error {
	var key string
	err := tx.QueryRowContext(ctx, `SELECT manifest_key FROM recordings WHERE id = $1`, m.RecordingID.String()).Scan(&key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		c.log.Warn("spooled recording whose start was never recorded; dropping it", "recording", m.RecordingID, "files", len(m.Files))
	case err != nil:
		return fmt.Errorf("recording: record %s: %w", m.RecordingID, err)
	case key != m.Stored.Key:
		c.log.Warn("spooled copy of a recording recorded already; what it stored is not evidence", "recording", m.RecordingID,
			"recorded", key, "copy", m.Stored.Key)
	}
	return nil
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

// Recover stores and records what the spool directory holds of recordings
// this process is not running: what a crash left, a Stop whose store or
// database was down, a manifest stored but not recorded. Run it at start
// before any recording begins, and then periodically (RunRecovery).
func (c *Controller) Recover(ctx context.Context) error {
	_, err := webm.RecoverWith(ctx, webm.RecoverConfig{
		SpoolDir: c.cfg.SpoolDir, Sink: c.sink(), Logger: c.cfg.Logger,
		Skip: c.busy,
		Commit: func(ctx context.Context, m webm.Manifest) error {
			if err := c.commit(ctx, m); err != nil {
				return err
			}
			c.done(m.SessionID, m.RecordingID)
			return nil
		},
	})
	if lerr := c.refreshPending(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	return err
}

// busy reports whether this process is recording or stopping a recording.
func (c *Controller) busy(recordingID uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping[recordingID] {
		return true
	}
	for _, r := range c.active {
		if r.ID() == recordingID {
			return true
		}
	}
	return false
}

// refreshPending marks as pending storage every spooled recording that is
// not running, so the state survives a restart.
func (c *Controller) refreshPending() error {
	spooled, err := webm.List(c.cfg.SpoolDir)
	if err != nil {
		return err
	}
	var changed []uuid.UUID
	c.mu.Lock()
	for _, sp := range spooled {
		if c.pending[sp.SessionID][sp.RecordingID] {
			continue
		}
		running := false
		for _, r := range c.active {
			running = running || r.ID() == sp.RecordingID
		}
		if !running {
			c.markPendingLocked(sp.SessionID, sp.RecordingID)
			changed = append(changed, sp.SessionID)
		}
	}
	c.mu.Unlock()
	for _, sid := range changed {
		c.notify(sid)
	}
	return nil
}

// RunRecovery runs Recover every interval until ctx ends, so that a
// recording waiting for the store or the database is stored as soon as
// they are back, not at the next restart.
func (c *Controller) RunRecovery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Recover(ctx); err != nil {
			c.log.Warn("storing spooled recordings; retrying", "err", err)
		}
	}
}

// PendingWrites lists the key prefixes of the session's recordings that
// are not recorded yet (running, or waiting to be stored), for the
// reconciler, which leaves them alone.
func (c *Controller) PendingWrites(ctx context.Context, sessionID uuid.UUID) ([]string, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT id FROM recordings WHERE session_id = $1 AND manifest_key = ''`, sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("recording: pending writes: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, prefix(sessionID)+id+"/")
	}
	return out, rows.Err()
}

// MayRecord implements the signalling server's Recorder hook.
func (c *Controller) MayRecord(sessionID, participantID uuid.UUID, src sfu.Source) bool {
	c.mu.Lock()
	on := c.active[sessionID] != nil
	c.mu.Unlock()
	return on && c.cfg.Scope.MayRecord(sessionID, participantID, string(src))
}

// ActiveSpeaker implements the signalling server's SpeakerRecorder hook:
// the session's running recording keeps who spoke when in its manifest.
func (c *Controller) ActiveSpeaker(sessionID, participantID uuid.UUID, trackID string) {
	c.mu.Lock()
	rec := c.active[sessionID]
	c.mu.Unlock()
	if rec != nil {
		rec.ActiveSpeaker(participantID, trackID)
	}
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
	w, err := rec.Track(webm.TrackInfo{
		ParticipantID:   info.ParticipantID,
		ParticipantName: info.ParticipantName,
		StreamID:        stream,
		TrackID:         info.TrackID,
		Codec:           info.Codec.RTPCodecCapability,
		RequestKeyframe: info.RequestKeyframe,
	})
	if err != nil {
		return nil, err
	}
	return tap{w}, nil
}

// tap is a recorder track as the media server's tap: it takes the
// publisher's sender reports too, which put the track's frames on the
// publisher's clock.
type tap struct{ webm.TrackWriter }

func (t tap) SenderReport(sr sfu.SenderReport) {
	_ = t.WriteSenderReport(webm.SenderReport{SSRC: sr.SSRC, NTPTime: sr.NTPTime, RTPTime: sr.RTPTime})
}
