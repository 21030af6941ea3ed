package webm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/at-wat/ebml-go/webm"
	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

const (
	queueSize = 4096 // packets per participant stream: several seconds of HD video
	// interleaveWindow is how far one track may run ahead of another that
	// has fallen silent before its frames are written anyway.
	interleaveWindow = 500 * time.Millisecond
	// idleFlush: when no packet has arrived for this long, frames held by
	// the jitter buffers and the interleaver are written out.
	idleFlush = time.Second
	// discontinuity: an RTP timestamp this far from the arrival time is a
	// restarted or replaced stream; the track is re-anchored.
	discontinuity = 5 * time.Second
	keyframeEvery = time.Second // minimum interval between keyframe requests
	tickInterval  = 100 * time.Millisecond
)

type groupKey struct {
	participant uuid.UUID
	stream      string
}

// group records one participant stream. Its goroutine owns everything
// below the channels; callers only send packets and control messages.
type group struct {
	r    *Recording
	key  groupKey
	name string
	log  *slog.Logger
	in   chan inPacket
	ctrl chan ctrlMsg
	done chan struct{}

	tracks      []*track
	file        *openFile
	waiting     bool          // frames are queued but no file is open
	waitStart   time.Duration // when the first of them arrived
	lastArrival time.Duration
	lastSync    time.Duration
	idle        bool
	err         error // a write failed: the stream is no longer recorded
	// ntpOffset is the publisher's clock minus the recording's, in
	// nanoseconds, fixed by the first track timed by sender reports
	// (sync.go).
	ntpOffset int64
	ntpOK     bool
}

type inPacket struct {
	t       *track
	sr      *SenderReport // a sender report instead of a packet
	arrival time.Duration
	seq     uint16
	ts      uint32
	ssrc    uint32
	marker  bool
	payload []byte
}

type ctrlMsg struct {
	add   *track
	close *track
	stop  bool
	flush bool // write out and sync everything held, as after idleFlush
	reply chan error
}

// openFile is the file a group is writing.
type openFile struct {
	w       *webmFile
	path    string
	metaAt  string
	meta    fileMeta
	members []*track
	offset  time.Duration // recording time of the file's time 0
}

// track is one track's state, owned by its group's goroutine except for
// the dropped counter.
type track struct {
	info TrackInfo
	spec codecSpec
	sb   *samplebuilder.SampleBuilder

	haveSeq      bool
	lastReleased uint16 // sequence number of the newest packet the jitter buffer let go
	padding      uint64 // padding packets released (counted as dropped by the builder)
	paddingSeen  uint64 // padding already subtracted
	havePackets  bool
	ssrc         uint32
	anchorAt     time.Duration // recording time of the anchor packet
	anchorExt    int64         // its unwrapped RTP timestamp
	pktExt       int64         // newest unwrapped packet timestamp
	frameExt     int64         // unwrapped timestamp of the last frame
	lastTS       uint32        // RTP timestamp of the latest packet …
	lastArrival  time.Duration // … and its arrival

	// Timing (sync.go): sender reports, or arrival; frames wait in held
	// until the track's first report, or until it is given up on.
	mode      timing
	sr        srMapping
	holdSince time.Duration
	held      []frame

	h264       h264State
	ready      bool // a keyframe has been seen: the stream's configuration is known
	cfg        videoConfig
	needKey    bool // drop frames until the next keyframe
	lastKeyReq time.Duration
	keyReqd    bool

	queue  []frame
	closed bool
	inFile bool   // has been in a file
	num    uint64 // track number in the open file; 0 when not in it
	lastMs int64  // last block time written to the open file

	stats, atStart trackStats
	dropped        atomic.Uint64
	droppedSeen    uint64
}

type trackStats struct {
	packets, lost, frames, skipped, dropped uint64
}

type frame struct {
	at   time.Duration // recording time
	ts   uint32        // RTP timestamp
	ext  int64         // unwrapped
	key  bool
	data []byte
	dur  time.Duration
}

