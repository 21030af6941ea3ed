package sfu

// segment is a stretch of a down-track's output taken from one layer: out
// sequence number = in + seqOff, and so on. A new segment starts at every
// simulcast switch, so that the subscriber's stream stays continuous.
type segment struct {
	layer    int
	firstIn  uint16
	firstOut uint16
	seqOff   uint16
	tsOff    uint32
	picOff   uint16 // VP8 picture ID offset, modulo 2^15
	tl0Off   uint8
}

// forwarder is the translation state of one down-track. It is guarded by
// downTrack.mu; the translation is computed once per packet per down-track.
type forwarder struct {
	clock uint32
	ck    codecKind

	started bool
	current int // layer being forwarded, -1 while waiting for a keyframe
	target  int // layer wanted, -1 for none (paused or not bound)

	cur, prev segment
	hasPrev   bool

	lastOut   uint16 // highest sequence number sent
	lastOutTs uint32
	lastOutAt int64 // clock() when lastOut was sent
	lastPic   uint16
	lastTl0   uint8
	hasPic    bool
}

type fwdOut struct {
	seq      uint16
	ts       uint32
	pic      uint16
	tl0      uint8
	munge    bool // rewrite the VP8 picture ID and TL0PICIDX
	switched bool // this packet starts a new segment
	from     int  // layer before the switch
	// waitKey: the packet was refused because it belongs to the target
	// layer, which the down-track can only enter on a keyframe.
	waitKey bool
}

// accept decides whether a packet of layer l goes to the subscriber and
// computes its translated header.
func (f *forwarder) accept(l int, m *packetMeta, now int64) (fwdOut, bool) {
	var o fwdOut
	if f.target < 0 {
		return o, false
	}
	if l != f.current {
		// A layer is entered only where a decoder can start: on a
		// keyframe for video (for audio every packet will do).
		if l != f.target {
			return o, false
		}
		if !m.frame.keyframe {
			o.waitKey = true
			return o, false
		}
		o.switched, o.from = true, f.current
		f.startSegment(l, m, now)
	} else if f.started {
		// Drop a late packet from before the switch. Distances are measured
		// back from the newest packet sent, so this stays right however
		// long the segment lasts (sequence numbers wrap).
		highIn := f.lastOut - f.cur.seqOff
		if behind := highIn - m.seq; behind < 0x8000 && behind > highIn-f.cur.firstIn {
			return o, false
		}
	}
	seg := &f.cur
	o.seq = m.seq + seg.seqOff
	o.ts = m.ts + seg.tsOff
	if f.ck == codecVP8 && m.frame.picOff != 0 {
		o.pic = picAdd(m.frame.picID, seg.picOff, m.frame.picLong)
		o.tl0 = m.frame.tl0 + seg.tl0Off
		o.munge = seg.picOff != 0 || seg.tl0Off != 0
	}
	if !f.started || seqNewer(o.seq, f.lastOut) {
		f.started = true
		f.lastOut, f.lastOutTs, f.lastOutAt = o.seq, o.ts, now
		if f.ck == codecVP8 && m.frame.picOff != 0 {
			f.lastPic, f.hasPic = o.pic, true
			if m.frame.tl0Off != 0 {
				f.lastTl0 = o.tl0
			}
		}
	}
	return o, true
}

// startSegment switches to layer l at packet m.
func (f *forwarder) startSegment(l int, m *packetMeta, now int64) {
	seg := segment{layer: l, firstIn: m.seq}
	if f.started {
		seg.firstOut = f.lastOut + 1
		seg.seqOff = seg.firstOut - m.seq
		// Continue the timestamp from the last packet sent, advanced by the
		// wall-clock time since then (at least one tick).
		ticks := uint32(1)
		if el := now - f.lastOutAt; el > 0 && f.clock > 0 {
			if t := uint64(el) * uint64(f.clock) / 1e9; t > 0 {
				ticks = uint32(t)
			}
		}
		seg.tsOff = f.lastOutTs + ticks - m.ts
		if f.ck == codecVP8 && f.hasPic && m.frame.picOff != 0 {
			mask := uint16(0x7fff)
			if !m.frame.picLong {
				mask = 0x7f
			}
			seg.picOff = (f.lastPic + 1 - m.frame.picID) & mask
			seg.tl0Off = f.lastTl0 + 1 - m.frame.tl0
		}
		f.prev, f.hasPrev = f.cur, true
	} else {
		seg.firstOut = m.seq
	}
	f.cur = seg
	f.current = l
}

// segmentFor finds the segment an outgoing sequence number belongs to, for
// a retransmission.
func (f *forwarder) segmentFor(out uint16) (segment, bool) {
	if !f.started {
		return segment{}, false
	}
	behind := f.lastOut - out
	if behind >= 0x8000 {
		return segment{}, false // not sent yet
	}
	curSpan := f.lastOut - f.cur.firstOut
	if behind <= curSpan {
		return f.cur, true
	}
	// The previous segment only matters shortly after a switch; the cache
	// holds at most videoCacheSlots packets anyway.
	if f.hasPrev && curSpan < videoCacheSlots && behind <= f.lastOut-f.prev.firstOut {
		return f.prev, true
	}
	return segment{}, false
}

// picAdd adds an offset to a VP8 picture ID of 7 or 15 bits.
func picAdd(pic, off uint16, long bool) uint16 {
	if long {
		return (pic + off) & 0x7fff
	}
	return (pic + off) & 0x7f
}
