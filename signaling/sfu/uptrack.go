package sfu

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// Tuning of the forwarding path.
const (
	writerQueue        = 128                    // packets a writer may lag behind its reader
	minTracksPerWriter = 8                      // down-tracks per writer goroutine, at least
	pliInterval        = 500 * time.Millisecond // at most one PLI per layer per interval
	videoCacheSlots    = 512
	audioCacheSlots    = 128
)

// UpTrack is one published track: a camera, microphone or screen of one
// peer. Without simulcast it has one layer; with simulcast one per RID.
type UpTrack struct {
	id       string
	room     *Room
	peer     *Peer
	source   Source
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	ck       codecKind
	mid      string
	rids     []string // simulcast layers, lowest first; nil without simulcast
	receiver *webrtc.RTPReceiver
	levelExt uint8 // negotiated ID of the audio level extension, 0 if none

	allowed atomic.Bool // MayPublish, as last evaluated by the room
	// relayed: the track arrives from the room's home node (a ghost's);
	// each of its layers counts in chamber_cascade_tracks{direction="in"}
	// until it ends.
	relayed bool

	mu     sync.Mutex
	layers []*layer // index = layer; nil until that stream's first packet
	downs  map[*downTrack]struct{}
	ended  bool
	tap    *tapQueue
	tapGen int // bumps each time recording is switched, so a late OpenTap is discarded

	level levelMeter

	// wg counts the track's goroutines: each layer's reader and RTCP
	// reader, and the one opening a recording tap. The publishing Peer
	// waits for them (wait) when it closes.
	wg sync.WaitGroup
}

// start runs a new layer's reader; the publishing peer's lock is held
// (so that Close, which waits, cannot have begun).
func (t *UpTrack) start(l *layer) {
	t.wg.Add(1)
	go l.readLoop()
}

// wait returns when the track's goroutines have ended (its readers end
// when the publish PeerConnection closes).
func (t *UpTrack) wait() { t.wg.Wait() }

func newUpTrack(p *Peer, mid string, src Source, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, rids []string) *UpTrack {
	n := len(rids)
	if n == 0 {
		n = 1
	}
	t := &UpTrack{
		id:       uuid.NewString(),
		room:     p.room,
		peer:     p,
		source:   src,
		kind:     remote.Kind(),
		codec:    remote.Codec(),
		ck:       kindOfCodec(remote.Codec().MimeType),
		mid:      mid,
		rids:     rids,
		receiver: recv,
		layers:   make([]*layer, n),
		downs:    make(map[*downTrack]struct{}),
	}
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == uriAudioLevel {
			t.levelExt = uint8(e.ID)
		}
	}
	return t
}

// ID returns the track's ID, as used in the protocol.
func (t *UpTrack) ID() string { return t.id }

func (t *UpTrack) describe() protocol.Track {
	return protocol.Track{
		ID:            t.id,
		ParticipantID: t.peer.participant.String(),
		ConnectionID:  t.peer.conn.String(),
		Source:        string(t.source),
		Kind:          t.kind.String(),
		Codec:         t.codec.MimeType,
		Layers:        t.rids,
	}
}

func (t *UpTrack) info(l *layer) TrackInfo {
	info := TrackInfo{
		TrackID:         t.id,
		ParticipantID:   t.peer.participant,
		ParticipantName: t.peer.name,
		ConnectionID:    t.peer.conn,
		StreamID:        t.peer.conn.String(),
		Source:          t.source,
		Kind:            t.kind,
		Codec:           t.codec,
	}
	if l != nil {
		info.RID = l.rid
		if t.kind == webrtc.RTPCodecTypeVideo {
			info.RequestKeyframe = l.requestKeyframe
		}
	}
	return info
}

// layerIndex maps a RID to a layer, or -1 for an unknown RID.
func (t *UpTrack) layerIndex(rid string) int {
	if len(t.rids) == 0 {
		if rid == "" {
			return 0
		}
		return -1
	}
	for i, r := range t.rids {
		if r == rid {
			return i
		}
	}
	return -1
}

// addLayer starts reading one incoming stream. It returns false if the
// stream has no place in this track.
func (t *UpTrack) addLayer(remote *webrtc.TrackRemote) (*layer, bool) {
	return t.addLayerAs(remote, remote.RID(), nil)
}

