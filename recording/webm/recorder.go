// Package webm records the media of a session's participants as WebM
// (Matroska for H.264) files, one per participant media stream, with a
// manifest of start offsets that lets them be played in sync.
//
// Package recording feeds it RTP from the SFU's recording taps: for each
// recorded track it calls Recording.Track and then TrackWriter.WriteRTP for
// every packet. WriteRTP copies the
// packet into a queue and returns at once; a goroutine per participant
// stream runs a jitter buffer per track (reordering, loss), depacketises
// (Opus, VP8, H.264), waits for a keyframe before writing video, and
// interleaves the tracks into a live-mode WebM spool file on local disk,
// fsynced every second. When a file is complete it is streamed from the
// spool into the Sink (the evidence store) and its SHA-256 reported. After
// a crash, Recover completes the spool files left behind and uploads them.
package webm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Errors returned by the recorder.
var (
	ErrUnsupportedCodec = errors.New("webm: unsupported codec")
	ErrStopped          = errors.New("webm: recording stopped")
	ErrClosed           = errors.New("webm: track closed")
	ErrIntegrity        = errors.New("webm: sink stored something other than what was read")
)

var (
	metricDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_recorder_packets_dropped_total",
		Help: "RTP packets the recorder dropped because a participant's queue was full.",
	})
	metricLost = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_recorder_packets_lost_total",
		Help: "RTP packets missing from recorded streams (network loss not repaired in time).",
	})
	metricBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_recorder_bytes_written_total",
		Help: "Bytes written to recording spool files.",
	})
	metricFiles = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_recorder_files_total",
		Help: "Recording files by outcome: uploaded, recovered (uploaded by Recover) or failed.",
	}, []string{"result"})
)

// Sink is where finished recordings go: the evidence store, through an
// adapter. Put must store r under key, make it visible only once complete,
// and return the size and hex SHA-256 of what it stored; the recorder
// checks both against what it read.
type Sink interface {
	Put(ctx context.Context, key string, r io.Reader, contentType string) (size int64, sha256hex string, err error)
}

// Config configures a recording.
type Config struct {
	Sink      Sink
	SessionID uuid.UUID
	// Prefix is prepended to object keys: files are stored as
	// Prefix + "<recording id>/<participant id>-<n>.webm".
	Prefix string
	// SpoolDir is a local directory that survives restarts; each
	// recording spools into its own subdirectory.
	SpoolDir string
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil. Packet arrival times come from
	// it, so it must advance with the media.
	Now func() time.Time
	// SyncInterval is how often spool files are fsynced (default 1 s):
	// at most this much media is lost when the machine, not just the
	// process, fails.
	SyncInterval time.Duration
	// HeaderWait is how long a participant's audio waits for the first
	// video keyframe before the file starts without the video (default
	// 3 s); the video then starts a new file when it arrives.
	HeaderWait time.Duration
	// SenderReportWait is how long a track's frames wait for its first
	// sender report (default 8 s) before it is timed by packet arrival
	// instead; negative: never wait (sync.go).
	SenderReportWait time.Duration
}

// TrackInfo describes a track the SFU records.
type TrackInfo struct {
	ParticipantID   uuid.UUID
	ParticipantName string
	// StreamID groups tracks into one file: a participant's camera and
	// microphone share a WebRTC MediaStream (and so a file); a screen
	// share is another stream and so another file.
	StreamID string
	TrackID  string
	Codec    webrtc.RTPCodecCapability
	// RequestKeyframe asks the publisher for a keyframe (a PLI). It is
	// called from the recorder's goroutine and must not block. May be nil
	// for audio.
	RequestKeyframe func()
}

// TrackWriter receives a track's RTP packets.
type TrackWriter interface {
	// WriteRTP queues a copy of p and returns at once; it never blocks.
	// If the queue is full the packet is dropped and counted (in the
	// manifest and chamber_recorder_packets_dropped_total).
	WriteRTP(p *rtp.Packet) error
	// WriteSenderReport queues the publisher's latest sender report for
	// the track's stream, in order with its packets; it never blocks.
	// Frames are timed through these reports (see sync.go).
	WriteSenderReport(sr SenderReport) error
	// Close ends the track; what was written is recorded.
	Close() error
}

