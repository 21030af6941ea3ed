package sfu

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// downTrack is one published track as sent to one subscriber. It implements
// webrtc.TrackLocal: pion binds it to the subscriber's PeerConnection and
// hands it the SRTP write stream, and from then on writers call forward.
type downTrack struct {
	up   *UpTrack
	peer *Peer // the subscriber

	sender *webrtc.RTPSender
	bound  atomic.Pointer[binding]

	// pinned is the only layer sent (a relay's down-track, one per
	// simulcast layer: Peer.SetRelay), outside the allocator; -1 for an
	// ordinary down-track, whose layer the allocator picks.
	pinned int

	mu  sync.Mutex
	fwd forwarder
	// Subscriber preferences, under mu.
	maxLayer int // -1: no cap
	paused   bool
	closed   bool

	packets atomic.Uint64
	octets  atomic.Uint64

	// RTCP statistics.
	fractionLost atomic.Uint32 // last RR, in 1/256
	rtt          atomic.Int64  // nanoseconds
	lastSRNTP    atomic.Uint32 // middle 32 bits of the NTP time of our last SR
	lastSRAt     atomic.Int64  // clock() when it was sent
}

type binding struct {
	w     webrtc.TrackLocalWriter
	ssrc  uint32
	pt    uint8
	absID uint8
}

func newDownTrack(up *UpTrack, p *Peer) *downTrack {
	dt := &downTrack{up: up, peer: p, maxLayer: -1, pinned: -1}
	dt.fwd = forwarder{current: -1, target: -1, clock: up.codec.ClockRate, ck: up.ck}
	return dt
}

// newPinnedDownTrack is a down-track that sends layer i of up, and only
// it, whatever the subscriber's bandwidth.
func newPinnedDownTrack(up *UpTrack, p *Peer, i int) *downTrack {
	dt := newDownTrack(up, p)
	dt.pinned = i
	return dt
}

// ID implements webrtc.TrackLocal. The down-tracks of one track's layers
// (pinned) are told apart; the subscribe offer groups them by the track's
// ID (MediaLine).
func (dt *downTrack) ID() string {
	if dt.pinned >= 0 {
		return dt.up.id + "-" + strconv.Itoa(dt.pinned)
	}
	return dt.up.id
}

// pinnedRID is the RID of the layer a pinned down-track sends, "" for
// others.
func (dt *downTrack) pinnedRID() string {
	if dt.pinned < 0 || dt.pinned >= len(dt.up.rids) {
		return ""
	}
	return dt.up.rids[dt.pinned]
}

// pinnedTarget is a pinned down-track's target: its layer once that
// layer's stream has arrived, none before, and none while paused or
// capped below it (it never sends another layer).
func (dt *downTrack) pinnedTarget() int {
	if dt.up.layer(dt.pinned) == nil || dt.capLayer(dt.pinned) != dt.pinned {
		return -1
	}
	return dt.pinned
}

// RID implements webrtc.TrackLocal.
func (dt *downTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal: all tracks of one publisher
// connection share a stream, so that browsers synchronise its audio and video.
func (dt *downTrack) StreamID() string { return dt.up.peer.conn.String() }

// Kind implements webrtc.TrackLocal.
func (dt *downTrack) Kind() webrtc.RTPCodecType { return dt.up.kind }

// Bind implements webrtc.TrackLocal. It is called once negotiation with the
// subscriber is complete.
func (dt *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var codec webrtc.RTPCodecParameters
	found := false
	for _, c := range ctx.CodecParameters() {
		if sameCodec(c.RTPCodecCapability, dt.up.codec.RTPCodecCapability) {
			codec, found = c, true
			break
		}
	}
	if !found {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	b := &binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType)}
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == uriAbsSendTime {
			b.absID = uint8(e.ID)
		}
	}
	dt.bound.Store(b)
	dt.peer.allocateTrack(dt)
	return codec, nil
}