// addLayerAs starts reading one incoming stream as the layer rid. A
// relayed layer arrives on an m-line of its own, not as a RID of the
// track's m-line: recv is then that m-line's receiver (nil: the track's).
func (t *UpTrack) addLayerAs(remote *webrtc.TrackRemote, rid string, recv *webrtc.RTPReceiver) (*layer, bool) {
	i := t.layerIndex(rid)
	if i < 0 {
		return nil, false
	}
	slots := videoCacheSlots
	if t.kind == webrtc.RTPCodecTypeAudio {
		slots = audioCacheSlots
	}
	l := &layer{
		up:     t,
		index:  i,
		rid:    rid,
		remote: remote,
		recv:   recv,
		ssrc:   uint32(remote.SSRC()),
		clock:  remote.Codec().ClockRate,
		cache:  newPacketCache(slots),
		where:  make(map[*downTrack]*writer),
		done:   make(chan struct{}),
	}
	return l, t.install(l)
}

// install puts a new layer in its place; false if the track has ended or
// the place is taken.
func (t *UpTrack) install(l *layer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.layers[l.index] != nil {
		return false
	}
	t.layers[l.index] = l
	return true
}

// isEnded reports whether every layer of the track has ended.
func (t *UpTrack) isEnded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended
}

// layer returns layer i, or nil.
func (t *UpTrack) layer(i int) *layer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.layers) {
		return nil
	}
	return t.layers[i]
}

// layerEnded is called by a reader when its stream ends; when the last one
// ends, the track is unpublished.
func (t *UpTrack) layerEnded(l *layer) {
	t.mu.Lock()
	live := 0
	for _, x := range t.layers {
		if x != nil && x != l && !x.isDone() {
			live++
		}
	}
	last := live == 0 && !t.ended
	if last {
		t.ended = true
	}
	t.mu.Unlock()
	if t.relayed {
		cascadeIn.Dec() // counted per layer (AddRelayedTrack)
	}
	if last {
		t.room.unpublish(t)
		t.peer.trackEnded(t)
	}
}

func (t *UpTrack) addDown(dt *downTrack) {
	t.mu.Lock()
	t.downs[dt] = struct{}{}
	t.mu.Unlock()
}

func (t *UpTrack) removeDown(dt *downTrack) {
	t.mu.Lock()
	delete(t.downs, dt)
	t.mu.Unlock()
}

// bitrates returns the measured bitrate of each layer at clock time now (0
// for a layer that is absent or has not sent for a second).
func (t *UpTrack) bitrates(now int64, dst []uint64) []uint64 {
	// Copy the layer pointers, not just the slice header: addLayer fills
	// the elements under t.mu while this runs.
	var buf [4]*layer
	t.mu.Lock()
	layers := append(buf[:0], t.layers...)
	t.mu.Unlock()
	for _, l := range layers {
		var br uint64
		if l != nil && !l.isDone() && now-l.lastPacket.Load() < int64(time.Second) {
			br = l.bitrate.Load()
			if br == 0 {
				br = 1 // live but not yet measured
			}
		}
		dst = append(dst, br)
	}
	return dst
}

// topLayer returns the highest layer present.
func (t *UpTrack) topLayer() *layer {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.layers) - 1; i >= 0; i-- {
		if t.layers[i] != nil && !t.layers[i].isDone() {
			return t.layers[i]
		}
	}
	return nil
}

// setRecording opens or closes the track's tap. OpenTap may do I/O, so it
// runs on a goroutine of its own, which the track owns (t.wg); the room
// lock is held by the caller.
func (t *UpTrack) setRecording(on bool, rec Tapper) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on == (t.tap != nil) || (on && t.ended) {
		return
	}
	t.tapGen++
	gen := t.tapGen
	if !on {
		tq := t.tap
		t.tap = nil
		for _, l := range t.layers {
			if l != nil {
				l.post(layerAction{op: actSetTap, tap: nil, oldTap: tq})
			}
		}
		return
	}
	// A placeholder so that a second Reconcile does not open a second tap.
	placeholder := &tapQueue{}
	t.tap = placeholder
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		top := t.topLayer()
		tap, err := rec.OpenTap(t.info(top))
		if err != nil {
			t.room.log.Error("opening recording tap failed", "track", t.id, "err", err)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil || tap == nil || t.tapGen != gen || t.ended || top == nil {
			if t.tap == placeholder && t.tapGen == gen {
				t.tap = nil
			}
			if tap != nil {
				_ = tap.Close()
			}
			return
		}
		tq := newTapQueue(tap, t.room.log.With("track", t.id))
		t.tap = tq
		// A recording must start on a keyframe: the reader asks for one
		// from the packet that installs the tap until one arrives
		// (applyActions sets wantKeyframe), so no request is made here.
		top.post(layerAction{op: actSetTap, tap: tq})
	}()
}