// Recording is one recording of a session, from Start to Stop.
type Recording struct {
	cfg     Config
	log     *slog.Logger
	id      uuid.UUID
	dir     string
	start   time.Time
	ctx     context.Context // for uploads; cancelled when Stop gives up
	cancel  context.CancelFunc
	stopped atomic.Bool

	mu       sync.Mutex
	groups   map[groupKey]*group
	nextFile int
	audio    map[string]uuid.UUID // recorded audio tracks and whose they are
	speakers *speakers
	// speakersLost counts speaker changes dropped on a full queue.
	speakersLost int

	uploads sync.WaitGroup
	resMu   sync.Mutex
	files   []File
	errs    []error
}

// Manifest describes a recording's files. It is stored next to them as
// manifest.json (manifest.recovered.json after Recover).
type Manifest struct {
	// Version 2 adds Speakers and each track's Timing.
	Version     int       `json:"version"`
	SessionID   uuid.UUID `json:"session_id"`
	RecordingID uuid.UUID `json:"recording_id"`
	StartedAt   time.Time `json:"started_at"`
	StoppedAt   time.Time `json:"stopped_at"`
	// StoppedBy is who stopped the recording (StopBy), kept with it even
	// when storing it has to wait.
	StoppedBy string `json:"stopped_by,omitempty"`
	// Recovered is set when Recover, not Stop, finished the recording:
	// the process stopped mid-recording.
	Recovered bool   `json:"recovered"`
	Files     []File `json:"files"`
	// Speakers are the changes of the active speaker during the
	// recording, in time order (speakers.go).
	Speakers []SpeakerChange `json:"speakers"`
	// Stored is where the manifest itself was stored (not in the JSON).
	Stored Object `json:"-"`
}

// Object is a stored object.
type Object struct {
	Key    string
	Size   int64
	SHA256 string
}

// File is one recorded file: one participant stream over one stretch of
// time. Play files in sync by starting each StartOffsetMs after the
// recording's start.
type File struct {
	Key             string    `json:"key"`
	ContentType     string    `json:"content_type"` // video/webm, or video/x-matroska with H.264
	ParticipantID   uuid.UUID `json:"participant_id"`
	ParticipantName string    `json:"participant_name"`
	StreamID        string    `json:"stream_id"`
	StartedAt       time.Time `json:"started_at"`      // wall clock of the file's time 0
	StartOffsetMs   int64     `json:"start_offset_ms"` // file's time 0, in ms after the recording's start
	DurationMs      int64     `json:"duration_ms"`
	Size            int64     `json:"size"`
	SHA256          string    `json:"sha256"`
	// Recovered is set when the file was completed by Recover after a
	// crash; it holds the media up to the last block written.
	Recovered bool    `json:"recovered"`
	Tracks    []Track `json:"tracks"`
}

