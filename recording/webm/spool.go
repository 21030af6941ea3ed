package webm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The spool directory holds one subdirectory per recording:
//
//	<recording id>/recording.json   recordingMeta
//	<recording id>/001.webm         a file being written (or waiting for upload)
//	<recording id>/001.json         fileMeta: its manifest entry, state and header layout
//	<recording id>/speakers.jsonl   the active speaker's changes, one JSON line each
//
// A file's metadata is written before its first block and rewritten
// (atomically) when it is finished and when it is uploaded, so after a
// crash Recover knows each file's state. A Stop that succeeds removes the
// directory.
const recordingFile = "recording.json"

// File states in the spool.
const (
	stateRecording = "recording" // being written; after a crash, needs repair
	stateFinished  = "finished"  // complete, not yet (known to be) uploaded
	stateUploaded  = "uploaded"  // stored in the sink; the spool copy is gone
)

type recordingMeta struct {
	SessionID   string    `json:"session_id"`
	RecordingID string    `json:"recording_id"`
	Prefix      string    `json:"prefix"`
	StartedAt   time.Time `json:"started_at"`
	// Recoveries counts Recover's attempts on this recording. Each attempt
	// stores under keys of its own, so an attempt interrupted after an
	// upload can never collide with the next one in a write-once store.
	Recoveries int `json:"recoveries,omitempty"`
	// StoppedAt and StoppedBy say when and by whom the recording was
	// stopped, written before Stop stores anything.
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	StoppedBy string    `json:"stopped_by,omitempty"`
	// Stored is the manifest once it is in the store. What is left then
	// is for the caller to record it; the directory goes after that.
	Stored *storedManifest `json:"stored,omitempty"`
}

// storedManifest is a manifest as stored, and the files Recover could not
// save (the directory is kept as <id>.failed for an operator once the
// manifest is recorded).
type storedManifest struct {
	Manifest Manifest `json:"manifest"`
	Object   Object   `json:"object"`
	Lost     []string `json:"lost,omitempty"`
}

type fileMeta struct {
	File    File   `json:"file"`
	BaseKey string `json:"base_key,omitempty"` // the key Stop would have used
	State   string `json:"state"`
	Spool   string `json:"spool"`
	Layout  layout `json:"layout"`
}

// recoveredKey turns "…/x-001.webm" into "…/x-001.recovered.webm", or
// "…/x-001.recovered-2.webm" on a second attempt.
func recoveredKey(key string, attempt int) string {
	suffix := ".recovered"
	if attempt > 1 {
		suffix += fmt.Sprintf("-%d", attempt)
	}
	ext := filepath.Ext(key)
	return strings.TrimSuffix(key, ext) + suffix + ext
}

// writeJSON replaces path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// uploadSpool uploads a finished spool file under meta.File.Key, records
// the upload in its metadata and removes the spool copy.
func uploadSpool(ctx context.Context, sink Sink, path, metaAt string, meta fileMeta, log *slog.Logger) (File, error) {
	obj, err := upload(ctx, sink, path, meta.File.Key, meta.File.ContentType)
	if err != nil {
		metricFiles.WithLabelValues("failed").Inc()
		log.Error("uploading recording file; spool kept for Recover", "file", meta.File.Key, "err", err)
		return File{}, err
	}
	meta.File.Size, meta.File.SHA256 = obj.Size, obj.SHA256
	meta.State = stateUploaded
	if err := writeJSON(metaAt, meta); err != nil {
		// Stored but not marked: Recover would upload it again under its
		// recovered key — a duplicate, never a loss.
		return File{}, fmt.Errorf("webm: spool: %w", err)
	}
	if err := os.Remove(path); err != nil {
		log.Warn("removing uploaded spool file", "path", path, "err", err)
	}
	result := "uploaded"
	if meta.File.Recovered {
		result = "recovered"
	}
	metricFiles.WithLabelValues(result).Inc()
	log.Info("recording file stored", "file", obj.Key, "size", obj.Size, "sha256", obj.SHA256)
	return meta.File, nil
}