// layer is one incoming RTP stream (one simulcast layer, or the whole track).
type layer struct {
	up     *UpTrack
	index  int
	rid    string
	remote *webrtc.TrackRemote
	recv   *webrtc.RTPReceiver // a relayed layer's own receiver; nil: the track's
	ssrc   uint32
	clock  uint32
	cache  *packetCache

	actMu   sync.Mutex
	acts    []layerAction
	hasActs atomic.Bool

	// wantKeyframe makes the reader ask for a keyframe (rate-limited) on
	// every packet until one arrives: set by the reader itself when it
	// installs a recording tap, so the keyframe cannot pass before the tap
	// is there. Down-tracks ask for their own (downTrack.forward).
	wantKeyframe atomic.Bool
	lastPLI      atomic.Int64
	bitrate      atomic.Uint64 // bit/s, measured over about a second
	lastPacket   atomic.Int64  // clock() of the last packet

	srMu sync.Mutex
	sr   senderReport
	// srSeq counts the sender reports received; the reader passes a new
	// one to the recording tap before its next packet.
	srSeq atomic.Uint64

	done chan struct{}
	// writersWG counts the layer's writer goroutines; the reader waits
	// for them when it ends.
	writersWG sync.WaitGroup

	// Owned by the reader goroutine.
	writers []*writer
	where   map[*downTrack]*writer
	tap     *tapQueue
	tapSR   uint64 // srSeq of the last sender report handed to tap
	// relaySeq is the highest sequence number received on a relayed
	// layer (relayCount).
	relaySeq  uint16
	relaySeen bool
}

type senderReport struct {
	valid   bool
	ntp     uint64 // publisher's NTP time
	rtp     uint32 // matching RTP timestamp
	arrival int64  // clock() when received
}

type layerOp uint8

const (
	actAttach layerOp = iota
	actDetach
	actSetTap
)

type layerAction struct {
	op     layerOp
	dt     *downTrack
	tap    *tapQueue
	oldTap *tapQueue
}

func (l *layer) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// post queues an action for the reader goroutine, which owns the writers.
func (l *layer) post(a layerAction) {
	l.actMu.Lock()
	if l.isDone() {
		l.actMu.Unlock()
		if a.op == actSetTap {
			if a.tap != nil {
				a.tap.close()
			}
			if a.oldTap != nil {
				a.oldTap.close()
			}
		}
		return
	}
	l.acts = append(l.acts, a)
	l.hasActs.Store(true)
	l.actMu.Unlock()
}

func (l *layer) detach(dt *downTrack) { l.post(layerAction{op: actDetach, dt: dt}) }

// requestKeyframe sends a PLI to the publisher unless one was sent recently.
func (l *layer) requestKeyframe() {
	if l.up.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := clock()
	last := l.lastPLI.Load()
	// last == 0: never asked (clock starts at 0 with the process).
	if since(now, last) < pliInterval || !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	if pc := l.up.peer.publishPC(); pc != nil {
		metricPLI.Inc()
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
	}
}

func (l *layer) applyActions() {
	l.actMu.Lock()
	acts := l.acts
	l.acts = nil
	l.hasActs.Store(false)
	l.actMu.Unlock()
	for _, a := range acts {
		switch a.op {
		case actAttach:
			if _, ok := l.where[a.dt]; ok {
				continue
			}
			l.where[a.dt] = l.writerFor()
			l.where[a.dt].add(a.dt)
		case actDetach:
			w, ok := l.where[a.dt]
			if !ok {
				continue
			}
			delete(l.where, a.dt)
			if w.remove(a.dt) == 0 && w.inline == nil {
				w.stop()
				for i, x := range l.writers {
					if x == w {
						l.writers = append(l.writers[:i], l.writers[i+1:]...)
						break
					}
				}
			}
		case actSetTap:
			if a.oldTap != nil && a.oldTap == l.tap {
				l.tap = nil
				a.oldTap.close()
			}
			if a.tap != nil {
				if l.tap != nil {
					l.tap.close()
				}
				l.tap = a.tap
				l.tapSR = 0 // the latest report goes to the new tap first
				if l.up.kind == webrtc.RTPCodecTypeVideo {
					l.wantKeyframe.Store(true)
				}
			}
		}
	}
}