// Unbind implements webrtc.TrackLocal.
func (dt *downTrack) Unbind(webrtc.TrackLocalContext) error {
	dt.bound.Store(nil)
	dt.setTarget(-1)
	return nil
}

// close stops forwarding for good.
func (dt *downTrack) close() {
	dt.mu.Lock()
	dt.closed = true
	dt.mu.Unlock()
	dt.bound.Store(nil)
	dt.setTarget(-1)
}

// wantedLayer returns the layer the subscriber's preference allows, capped at top.
func (dt *downTrack) capLayer(l int) int {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	if dt.paused || dt.closed {
		return -1
	}
	if dt.maxLayer >= 0 && l > dt.maxLayer {
		l = dt.maxLayer
	}
	return l
}

// setTarget asks for a layer (-1: none). The switch itself happens in a
// writer, on the target layer's next keyframe. Attach and detach are posted
// under dt.mu so that each layer sees them in the order decided here.
func (dt *downTrack) setTarget(target int) {
	var kf *layer
	dt.mu.Lock()
	f := &dt.fwd
	if dt.closed {
		target = -1
	}
	if f.target == target {
		dt.mu.Unlock()
		return
	}
	old, cur := f.target, f.current
	f.target = target
	if target >= 0 && target != cur {
		if l := dt.up.layer(target); l != nil {
			l.post(layerAction{op: actAttach, dt: dt})
			kf = l
		}
	}
	if old >= 0 && old != cur && old != target {
		if l := dt.up.layer(old); l != nil {
			l.detach(dt)
		}
	}
	if target < 0 && cur >= 0 {
		if l := dt.up.layer(cur); l != nil {
			l.detach(dt)
		}
		f.current = -1
	}
	dt.mu.Unlock()
	if kf != nil && dt.peer.subConnected.Load() {
		// The first request; forward keeps asking until the keyframe
		// reaches this down-track. Before the subscribe connection is up
		// a keyframe could not be forwarded: the request is made when it
		// comes up (Peer.setupPC), not wasted now and then held back by
		// the rate limit.
		kf.requestKeyframe()
	}
	if target < 0 && cur >= 0 && len(dt.up.rids) > 0 && dt.pinned < 0 {
		dt.peer.signal(protocol.TypeLayer, protocol.Layer{TrackID: dt.up.id, Layer: -1})
	}
}

// target returns the current and target layers.
func (dt *downTrack) layers() (current, target int) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	return dt.fwd.current, dt.fwd.target
}

// forward writes one packet of layer l (pkt, described by m) to the
// subscriber and returns the bytes written (0 if the packet is not for this
// subscriber now). pkt may be the reader's own buffer: it is only read.
func (dt *downTrack) forward(l *layer, m *packetMeta, pkt []byte, s *writeScratch, now int64) int {
	b := dt.bound.Load()
	if b == nil || !dt.peer.subConnected.Load() {
		return 0
	}
	dt.mu.Lock()
	out, ok := dt.fwd.accept(l.index, m, now)
	if ok && out.switched && out.from >= 0 && out.from != l.index && out.from != dt.fwd.target {
		if old := dt.up.layer(out.from); old != nil {
			old.detach(dt)
		}
	}
	dt.mu.Unlock()
	if !ok {
		if out.waitKey {
			// Waiting to enter the target layer: keep asking (the layer
			// rate-limits it) until a keyframe gets here. An earlier
			// request may have been answered before this down-track was
			// attached or its connection was up, and browsers send no
			// keyframe unless asked.
			l.requestKeyframe()
		}
		return 0
	}
	if out.switched {
		if out.from >= 0 {
			metricLayerSwitches.Inc()
		}
		if len(dt.up.rids) > 0 && dt.pinned < 0 {
			dt.peer.signal(protocol.TypeLayer, protocol.Layer{TrackID: dt.up.id, Layer: l.index, RID: l.rid})
		}
	}
	payload := pkt[m.payloadOff:m.payloadEnd]
	if out.munge {
		n := copy(s.munged[:], payload)
		payload = s.munged[:n]
		rewriteVP8(payload, &m.frame, out.pic, out.tl0)
	}
	h := &s.hdr
	dt.fillHeader(h, b, m, out.seq, out.ts, s)
	n, err := b.w.WriteRTP(h, payload)
	if err != nil {
		if !errors.Is(err, io.ErrClosedPipe) {
			droppedWrite.Inc()
		}
		return 0
	}
	dt.packets.Add(1)
	dt.octets.Add(uint64(len(payload)))
	return n
}