// Recover is RecoverWith for a caller with nothing to record: each
// recording's directory goes as soon as its manifest is stored.
func Recover(ctx context.Context, spoolDir string, sink Sink, log *slog.Logger) ([]Manifest, error) {
	return RecoverWith(ctx, RecoverConfig{SpoolDir: spoolDir, Sink: sink, Logger: log})
}

// RecoverConfig configures RecoverWith.
type RecoverConfig struct {
	SpoolDir string
	Sink     Sink
	Logger   *slog.Logger
	// Skip leaves a recording alone: one this process is still recording.
	Skip func(recordingID uuid.UUID) bool
	// Commit records a stored manifest (in the database, with its journal
	// entry). The spool directory is removed only after it succeeds; when
	// it fails the directory stays, noting that the manifest is stored,
	// and the next RecoverWith commits again without storing anything.
	Commit func(ctx context.Context, m Manifest) error
}

// RecoverWith completes the recordings that a crash (or a Stop that failed,
// or a Stop whose manifest was not yet recorded) left in the spool
// directory. Each spool file still being written is cut at its last
// complete block and given its index and duration; every file not yet
// stored is uploaded under a key ending in ".recovered.webm" (or .mkv;
// ".recovered-N.webm" on the Nth attempt), so it can never collide with an
// object stored before; and a manifest marked recovered is stored as
// manifest.recovered.json (manifest.recovered-N.json). A recording whose
// manifest is already stored is only committed. Nothing is removed before
// Commit succeeds. A recording whose files cannot all be recovered keeps
// its directory, renamed with a ".failed" suffix, for an operator. It can
// run at any time: recordings Skip names are left alone.
func RecoverWith(ctx context.Context, cfg RecoverConfig) ([]Manifest, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(cfg.SpoolDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webm: recover: %w", err)
	}
	var manifests []Manifest
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".failed") {
			continue
		}
		if id, err := uuid.Parse(e.Name()); err == nil && cfg.Skip != nil && cfg.Skip(id) {
			continue
		}
		m, err := finishRecording(ctx, filepath.Join(cfg.SpoolDir, e.Name()), cfg)
		if err != nil {
			errs = append(errs, err)
		}
		if m != nil {
			manifests = append(manifests, *m)
		}
	}
	return manifests, errors.Join(errs...)
}

// finishRecording stores (if need be) and commits one spooled recording,
// then removes its directory.
func finishRecording(ctx context.Context, dir string, cfg RecoverConfig) (*Manifest, error) {
	var rm recordingMeta
	if err := readJSON(filepath.Join(dir, recordingFile), &rm); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // released meanwhile by the Stop that recorded it
		}
		return nil, fmt.Errorf("webm: recover %s: %w", dir, err)
	}
	log := cfg.Logger.With("recording", rm.RecordingID, "session", rm.SessionID)
	if rm.Stored == nil {
		if err := recoverRecording(ctx, dir, &rm, cfg.Sink, log); err != nil {
			return nil, err
		}
	}
	m := rm.Stored.Manifest
	m.Stored = rm.Stored.Object
	if cfg.Commit != nil {
		if err := cfg.Commit(ctx, m); err != nil {
			log.Warn("recording stored but not yet recorded; the spool stays until it is", "manifest", m.Stored.Key, "err", err)
			return nil, fmt.Errorf("webm: recover %s: record: %w", dir, err)
		}
	}
	if len(rm.Stored.Lost) > 0 {
		err := fmt.Errorf("webm: recover %s: files lost: %s", dir, strings.Join(rm.Stored.Lost, "; "))
		log.Error("recording partly unrecoverable; spool kept", "dir", dir+".failed", "err", err)
		if rerr := os.Rename(dir, dir+".failed"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return &m, err
	}
	log.Info("recording finished", "files", len(m.Files), "manifest", m.Stored.Key, "recovered", m.Recovered)
	return &m, os.RemoveAll(dir)
}