func newGroup(r *Recording, key groupKey, name string) *group {
	return &group{
		r:    r,
		key:  key,
		name: name,
		log:  r.log.With("participant", key.participant, "stream", key.stream),
		in:   make(chan inPacket, queueSize),
		ctrl: make(chan ctrlMsg),
		done: make(chan struct{}),
	}
}

func newTrack(info TrackInfo, spec codecSpec) *track {
	t := &track{info: info, spec: spec, needKey: spec.video, lastMs: -1}
	t.newBuilder()
	return t
}

func (t *track) newBuilder() {
	maxDelay := 300 * time.Millisecond
	if t.spec.video {
		maxDelay = time.Second // room for retransmissions of a large frame
	}
	t.haveSeq = false
	t.sb = samplebuilder.New(t.spec.maxLate, t.spec.newDepacketizer(), t.spec.clockRate,
		samplebuilder.WithMaxTimeDelay(maxDelay),
		samplebuilder.WithPacketReleaseHandler(func(p *rtp.Packet) {
			t.haveSeq, t.lastReleased = true, p.SequenceNumber
			if len(p.Payload) == 0 {
				t.padding++
			}
		}))
}

// send delivers a control message and waits for the goroutine's answer.
func (g *group) send(m ctrlMsg) error {
	m.reply = make(chan error, 1)
	select {
	case g.ctrl <- m:
	case <-g.done:
		return ErrStopped
	}
	select {
	case err := <-m.reply:
		return err
	case <-g.done:
		return ErrStopped
	}
}

func (g *group) run() {
	defer close(g.done)
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	for {
		select {
		case p := <-g.in:
			g.handle(p)
		case m := <-g.ctrl:
			if g.control(m) {
				return
			}
		case <-ticker.C:
			g.tick()
		}
	}
}

// drain handles the packets already queued, so that a control message
// sees everything written before it was sent.
func (g *group) drain() {
	for {
		select {
		case p := <-g.in:
			g.handle(p)
		default:
			return
		}
	}
}

func (g *group) control(m ctrlMsg) (exit bool) {
	g.drain()
	switch {
	case m.add != nil:
		g.tracks = append(g.tracks, m.add)
		if m.add.spec.video {
			g.requestKeyframe(m.add)
		}
	case m.close != nil:
		t := m.close
		g.flushBuilder(t)
		if t.mode == timingHold {
			g.fallBack(t, "closed before its first sender report")
		}
		t.closed = true
		if !slices.ContainsFunc(g.tracks, func(t *track) bool { return !t.closed }) {
			g.pump(true)
			g.finishFile()
			g.tracks = slices.DeleteFunc(g.tracks, func(t *track) bool { return t.closed })
		} else {
			g.pump(false)
		}
	case m.flush:
		for _, t := range g.tracks {
			g.flushBuilder(t)
		}
		g.pump(true)
		if g.file != nil {
			if err := g.file.w.sync(); err != nil {
				g.fail(fmt.Errorf("webm: syncing %s: %w", g.file.path, err))
			}
		}
	case m.stop:
		for _, t := range g.tracks {
			g.flushBuilder(t)
		}
		g.pump(true)
		g.finishFile()
		m.reply <- nil
		return true
	}
	m.reply <- nil
	return false
}

