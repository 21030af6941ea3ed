package sfu

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// writer is a goroutine writing one layer's packets to a group of
// down-tracks. The layer's reader hands it sequence numbers through a bounded
// queue and never waits for it: when the queue is full the packet is dropped
// for this group (and counted), and the subscribers repair it by NACK from
// the shared cache. The list of down-tracks is copied on write by the
// reader, so the writer reads it without a lock.
//
// A writer goroutine belongs to its layer: the layer's reader starts it,
// stops it and, when the reader ends, waits for it (layer.writersWG).
//
// The first writer of a layer is inline: the reader itself writes to its
// down-tracks after handing the packet to the other writers. A room of a
// few participants then needs no goroutine hand-off per packet at all, and
// a large one saves one.
type writer struct {
	l      *layer
	ch     chan uint16 // nil for the inline writer
	snap   atomic.Pointer[[]*downTrack]
	inline *writeScratch

	// Owned by the reader goroutine.
	tracks  []*downTrack
	stopped bool
}

func newWriter(l *layer, inline bool) *writer {
	w := &writer{l: l}
	empty := []*downTrack{}
	w.snap.Store(&empty)
	if inline {
		w.inline = new(writeScratch)
		return w
	}
	w.ch = make(chan uint16, writerQueue)
	l.writersWG.Add(1)
	go w.run()
	return w
}

func (w *writer) publish() {
	s := make([]*downTrack, len(w.tracks))
	copy(s, w.tracks)
	w.snap.Store(&s)
}

func (w *writer) add(dt *downTrack) {
	w.tracks = append(w.tracks, dt)
	w.publish()
}

// remove drops dt and returns how many down-tracks remain.
func (w *writer) remove(dt *downTrack) int {
	for i, x := range w.tracks {
		if x == dt {
			w.tracks = append(w.tracks[:i:i], w.tracks[i+1:]...)
			break
		}
	}
	w.publish()
	return len(w.tracks)
}

// push queues a packet for a goroutine writer without blocking. The inline
// writer has no queue: the reader calls its deliver directly.
func (w *writer) push(seq uint16) {
	select {
	case w.ch <- seq:
	default:
		droppedQueueFull.Add(float64(len(w.tracks)))
	}
}

func (w *writer) stop() {
	if !w.stopped {
		w.stopped = true
		if w.ch != nil {
			close(w.ch)
		}
	}
}

// writeScratch is a writer's reusable state, so that the per-packet path
// allocates nothing.
type writeScratch struct {
	buf     [maxPacketSize]byte
	munged  [maxPacketSize]byte
	hdr     rtp.Header
	ext     [1]rtp.Extension
	absTime [3]byte
}

func (w *writer) run() {
	defer w.l.writersWG.Done()
	s := new(writeScratch)
	for seq := range w.ch {
		// The reader has moved on: take the packet from the cache.
		meta, ok := w.l.cache.get(seq, s.buf[:])
		if !ok {
			continue
		}
		w.deliver(&meta, s.buf[:meta.size], clock(), s)
	}
}

// deliver writes one packet (pkt, described by m) to every down-track of
// the writer; now is clock() at delivery. The inline writer is handed the
// reader's own buffer, so neither deliver nor forward may write into pkt
// (the tap copies it afterwards): rewrites go to s.munged.
func (w *writer) deliver(m *packetMeta, pkt []byte, now int64, s *writeScratch) {
	tracks := *w.snap.Load()
	putAbsSendTime(s.absTime[:], clockTime(now))
	// A batch pays for a copy of each datagram and two lock rounds; it only
	// saves system calls when this round sends more than one datagram.
	bc := w.l.up.room.sfu.batch
	if len(tracks) < 2 {
		bc = nil
	}
	if bc != nil {
		bc.begin()
	}
	var packets, bytes int
	for _, dt := range tracks {
		if n := dt.forward(w.l, m, pkt, s, now); n > 0 {
			packets++
			bytes += n
		}
	}
	if bc != nil {
		bc.end()
	}
	if packets > 0 {
		metricForwardedPackets.Add(float64(packets))
		metricForwardedBytes.Add(float64(bytes))
	}
}

// putAbsSendTime writes the abs-send-time header extension value: seconds in
// 6.18 fixed point, modulo 64 s.
func putAbsSendTime(b []byte, t time.Time) {
	sec := uint64(t.Unix())
	frac := uint64(t.Nanosecond())
	v := ((sec & 0x3f) << 18) | (frac<<18)/uint64(time.Second)
	b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
}