// writerFor picks a writer with room for one more down-track, or starts one.
// Writers serve about sqrt(n) down-tracks each (at least minTracksPerWriter):
// few enough goroutine hand-offs per packet, enough parallelism for a burst.
func (l *layer) writerFor() *writer {
	n := len(l.where) + 1
	per := minTracksPerWriter
	for per*per < n {
		per++
	}
	for _, w := range l.writers {
		if len(w.tracks) < per {
			return w
		}
	}
	w := newWriter(l, len(l.writers) == 0)
	l.writers = append(l.writers, w)
	return w
}

// readLoop is the one goroutine reading this stream. It stores each packet
// in the cache and hands its sequence number to every writer.
func (l *layer) readLoop() {
	defer l.up.wg.Done()
	defer l.finish()
	l.up.wg.Add(1)
	go l.rtcpLoop()

	isVideo := l.up.kind == webrtc.RTPCodecTypeVideo
	buf := make([]byte, maxPacketSize)
	var hdr rtp.Header
	var meta packetMeta
	var rate bitrateWindow
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		// Actions posted while Read waited apply to the packet that ended
		// the wait: a down-track attached together with a keyframe request
		// must not miss the keyframe, which is often the very next packet
		// (a browser encodes it as its next frame).
		if l.hasActs.Load() {
			l.applyActions()
		}
		now := clock()
		if !l.inspect(buf[:n], now, &hdr, &meta) {
			continue
		}
		if br, ok := rate.add(n, now); ok {
			l.bitrate.Store(br)
		}
		if l.up.relayed {
			l.relayCount(n, meta.seq)
		}
		l.lastPacket.Store(now)

		if !l.cache.store(&meta, buf[:n]) {
			droppedLate.Inc()
			continue
		}
		if isVideo && meta.frame.keyframe {
			l.wantKeyframe.Store(false)
		}
		l.fanOut(&meta, buf[:n], now)
		if isVideo && l.wantKeyframe.Load() {
			l.requestKeyframe()
		}
	}
}

// inspect parses one received packet into meta (header, padding, payload
// bounds, frame) and feeds the audio level meter; false drops the packet.
func (l *layer) inspect(pkt []byte, now int64, hdr *rtp.Header, meta *packetMeta) bool {
	n := len(pkt)
	hl, err := hdr.Unmarshal(pkt)
	if err != nil {
		return false
	}
	end := n
	*meta = packetMeta{
		seq:        hdr.SequenceNumber,
		ts:         hdr.Timestamp,
		marker:     hdr.Marker,
		payloadOff: uint16(hl),
		arrival:    now,
	}
	if hdr.Padding {
		if n <= hl {
			return false
		}
		ps := int(pkt[n-1])
		if ps == 0 || hl+ps > n {
			return false
		}
		meta.padding = true
		meta.paddingSize = uint8(ps)
		end -= ps
	}
	meta.payloadEnd = uint16(end)
	meta.frame = parseFrame(l.up.ck, pkt[hl:end])
	if ext := l.up.levelExt; ext != 0 {
		if e := hdr.GetExtension(ext); len(e) > 0 {
			l.up.level.add(127 - int(e[0]&0x7f))
		}
	}
	return true
}

// fanOut hands a stored packet to the writers and the recording tap.
// writers[0] is the inline writer (writerFor creates it first and
// applyActions never removes it): the packet goes to the others first,
// then to the inline writer's down-tracks from pkt itself, which deliver
// leaves untouched for the tap.
func (l *layer) fanOut(meta *packetMeta, pkt []byte, now int64) {
	if len(l.writers) > 0 {
		for _, w := range l.writers[1:] {
			w.push(meta.seq)
		}
		if in := l.writers[0]; len(in.tracks) > 0 {
			in.deliver(meta, pkt, now, in.inline)
		}
	}
	if l.tap != nil {
		if seq := l.srSeq.Load(); seq != l.tapSR {
			l.tapSR = seq
			if sr := l.senderReport(); sr.valid {
				l.tap.pushSR(SenderReport{SSRC: l.ssrc, NTPTime: sr.ntp, RTPTime: sr.rtp})
			}
		}
		l.tap.push(pkt)
	}
}