func (g *group) handle(p inPacket) {
	t := p.t
	if t.closed || g.err != nil {
		return
	}
	if p.sr != nil {
		g.senderReport(t, *p.sr)
		return
	}
	g.lastArrival = max(g.lastArrival, p.arrival)
	g.idle = false
	t.stats.packets++
	t.lastTS, t.lastArrival = p.ts, p.arrival
	if !t.havePackets {
		t.havePackets, t.ssrc = true, p.ssrc
		t.anchor(p)
		g.startTiming(t)
	}
	ext := unwrap(t.pktExt, p.ts)
	if p.ssrc != t.ssrc || g.strays(t, p.arrival, p.ts, ext) {
		// A new or restarted stream: write out what the old one left,
		// then start the timeline afresh from this packet, waiting for
		// the new stream's sender reports.
		g.log.Info("stream discontinuity; re-anchoring", "track", t.info.TrackID, "ssrc", p.ssrc, "timing", t.mode.String())
		g.flushBuilder(t)
		if t.mode == timingHold {
			g.fallBack(t, "")
		}
		t.newBuilder()
		t.ssrc, t.sr = p.ssrc, srMapping{}
		t.anchor(p)
		ext = t.anchorExt
		if t.spec.video {
			t.needKey = true
		}
		g.startTiming(t)
	}
	g.checkHolds(p.arrival)
	t.pktExt = max(t.pktExt, ext)
	if t.haveSeq && int16(p.seq-t.lastReleased) <= 0 {
		// Older than what the jitter buffer already let go: a duplicate,
		// or too late (its absence was already counted as loss).
		return
	}
	marker := p.marker
	if len(p.payload) == 0 {
		// Padding only (bandwidth probes). The jitter buffer would take
		// an empty packet as the start of a frame, so it goes in as a
		// frame of its own, which the buffer discards; its release is
		// counted so that it is not mistaken for loss.
		if !t.spec.video {
			t.padding++ // the gap it leaves is counted as dropped
			return
		}
		marker = true
	}
	t.sb.Push(&rtp.Packet{
		Header:  rtp.Header{Version: 2, Marker: marker, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc},
		Payload: p.payload,
	})
	for s := t.sb.Pop(); s != nil; s = t.sb.Pop() {
		g.sample(t, s)
	}
	g.pump(false)
}

// flushBuilder forces out every frame the jitter buffer still holds.
func (g *group) flushBuilder(t *track) {
	t.sb.Flush()
	for s := t.sb.Pop(); s != nil; s = t.sb.Pop() {
		g.sample(t, s)
	}
}

func unwrap(last int64, ts uint32) int64 { return last + int64(int32(ts-uint32(last))) }

// anchor makes packet p the origin of the track's arrival timing.
func (t *track) anchor(p inPacket) {
	t.anchorAt, t.anchorExt = p.arrival, int64(p.ts)
	t.pktExt, t.frameExt = t.anchorExt, t.anchorExt
}

// rtpTime maps an unwrapped RTP timestamp to recording time through the
// track's anchor.
func (t *track) rtpTime(ext int64) time.Duration {
	d := ext - t.anchorExt
	c := int64(t.spec.clockRate)
	return t.anchorAt + time.Duration(d/c)*time.Second + time.Duration(d%c)*time.Second/time.Duration(c)
}

// sample takes a complete frame from the jitter buffer.
func (g *group) sample(t *track, s *media.Sample) {
	ext := unwrap(t.frameExt, s.PacketTimestamp)
	t.frameExt = ext
	lost := uint64(s.PrevDroppedPackets)
	if pad := t.padding - t.paddingSeen; pad > 0 {
		t.paddingSeen = t.padding
		lost -= min(lost, pad)
	}
	if lost > 0 {
		t.stats.lost += lost
		metricLost.Add(float64(lost))
	}
	key := true
	if t.spec.video {
		var cfg videoConfig
		key, cfg = t.spec.inspect(s.Data, &t.h264)
		switch {
		case key:
			t.needKey, t.ready, t.cfg = false, true, cfg
		case lost > 0:
			// The frame may refer to what was lost: freeze until a
			// keyframe rather than write a corrupt picture.
			t.needKey = true
		}
		if t.needKey {
			t.stats.skipped++
			g.requestKeyframe(t)
			return
		}
	}
	fr := frame{ts: s.PacketTimestamp, ext: ext, key: key, data: s.Data, dur: s.Duration}
	if t.mode == timingHold {
		t.held = append(t.held, fr)
	} else {
		fr.at = g.frameTime(t, fr.ts, fr.ext)
		t.queue = append(t.queue, fr)
	}
	if g.file == nil && !g.waiting {
		g.waiting, g.waitStart = true, g.lastArrival
	}
}

func (g *group) requestKeyframe(t *track) {
	now := g.r.now()
	if t.info.RequestKeyframe == nil || t.closed || t.keyReqd && now-t.lastKeyReq < keyframeEvery {
		return
	}
	t.keyReqd, t.lastKeyReq = true, now
	t.info.RequestKeyframe()
}