func (dt *downTrack) fillHeader(h *rtp.Header, b *binding, m *packetMeta, seq uint16, ts uint32, s *writeScratch) {
	h.Version = 2
	h.Padding = m.padding
	h.PaddingSize = m.paddingSize
	h.Marker = m.marker
	h.PayloadType = b.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = b.ssrc
	h.CSRC = nil
	h.Extension = false
	h.ExtensionProfile = 0
	h.Extensions = s.ext[:0]
	if b.absID != 0 {
		// Appends into s.ext: no allocation.
		_ = h.SetExtension(b.absID, s.absTime[:])
	}
}

var retransmitScratch = sync.Pool{New: func() any { return new(writeScratch) }}

// retransmit answers a NACK from the shared packet cache.
func (dt *downTrack) retransmit(seqs []uint16) {
	b := dt.bound.Load()
	if b == nil {
		return
	}
	s := retransmitScratch.Get().(*writeScratch)
	defer retransmitScratch.Put(s)
	// The same time base as deliver's, so that the subscriber's delay-based
	// estimator sees one clock.
	putAbsSendTime(s.absTime[:], clockTime(clock()))
	for _, seq := range seqs {
		dt.mu.Lock()
		seg, ok := dt.fwd.segmentFor(seq)
		dt.mu.Unlock()
		if !ok {
			continue
		}
		l := dt.up.layer(seg.layer)
		if l == nil {
			continue
		}
		m, ok := l.cache.get(seq-seg.seqOff, s.buf[:])
		if !ok {
			continue
		}
		payload := s.buf[m.payloadOff:m.payloadEnd]
		if seg.picOff != 0 || seg.tl0Off != 0 {
			n := copy(s.munged[:], payload)
			payload = s.munged[:n]
			rewriteVP8(payload, &m.frame, picAdd(m.frame.picID, seg.picOff, m.frame.picLong), m.frame.tl0+seg.tl0Off)
		}
		dt.fillHeader(&s.hdr, b, &m, seq, m.ts+seg.tsOff, s)
		if _, err := b.w.WriteRTP(&s.hdr, payload); err != nil {
			return
		}
		dt.packets.Add(1)
		dt.octets.Add(uint64(len(payload)))
		metricForwardedPackets.Inc()
		metricForwardedBytes.Add(float64(len(payload)))
	}
}

// requestKeyframe forwards a subscriber's PLI or FIR to the publisher of the
// layer it receives, or is about to receive (rate-limited there).
func (dt *downTrack) requestKeyframe() {
	cur, target := dt.layers()
	if target >= 0 && target != cur {
		cur = target
	}
	if l := dt.up.layer(cur); l != nil {
		l.requestKeyframe()
	}
}