// finish runs when the reader ends: nothing more is posted to the layer,
// its writers are stopped and waited for, its tap closed, and the track
// told.
func (l *layer) finish() {
	l.actMu.Lock()
	close(l.done)
	acts := l.acts
	l.acts = nil
	l.actMu.Unlock()
	for _, a := range acts {
		if a.op == actSetTap && a.tap != nil {
			a.tap.close()
		}
	}
	for _, w := range l.writers {
		w.stop()
	}
	l.writers = nil
	l.writersWG.Wait()
	if l.tap != nil {
		l.tap.close()
		l.tap = nil
	}
	l.up.layerEnded(l)
}

// bitrateWindow measures a stream's bitrate over windows of about a second.
type bitrateWindow struct {
	start int64
	bytes uint64
}

// add counts n bytes received at now and, when a window closes, returns
// its bitrate.
func (w *bitrateWindow) add(n int, now int64) (bps uint64, ok bool) {
	w.bytes += uint64(n)
	if now-w.start < int64(time.Second) {
		return 0, false
	}
	if w.start != 0 {
		bps, ok = w.bytes*8*uint64(time.Second)/uint64(now-w.start), true
	}
	w.start, w.bytes = now, 0
	return bps, ok
}

// rtcpLoop reads the publisher's RTCP for this stream (sender reports, for
// the down-tracks' own sender reports). Reading also lets pion's receive-side
// interceptors see the reports.
func (l *layer) rtcpLoop() {
	defer l.up.wg.Done()
	recv, own := l.up.receiver, l.recv != nil
	if own {
		recv = l.recv
	}
	for {
		var pkts []rtcp.Packet
		var err error
		if l.rid != "" && !own {
			pkts, _, err = recv.ReadSimulcastRTCP(l.rid)
		} else {
			pkts, _, err = recv.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == l.ssrc {
				l.srMu.Lock()
				l.sr = senderReport{valid: true, ntp: sr.NTPTime, rtp: sr.RTPTime, arrival: clock()}
				l.srMu.Unlock()
				l.srSeq.Add(1)
			}
		}
	}
}

func (l *layer) senderReport() senderReport {
	l.srMu.Lock()
	defer l.srMu.Unlock()
	return l.sr
}

// levelMeter accumulates audio levels (0 silence … 127 loudest) between two
// looks of the speaker detector, without locks on the reader's path.
type levelMeter struct {
	sum   atomic.Int64
	count atomic.Int64
}

func (m *levelMeter) add(v int) {
	m.sum.Add(int64(v))
	m.count.Add(1)
}

// take returns the mean level since the last call, or -1 without samples.
func (m *levelMeter) take() int {
	n := m.count.Swap(0)
	s := m.sum.Swap(0)
	if n <= 0 {
		return -1
	}
	return int(s / n)
}

// orderRIDs sorts simulcast RIDs lowest layer first. Clients should use
// q/h/f (quarter, half, full) — docs/signaling.md — but l/m/h and
// low/mid/high are understood too; otherwise the offer's order is kept.
func orderRIDs(rids []string) []string {
	if len(rids) < 2 {
		return rids
	}
	sets := []map[string]int{
		{"q": 0, "h": 1, "f": 2},
		{"l": 0, "m": 1, "h": 2},
		{"low": 0, "mid": 1, "high": 2},
		{"0": 0, "1": 1, "2": 2},
	}
	for _, rank := range sets {
		ok := true
		for _, r := range rids {
			if _, in := rank[strings.ToLower(r)]; !in {
				ok = false
				break
			}
		}
		if ok {
			out := append([]string(nil), rids...)
			sort.SliceStable(out, func(i, j int) bool { return rank[strings.ToLower(out[i])] < rank[strings.ToLower(out[j])] })
			return out
		}
	}
	return rids
}