// pump starts, rolls and writes the group's file. With flush, everything
// queued is written and a file starts without waiting for video.
func (g *group) pump(flush bool) {
	if g.err != nil {
		return
	}
	if flush {
		for _, t := range g.tracks {
			if t.mode == timingHold && len(t.held) > 0 {
				g.fallBack(t, "written out before its first sender report")
			}
		}
	} else if slices.ContainsFunc(g.tracks, (*track).holding) {
		// Nothing is written while a track waits for its first report:
		// its frames may belong before what the others have queued.
		return
	}
	if g.file == nil {
		if !g.readyToStart(flush) {
			return
		}
		g.startFile()
	} else if slices.ContainsFunc(g.tracks, func(t *track) bool { return t.num == 0 && len(t.queue) > 0 }) {
		// A track that is not in the file has media: its header cannot
		// change, so the file ends here and a new one takes all tracks.
		g.writeFrames(true)
		g.finishFile()
		g.startFile()
	}
	g.writeFrames(flush)
}

func (g *group) readyToStart(flush bool) bool {
	if !slices.ContainsFunc(g.tracks, func(t *track) bool { return len(t.queue) > 0 }) {
		return false
	}
	if flush || g.lastArrival-g.waitStart >= g.r.cfg.HeaderWait {
		return true
	}
	// Wait for every open video track's first keyframe, so that a
	// participant's audio and video start in one file.
	return !slices.ContainsFunc(g.tracks, func(t *track) bool { return t.spec.video && !t.ready && !t.closed })
}

func (g *group) startFile() {
	if g.err != nil {
		return
	}
	members := g.fileMembers()
	if len(members) == 0 {
		return
	}
	offset := time.Duration(1<<63 - 1)
	for _, t := range members {
		if len(t.queue) > 0 {
			offset = min(offset, t.queue[0].at)
		}
	}
	h := headerOf(members)
	n := g.r.newFileNumber()
	name := fmt.Sprintf("%03d", n)
	path := filepath.Join(g.r.dir, name+h.ext)
	startedAt := g.r.start.Add(offset).UTC().Truncate(time.Microsecond)
	w, err := createWebM(path, h.docType, h.entries, h.mainTrack, startedAt)
	if err != nil {
		g.fail(fmt.Errorf("webm: creating %s: %w", path, err))
		return
	}
	metricBytes.Add(float64(w.size))
	f := &openFile{
		w:      w,
		path:   path,
		metaAt: filepath.Join(g.r.dir, name+".json"),
		offset: offset,
		meta: fileMeta{
			State:  stateRecording,
			Spool:  name + h.ext,
			Layout: w.lay,
			File: File{
				Key:             fmt.Sprintf("%s%s/%s-%s%s", g.r.cfg.Prefix, g.r.id, g.key.participant, name, h.ext),
				ContentType:     h.contentType,
				ParticipantID:   g.key.participant,
				ParticipantName: g.name,
				StreamID:        g.key.stream,
				StartedAt:       startedAt,
				StartOffsetMs:   offset.Milliseconds(),
				Tracks:          h.tracks,
			},
		},
		members: members,
	}
	if err := writeJSON(f.metaAt, f.meta); err != nil {
		w.f.Close()
		g.fail(fmt.Errorf("webm: spool: %w", err))
		return
	}
	g.file, g.waiting = f, false
	g.lastSync = g.lastArrival
	g.enterFile(members)
	g.log.Info("recording file started", "file", f.meta.File.Key, "offset", offset, "tracks", len(members))
}

// fileMembers are the tracks a new file holds, audio first, then video:
// the track numbers players expect.
func (g *group) fileMembers() []*track {
	var members []*track
	for _, t := range g.tracks {
		// Open audio tracks and video tracks whose configuration is known
		// belong in the header even with nothing queued yet.
		if len(t.queue) > 0 || !t.closed && (!t.spec.video || t.ready) {
			members = append(members, t)
		}
	}
	slices.SortStableFunc(members, func(a, b *track) int {
		switch {
		case a.spec.video == b.spec.video:
			return 0
		case a.spec.video:
			return 1
		}
		return -1
	})
	return members
}