// Track is one track of a file.
type Track struct {
	Number    uint64 `json:"number"` // Matroska track number
	TrackID   string `json:"track_id"`
	Kind      string `json:"kind"`  // audio or video
	Codec     string `json:"codec"` // opus, vp8, h264
	ClockRate uint32 `json:"clock_rate"`
	Channels  uint16 `json:"channels,omitempty"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	// Timing says how the track's frames were placed in time:
	// "sender_reports" (the publisher's RTCP sender reports: in sync with
	// the stream's other tracks) or "arrival" (anchored at the first
	// packet's arrival). Empty in manifests written before reports were
	// used.
	Timing string `json:"timing,omitempty"`
	// Counters while this file was open.
	Packets        uint64 `json:"packets"`         // received
	LostPackets    uint64 `json:"lost_packets"`    // never arrived, or arrived too late
	DroppedPackets uint64 `json:"dropped_packets"` // queue overflow in the recorder
	Frames         uint64 `json:"frames"`          // written
	SkippedFrames  uint64 `json:"skipped_frames"`  // video frames dropped while waiting for a keyframe
}

// Start begins a recording. It creates the recording's spool directory;
// media arrives through Track.
func Start(ctx context.Context, cfg Config) (*Recording, error) {
	if cfg.Sink == nil || cfg.SpoolDir == "" {
		return nil, errors.New("webm: Config needs a Sink and a SpoolDir")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.HeaderWait <= 0 {
		cfg.HeaderWait = 3 * time.Second
	}
	if cfg.SenderReportWait == 0 {
		cfg.SenderReportWait = defaultSenderReportWait
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	r := &Recording{
		cfg:    cfg,
		id:     id,
		dir:    filepath.Join(cfg.SpoolDir, id.String()),
		start:  cfg.Now(),
		groups: map[groupKey]*group{},
		audio:  map[string]uuid.UUID{},
	}
	r.log = cfg.Logger.With("recording", id, "session", cfg.SessionID)
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("webm: spool: %w", err)
	}
	meta := recordingMeta{
		SessionID:   cfg.SessionID.String(),
		RecordingID: id.String(),
		Prefix:      cfg.Prefix,
		StartedAt:   r.start.UTC().Truncate(time.Microsecond),
	}
	if err := writeJSON(filepath.Join(r.dir, recordingFile), meta); err != nil {
		os.RemoveAll(r.dir)
		return nil, fmt.Errorf("webm: spool: %w", err)
	}
	r.speakers = startSpeakers(r.dir, r.log)
	r.log.Info("recording started", "spool", r.dir)
	return r, nil
}

// ID returns the recording's ID.
func (r *Recording) ID() uuid.UUID { return r.id }

// StartedAt returns the wall-clock time the recording started.
func (r *Recording) StartedAt() time.Time { return r.start }

// Track starts recording a track. Tracks with the same participant and
// StreamID go into one file; a track added after that file has started
// begins a new file holding all the stream's tracks.
func (r *Recording) Track(info TrackInfo) (TrackWriter, error) {
	spec, err := lookupCodec(info.Codec)
	if err != nil {
		return nil, err
	}
	key := groupKey{info.ParticipantID, info.StreamID}
	r.mu.Lock()
	if r.stopped.Load() {
		r.mu.Unlock()
		return nil, ErrStopped
	}
	g := r.groups[key]
	if g == nil {
		g = newGroup(r, key, info.ParticipantName)
		r.groups[key] = g
		go g.run()
	}
	if !spec.video {
		r.audio[info.TrackID] = info.ParticipantID
	}
	r.mu.Unlock()
	t := newTrack(info, spec)
	if err := g.send(ctrlMsg{add: t}); err != nil {
		return nil, err
	}
	return &trackWriter{g: g, t: t}, nil
}

// Stop is StopBy with no one named.
func (r *Recording) Stop(ctx context.Context) (Manifest, error) { return r.StopBy(ctx, "") }

// StopBy ends the recording: every track's remaining media is written, the
// files are completed and uploaded, and the manifest is stored as
// manifest.json beside them. by (who stopped it) and the stop time are
// written to the spool first, so they survive a failure. If ctx ends
// first, or any upload fails, StopBy returns an error and the spool
// directory stays for Recover. On success the spool directory stays too,
// holding the stored manifest, until the caller has recorded it and calls
// Release: a crash in between leaves Recover only the recording to do.
func (r *Recording) StopBy(ctx context.Context, by string) (Manifest, error) {
	r.mu.Lock()
	if r.stopped.Swap(true) {
		r.mu.Unlock()
		return Manifest{}, ErrStopped
	}
	stoppedAt := r.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := r.updateMeta(func(m *recordingMeta) { m.StoppedAt, m.StoppedBy = stoppedAt, by }); err != nil {
		r.log.Warn("noting the stop in the spool", "err", err)
	}
	groups := make([]*group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.stopSpeakers()
	r.mu.Unlock()
	for _, g := range groups {
		g.send(ctrlMsg{stop: true})
	}
	done := make(chan struct{})
	go func() {
		r.uploads.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
		return Manifest{}, fmt.Errorf("webm: stop: %w (spool kept in %s for Recover)", ctx.Err(), r.dir)
	}
	defer r.cancel()

	m := Manifest{
		Version:     2,
		SessionID:   r.cfg.SessionID,
		RecordingID: r.id,
		StartedAt:   r.start.UTC().Truncate(time.Microsecond),
		StoppedAt:   stoppedAt,
		StoppedBy:   by,
		Speakers:    r.speakerList(),
	}
	r.resMu.Lock()
	m.Files = slices.Clone(r.files)
	err := errors.Join(r.errs...)
	r.resMu.Unlock()
	sortFiles(m.Files)
	if err != nil {
		r.log.Error("recording stopped with errors; spool kept for Recover", "err", err, "spool", r.dir)
		return m, err
	}
	obj, err := putManifest(ctx, r.cfg.Sink, r.cfg.Prefix+r.id.String()+"/manifest.json", m)
	if err != nil {
		return m, fmt.Errorf("webm: manifest: %w (spool kept in %s for Recover)", err, r.dir)
	}
	m.Stored = obj
	if err := r.updateMeta(func(rm *recordingMeta) { rm.Stored = &storedManifest{Manifest: m, Object: obj} }); err != nil {
		// Stored, but the spool does not say so: a Recover would store
		// the files again under recovered keys — a duplicate, never a
		// loss. Release still removes the spool once recorded.
		r.log.Warn("noting the stored manifest in the spool", "err", err)
	}
	r.log.Info("recording stopped and stored", "files", len(m.Files), "manifest", obj.Key, "sha256", obj.SHA256)
	return m, nil
}

// Release removes the spool of a stopped recording once its caller has
// recorded the manifest Stop returned.
func (r *Recording) Release() error {
	if !r.stopped.Load() {
		return errors.New("webm: release of a recording that was not stopped")
	}
	return os.RemoveAll(r.dir)
}

// Discard ends a recording that never became part of the record (its
// start could not be recorded): nothing is stored, and its spool goes.
func (r *Recording) Discard() {
	r.mu.Lock()
	already := r.stopped.Swap(true)
	groups := make([]*group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	if !already {
		r.stopSpeakers()
	}
	r.mu.Unlock()
	if already {
		return
	}
	r.speakerList()
	r.cancel()
	for _, g := range groups {
		g.send(ctrlMsg{stop: true})
	}
	r.uploads.Wait()
	if err := os.RemoveAll(r.dir); err != nil {
		r.log.Warn("removing a discarded recording's spool", "err", err)
	}
}

// updateMeta rewrites the recording's spool metadata.
func (r *Recording) updateMeta(f func(m *recordingMeta)) error {
	at := filepath.Join(r.dir, recordingFile)
	var m recordingMeta
	if err := readJSON(at, &m); err != nil {
		return err
	}
	f(&m)
	return writeJSON(at, m)
}

func parseUUID(s string) (uuid.UUID, error) { return uuid.Parse(s) }

func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int {
		if a.StartOffsetMs != b.StartOffsetMs {
			return int(a.StartOffsetMs - b.StartOffsetMs)
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// flush makes every stream write out and sync what it holds, as it does by
// itself a second after its last packet.
func (r *Recording) flush() {
	r.mu.Lock()
	groups := make([]*group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()
	for _, g := range groups {
		g.send(ctrlMsg{flush: true})
	}
}

// now returns the time since the recording started.
func (r *Recording) now() time.Duration { return r.cfg.Now().Sub(r.start) }

// fileDone records the outcome of a file's upload.
func (r *Recording) fileDone(f File, err error) {
	r.resMu.Lock()
	defer r.resMu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.files = append(r.files, f)
}

// newFileNumber numbers the recording's files.
func (r *Recording) newFileNumber() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextFile++
	return r.nextFile
}

// upload streams a finished spool file into the sink and checks that the
// sink stored exactly what was read.
func upload(ctx context.Context, sink Sink, path, key, contentType string) (Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, h)}
	size, sum, err := sink.Put(ctx, key, cr, contentType)
	if err != nil {
		return Object{}, fmt.Errorf("webm: storing %s: %w", key, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if size != cr.n || !strings.EqualFold(sum, got) {
		return Object{}, fmt.Errorf("%w: %s: sink reports %d bytes sha256 %s, recorder read %d bytes sha256 %s",
			ErrIntegrity, key, size, sum, cr.n, got)
	}
	return Object{Key: key, Size: size, SHA256: got}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func putManifest(ctx context.Context, sink Sink, key string, m Manifest) (Object, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Object{}, err
	}
	size, sum, err := sink.Put(ctx, key, strings.NewReader(string(b)+"\n"), "application/json")
	if err != nil {
		return Object{}, err
	}
	want := sha256.Sum256(append(b, '\n'))
	if size != int64(len(b)+1) || !strings.EqualFold(sum, hex.EncodeToString(want[:])) {
		return Object{}, fmt.Errorf("%w: %s", ErrIntegrity, key)
	}
	return Object{Key: key, Size: size, SHA256: sum}, nil
}