// recoverRecording repairs and uploads what the spool holds of a recording
// whose Stop did not complete, stores its manifest, and notes the stored
// manifest in rm and in the spool.
func recoverRecording(ctx context.Context, dir string, rm *recordingMeta, sink Sink, log *slog.Logger) error {
	rm.Recoveries++
	if err := writeJSON(filepath.Join(dir, recordingFile), rm); err != nil {
		return fmt.Errorf("webm: recover %s: %w", dir, err)
	}
	m := Manifest{Version: 2, StartedAt: rm.StartedAt, StoppedBy: rm.StoppedBy, Recovered: true}
	if err := parseIDs(&m, *rm); err != nil {
		return fmt.Errorf("webm: recover %s: %w", dir, err)
	}
	speakers, err := readSpeakers(dir)
	if err != nil {
		log.Warn("reading the speaker changes of a recovered recording", "err", err)
	}
	m.Speakers = speakers
	metas, err := filepath.Glob(filepath.Join(dir, "[0-9]*.json"))
	if err != nil {
		return err
	}
	var lost []string // files that cannot be recovered, ever
	for _, metaAt := range metas {
		var fm fileMeta
		if err := readJSON(metaAt, &fm); err != nil {
			lost = append(lost, fmt.Sprintf("%s: %v", metaAt, err))
			continue
		}
		path := filepath.Join(dir, filepath.Base(fm.Spool))
		switch fm.State {
		case stateUploaded:
			m.Files = append(m.Files, fm.File)
			continue
		case stateRecording:
			endMs, err := repairWebM(path, fm.Layout)
			if err != nil {
				lost = append(lost, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			fm.File.DurationMs = endMs
			log.Warn("recording file repaired after a crash", "file", fm.File.Key, "duration_ms", endMs)
		case stateFinished:
		default:
			lost = append(lost, fmt.Sprintf("%s: unknown state %q", metaAt, fm.State))
			continue
		}
		if fm.BaseKey == "" {
			fm.BaseKey = fm.File.Key
		}
		fm.File.Key = recoveredKey(fm.BaseKey, rm.Recoveries)
		fm.File.Recovered = true
		fm.State = stateFinished
		if err := writeJSON(metaAt, fm); err != nil {
			return fmt.Errorf("webm: recover: %w", err)
		}
		f, err := uploadSpool(ctx, sink, path, metaAt, fm, log)
		if err != nil {
			return err // transient, perhaps: the directory stays for the next try
		}
		m.Files = append(m.Files, f)
	}
	for _, f := range m.Files {
		m.StoppedAt = maxTime(m.StoppedAt, f.StartedAt.Add(time.Duration(f.DurationMs)*time.Millisecond))
	}
	if !rm.StoppedAt.IsZero() {
		m.StoppedAt = rm.StoppedAt
	}
	if m.StoppedAt.IsZero() {
		m.StoppedAt = m.StartedAt
	}
	sortFiles(m.Files)
	obj, err := putManifest(ctx, sink, recoveredKey(rm.Prefix+rm.RecordingID+"/manifest.json", rm.Recoveries), m)
	if err != nil {
		return fmt.Errorf("webm: recover %s: manifest: %w", dir, err)
	}
	m.Stored = obj
	rm.Stored = &storedManifest{Manifest: m, Object: obj, Lost: lost}
	if err := writeJSON(filepath.Join(dir, recordingFile), rm); err != nil {
		return fmt.Errorf("webm: recover %s: %w", dir, err)
	}
	return nil
}

// Spooled is a recording the spool directory holds: running, or stopped
// and not yet both stored and recorded.
type Spooled struct {
	SessionID   uuid.UUID
	RecordingID uuid.UUID
	StartedAt   time.Time
}

// List returns the recordings in spoolDir.
func List(spoolDir string) ([]Spooled, error) {
	entries, err := os.ReadDir(spoolDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webm: spool: %w", err)
	}
	var out []Spooled
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".failed") {
			continue
		}
		var rm recordingMeta
		if err := readJSON(filepath.Join(spoolDir, e.Name(), recordingFile), &rm); err != nil {
			continue // being created, or not ours
		}
		var m Manifest
		if parseIDs(&m, rm) != nil {
			continue
		}
		out = append(out, Spooled{SessionID: m.SessionID, RecordingID: m.RecordingID, StartedAt: rm.StartedAt})
	}
	return out, nil
}

func parseIDs(m *Manifest, rm recordingMeta) error {
	var err error
	if m.SessionID, err = parseUUID(rm.SessionID); err != nil {
		return err
	}
	m.RecordingID, err = parseUUID(rm.RecordingID)
	return err
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