// fileHeader is what a new file's header says about its tracks, and the
// container it is: WebM, or Matroska when it holds H.264.
type fileHeader struct {
	entries                   []webm.TrackEntry
	tracks                    []Track
	mainTrack                 uint64 // the first video track, else 1
	docType, ext, contentType string
}

func headerOf(members []*track) fileHeader {
	h := fileHeader{docType: "webm", ext: ".webm", contentType: "video/webm"}
	for i, t := range members {
		num := uint64(i + 1)
		e := webm.TrackEntry{
			Name:        t.info.TrackID,
			TrackNumber: num,
			TrackUID:    randomUID(),
			CodecID:     t.spec.matroska,
		}
		mt := Track{Number: num, TrackID: t.info.TrackID, Codec: t.spec.name, ClockRate: t.spec.clockRate}
		if t.spec.video {
			e.TrackType = 1
			e.CodecPrivate = t.cfg.codecPrivate
			e.Video = &webm.Video{PixelWidth: uint64(t.cfg.width), PixelHeight: uint64(t.cfg.height)}
			mt.Kind, mt.Width, mt.Height = "video", t.cfg.width, t.cfg.height
			if h.mainTrack == 0 {
				h.mainTrack = num
			}
			if t.spec.name == codecH264 {
				h.docType, h.ext, h.contentType = "matroska", ".mkv", "video/x-matroska"
			}
		} else {
			e.TrackType = 2
			e.CodecPrivate = opusHead(t.spec.channels)
			e.SeekPreRoll = uint64(80 * time.Millisecond) // RFC 7845 §4.6
			e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: uint64(t.spec.channels)}
			mt.Kind, mt.Channels = "audio", t.spec.channels
		}
		h.entries = append(h.entries, e)
		h.tracks = append(h.tracks, mt)
	}
	if h.mainTrack == 0 {
		h.mainTrack = 1
	}
	return h
}

// enterFile numbers the members in the new file; a video track joined by
// a roll waits for a fresh keyframe.
func (g *group) enterFile(members []*track) {
	for i, t := range members {
		t.num, t.lastMs = uint64(i+1), -1
		if t.inFile {
			t.atStart = t.stats // what came before went into an earlier file
		}
		t.inFile = true
		if t.spec.video && len(t.queue) == 0 {
			t.needKey = true
			g.requestKeyframe(t)
		}
	}
}

// writeFrames writes queued frames in time order across the file's tracks.
// A frame is written once every open track has something queued (so none
// is written ahead of another's earlier frame), or when it is older than
// the newest queued frame by interleaveWindow (a track has fallen silent).
func (g *group) writeFrames(flush bool) {
	f := g.file
	for f != nil && g.file == f {
		var first *track
		var newest time.Duration
		all := true
		for _, t := range f.members {
			if len(t.queue) == 0 {
				all = all && t.closed
				continue
			}
			if first == nil || t.queue[0].at < first.queue[0].at {
				first = t
			}
			newest = max(newest, t.queue[len(t.queue)-1].at)
		}
		if first == nil || !(all || flush || newest-first.queue[0].at >= interleaveWindow) {
			return
		}
		fr := first.queue[0]
		first.queue[0] = frame{}
		first.queue = first.queue[1:]
		g.writeFrame(first, fr)
	}
}

func (g *group) writeFrame(t *track, fr frame) {
	ms := max((fr.at - g.file.offset).Milliseconds(), t.lastMs+1, 0) // monotonic per track
	dur := fr.dur.Milliseconds()
	if dur <= 0 || dur > 1000 {
		dur = 20
		if t.spec.video {
			dur = 33
		}
	}
	before := g.file.w.size
	if err := g.file.w.writeBlock(t.num, fr.key, ms, dur, fr.data); err != nil {
		g.fail(fmt.Errorf("webm: writing %s: %w", g.file.path, err))
		return
	}
	metricBytes.Add(float64(g.file.w.size - before))
	t.lastMs = ms
	t.stats.frames++
}

