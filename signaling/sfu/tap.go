package sfu

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
)

// tapQueue decouples a Tap from the forwarding path: the reader copies each
// packet into a pooled buffer and queues it without waiting; the tap's own
// goroutine unmarshals and delivers it.
type tapQueue struct {
	tap  Tap
	log  *slog.Logger
	ch   chan *tapPacket
	lost atomic.Int64
	once sync.Once
	done chan struct{}
}

type tapPacket struct {
	n   int
	sr  *SenderReport // a sender report instead of a packet
	buf [maxPacketSize]byte
}

var tapPool = sync.Pool{New: func() any { return new(tapPacket) }}

func newTapQueue(tap Tap, log *slog.Logger) *tapQueue {
	q := &tapQueue{tap: tap, log: log, ch: make(chan *tapPacket, TapQueue), done: make(chan struct{})}
	go q.run()
	return q
}

// push queues a copy of one packet; it never blocks.
func (q *tapQueue) push(b []byte) {
	if q.ch == nil {
		return
	}
	p := tapPool.Get().(*tapPacket)
	p.n = copy(p.buf[:], b)
	select {
	case q.ch <- p:
	default:
		tapPool.Put(p)
		droppedTap.Inc()
		q.lost.Add(1)
	}
}

// pushSR queues a sender report, in order with the packets; it never
// blocks.
func (q *tapQueue) pushSR(sr SenderReport) {
	if q.ch == nil {
		return
	}
	if _, ok := q.tap.(TapSenderReporter); !ok {
		return
	}
	p := tapPool.Get().(*tapPacket)
	p.sr = &sr
	select {
	case q.ch <- p:
	default:
		p.sr = nil
		tapPool.Put(p)
	}
}

// close stops the queue; the tap is closed after the queued packets.
func (q *tapQueue) close() {
	if q.ch == nil {
		return
	}
	q.once.Do(func() { close(q.ch) })
}

func (q *tapQueue) run() {
	defer close(q.done)
	var pkt rtp.Packet
	reported := int64(0)
	for p := range q.ch {
		if p.sr != nil {
			q.tap.(TapSenderReporter).SenderReport(*p.sr)
			p.sr = nil
			tapPool.Put(p)
			continue
		}
		if err := pkt.Unmarshal(p.buf[:p.n]); err == nil {
			if err := q.tap.WriteRTP(&pkt); err != nil {
				q.log.Error("recording tap refused a packet", "err", err)
			}
		}
		tapPool.Put(p)
		if lost := q.lost.Load(); lost != reported {
			q.log.Error("recording tap too slow: packets dropped", "lost", lost-reported)
			if r, ok := q.tap.(TapLossReporter); ok {
				r.TapLost(int(lost - reported))
			}
			reported = lost
		}
	}
	if lost := q.lost.Load(); lost != reported {
		if r, ok := q.tap.(TapLossReporter); ok {
			r.TapLost(int(lost - reported))
		}
	}
	if err := q.tap.Close(); err != nil {
		q.log.Error("closing recording tap", "err", err)
	}
}