// rtcpLoop reads the subscriber's RTCP about this track.
func (dt *downTrack) rtcpLoop() {
	defer dt.peer.wg.Done()
	var seqs []uint16
	for {
		pkts, _, err := dt.sender.ReadRTCP()
		if err != nil {
			return
		}
		b := dt.bound.Load()
		for _, pkt := range pkts {
			switch p := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				dt.requestKeyframe()
			case *rtcp.TransportLayerNack:
				seqs = seqs[:0]
				for _, pair := range p.Nacks {
					seqs = append(seqs, pair.PacketID)
					for i := uint16(0); i < 16; i++ {
						if pair.LostPackets&(1<<i) != 0 {
							seqs = append(seqs, pair.PacketID+i+1)
						}
					}
				}
				metricNACK.Add(float64(len(seqs)))
				dt.retransmit(seqs)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				dt.peer.setEstimate(uint64(p.Bitrate))
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					if b != nil && r.SSRC == b.ssrc {
						dt.onReceptionReport(r)
					}
				}
			case *rtcp.SenderReport:
				for _, r := range p.Reports {
					if b != nil && r.SSRC == b.ssrc {
						dt.onReceptionReport(r)
					}
				}
			}
		}
	}
}

func (dt *downTrack) onReceptionReport(r rtcp.ReceptionReport) {
	dt.fractionLost.Store(uint32(r.FractionLost))
	if r.LastSenderReport == 0 || r.LastSenderReport != dt.lastSRNTP.Load() {
		return
	}
	// RTT = now - time of our SR - delay at the receiver (1/65536 s units).
	elapsed := clock() - dt.lastSRAt.Load()
	delay := int64(r.Delay) * int64(time.Second) / 65536
	if rtt := elapsed - delay; rtt >= 0 {
		dt.rtt.Store(rtt)
	}
}

// senderReport builds this down-track's SR at clock() time mono, in the
// publisher's NTP clock so that the subscriber can synchronise the
// publisher's audio and video.
func (dt *downTrack) senderReport(mono int64) *rtcp.SenderReport {
	b := dt.bound.Load()
	if b == nil || dt.packets.Load() == 0 {
		return nil
	}
	dt.mu.Lock()
	seg, started := dt.fwd.cur, dt.fwd.started
	dt.mu.Unlock()
	if !started {
		return nil
	}
	l := dt.up.layer(seg.layer)
	if l == nil {
		return nil
	}
	sr := l.senderReport()
	if !sr.valid {
		return nil
	}
	elapsed := time.Duration(mono - sr.arrival)
	ntp := ntpAdd(sr.ntp, elapsed)
	rtpTime := sr.rtp + uint32(int64(elapsed)*int64(l.clock)/int64(time.Second)) + seg.tsOff
	dt.lastSRNTP.Store(uint32(ntp >> 16))
	dt.lastSRAt.Store(mono)
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     ntp,
		RTPTime:     rtpTime,
		PacketCount: uint32(dt.packets.Load()),
		OctetCount:  uint32(dt.octets.Load()),
	}
}

// ntpAdd adds a duration to a 64-bit NTP timestamp (32.32 fixed point).
// Whole seconds and the fraction are converted apart: d*2^32 in one product
// overflows 64 bits beyond about 4.29 s, and Chrome's audio sender reports
// come about every 5 s. A negative d (a clock step) is treated as 0.
func ntpAdd(ntp uint64, d time.Duration) uint64 {
	if d <= 0 {
		return ntp
	}
	sec := uint64(d / time.Second)
	frac := uint64(d % time.Second)
	return ntp + sec<<32 + frac<<32/uint64(time.Second)
}

// DownTrackStats describes what one subscriber receives of one track.
type DownTrackStats struct {
	TrackID      string
	Packets      uint64
	Bytes        uint64
	Layer        int // current simulcast layer, -1 when none
	TargetLayer  int
	FractionLost float64
	RTT          time.Duration
}

func (dt *downTrack) stats() DownTrackStats {
	cur, target := dt.layers()
	return DownTrackStats{
		TrackID:      dt.up.id,
		Packets:      dt.packets.Load(),
		Bytes:        dt.octets.Load(),
		Layer:        cur,
		TargetLayer:  target,
		FractionLost: float64(dt.fractionLost.Load()) / 256,
		RTT:          time.Duration(dt.rtt.Load()),
	}
}