// finishFile completes the open file and uploads it in the background.
func (g *group) finishFile() {
	f := g.file
	if f == nil {
		return
	}
	g.file = nil
	for i, t := range f.members {
		t.num = 0
		d := t.stats
		d.packets -= t.atStart.packets
		d.lost -= t.atStart.lost
		d.frames -= t.atStart.frames
		d.skipped -= t.atStart.skipped
		dropped := t.dropped.Load()
		mt := &f.meta.File.Tracks[i]
		mt.Packets, mt.LostPackets, mt.Frames, mt.SkippedFrames = d.packets, d.lost, d.frames, d.skipped
		mt.DroppedPackets = dropped - t.atStart.dropped
		t.stats.dropped = dropped
		t.atStart.dropped = dropped
		if t.spec.video && t.ready {
			mt.Width, mt.Height = t.cfg.width, t.cfg.height
		}
		mt.Timing = t.mode.String()
	}
	if err := f.w.finish(); err != nil {
		g.failed(fmt.Errorf("webm: completing %s: %w", f.path, err))
		return
	}
	f.meta.File.DurationMs = f.w.endMs
	f.meta.State = stateFinished
	if err := writeJSON(f.metaAt, f.meta); err != nil {
		g.failed(fmt.Errorf("webm: spool: %w", err))
		return
	}
	g.log.Info("recording file finished", "file", f.meta.File.Key, "duration_ms", f.w.endMs)
	r := g.r
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		r.fileDone(uploadSpool(r.ctx, r.cfg.Sink, f.path, f.metaAt, f.meta, r.log))
	}()
}

// fail stops recording the stream after a write error, completing what
// was written so far: the error is reported by Stop.
func (g *group) fail(err error) {
	g.failed(err)
	g.finishFile()
}

func (g *group) failed(err error) {
	g.log.Error("recording failed", "err", err)
	metricFiles.WithLabelValues("failed").Inc()
	if g.err == nil {
		g.err = err
		g.r.fileDone(File{}, err)
	}
}

func (g *group) tick() {
	now := g.r.now()
	g.checkHolds(now)
	for _, t := range g.tracks {
		if d := t.dropped.Load(); d != t.droppedSeen {
			g.log.Warn("recorder queue full; packets dropped", "track", t.info.TrackID, "dropped", d-t.droppedSeen)
			t.droppedSeen = d
		}
		if t.spec.video && t.needKey {
			g.requestKeyframe(t)
		}
	}
	if g.file != nil && now-g.lastSync >= g.r.cfg.SyncInterval {
		g.lastSync = now
		if err := g.file.w.sync(); err != nil {
			g.fail(fmt.Errorf("webm: syncing %s: %w", g.file.path, err))
		}
	}
	if !g.idle && now-g.lastArrival >= idleFlush {
		g.idle = true
		for _, t := range g.tracks {
			g.flushBuilder(t)
		}
		g.pump(true)
		return
	}
	g.pump(false)
}

func randomUID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // non-zero
}

// trackWriter is the SFU's handle on a track.
type trackWriter struct {
	g      *group
	t      *track
	closed atomic.Bool
}

func (w *trackWriter) WriteRTP(p *rtp.Packet) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if w.g.r.stopped.Load() {
		return ErrStopped
	}
	select {
	case w.g.in <- inPacket{
		t:       w.t,
		arrival: w.g.r.now(),
		seq:     p.SequenceNumber,
		ts:      p.Timestamp,
		ssrc:    p.SSRC,
		marker:  p.Marker,
		payload: bytes.Clone(p.Payload),
	}:
	default:
		w.t.dropped.Add(1)
		metricDropped.Inc()
	}
	return nil
}

// WriteSenderReport queues a sender report of the track's stream, in order
// with its packets; it never blocks (a full queue drops it: the next one
// will do).
func (w *trackWriter) WriteSenderReport(sr SenderReport) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if w.g.r.stopped.Load() {
		return ErrStopped
	}
	select {
	case w.g.in <- inPacket{t: w.t, arrival: w.g.r.now(), sr: &sr}:
	default:
	}
	return nil
}

func (w *trackWriter) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	if err := w.g.send(ctrlMsg{close: w.t}); err != nil && err != ErrStopped {
		return err
	}
	return nil
}
