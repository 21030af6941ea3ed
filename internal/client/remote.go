package client

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Packet is a received RTP packet with what the client learnt from it.
type Packet struct {
	rtp.Packet
	// Synthetic is true when the payload carries a trailer written by a
	// Chamber client; Layer and SentAt are then meaningful.
	Synthetic bool
	Layer     int
	SentAt    time.Time
	Received  time.Time
}

// RemoteTrack is a track received from the server.
type RemoteTrack struct {
	ID            string // the server's track ID
	ParticipantID string
	Source        string
	Kind          webrtc.RTPCodecType
	Mid           string
	SSRC          uint32
	Codec         string

	remote *webrtc.TrackRemote
	done   chan struct{}

	mu     sync.Mutex
	stats  TrackStats
	seen   seqWindow
	jitter jitter
}

// TrackStats are per-track reception statistics.
type TrackStats struct {
	Packets      uint64 // distinct packets received
	Duplicates   uint64
	Bytes        uint64
	FirstSeq     uint16
	HighestSeq   uint32 // extended
	FirstIsStart bool   // video: the first packet started a keyframe
	// FirstAt is when the first packet arrived (zero before).
	FirstAt time.Time
	// Latency is a histogram of send-to-receive times of synthetic packets.
	Latency Histogram
	// Jitter is the RFC 3550 interarrival jitter of synthetic packets: the
	// variation of their transit time from one packet to the next,
	// smoothed by 1/16. It is measured against the send time each payload
	// carries rather than the RTP timestamp, so that a video frame's
	// packets, which share one timestamp but leave paced, add no jitter of
	// their own: what remains is what the path and the server added.
	Jitter time.Duration
	// JitterSum and JitterSamples add up the same transit-time variations
	// unsmoothed: the difference of two snapshots gives the mean jitter
	// over a window.
	JitterSum     time.Duration
	JitterSamples uint64
	// Layers counts synthetic packets by publisher layer.
	Layers [4]uint64
	// Layer is the publisher layer of the latest synthetic packet: which
	// simulcast layer the server forwards now.
	Layer int
}

// Expected returns how many packets the sequence numbers span.
func (s *TrackStats) Expected() uint64 {
	if s.Packets == 0 {
		return 0
	}
	return uint64(s.HighestSeq) - uint64(s.FirstSeq) + 1
}

// Lost returns expected minus received packets (never negative).
func (s *TrackStats) Lost() uint64 {
	e := s.Expected()
	if s.Packets >= e {
		return 0
	}
	return e - s.Packets
}

// Stats returns a copy of the track's statistics.
func (t *RemoteTrack) Stats() TrackStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// RemoteTracks returns the tracks received so far.
func (c *Client) RemoteTracks() []*RemoteTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*RemoteTrack(nil), c.remote...)
}

func (c *Client) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	mid := ""
	if tr := recv.RTPTransceiver(); tr != nil {
		mid = tr.Mid()
	}
	c.mu.Lock()
	line := c.subLines[mid]
	t := &RemoteTrack{
		ID: line.TrackID, ParticipantID: line.ParticipantID, Source: line.Source,
		Kind: remote.Kind(), Mid: mid, SSRC: uint32(remote.SSRC()), Codec: remote.Codec().MimeType,
		remote: remote, done: make(chan struct{}),
	}
	c.remote = append(c.remote, t)
	c.mu.Unlock()
	if c.cfg.OnTrack != nil {
		c.cfg.OnTrack(t)
	}
	go c.readTrack(t)
}

// trailerMagic marks the last bytes of a synthetic payload.
const (
	trailerMagic = 0x43484d42 // "CHMB"
	trailerSize  = 16
)

// putTrailer writes the synthetic trailer at the end of p.
func putTrailer(p []byte, layer int, sent time.Time) {
	t := p[len(p)-trailerSize:]
	binary.BigEndian.PutUint32(t[0:], trailerMagic)
	t[4] = byte(layer)
	t[5], t[6], t[7] = 0, 0, 0
	binary.BigEndian.PutUint64(t[8:], uint64(sent.UnixNano()))
}

func readTrailer(p []byte) (layer int, sent time.Time, ok bool) {
	if len(p) < trailerSize {
		return 0, time.Time{}, false
	}
	t := p[len(p)-trailerSize:]
	if binary.BigEndian.Uint32(t[0:]) != trailerMagic {
		return 0, time.Time{}, false
	}
	return int(t[4]), time.Unix(0, int64(binary.BigEndian.Uint64(t[8:]))), true
}

func (c *Client) readTrack(t *RemoteTrack) {
	defer close(t.done)
	buf := make([]byte, 1600)
	var p Packet
	first := true
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if c.firstRTP.Load() == 0 {
			c.firstRTP.CompareAndSwap(0, int64(now.Sub(c.started)))
		}
		p.Received = now
		p.Layer, p.SentAt, p.Synthetic = readTrailer(p.Payload)
		t.mu.Lock()
		st := &t.stats
		if first {
			first = false
			st.FirstSeq = p.SequenceNumber
			st.HighestSeq = uint32(p.SequenceNumber)
			st.FirstIsStart = t.Kind != webrtc.RTPCodecTypeVideo || keyframeStart(t.Codec, p.Payload)
			st.FirstAt = now
			t.seen.reset(p.SequenceNumber)
		}
		ext, dup := t.seen.add(p.SequenceNumber, st.HighestSeq)
		if dup {
			st.Duplicates++
		} else {
			st.Packets++
			st.Bytes += uint64(n)
			if ext > st.HighestSeq {
				st.HighestSeq = ext
			}
			if p.Synthetic {
				st.Latency.Add(now.Sub(p.SentAt))
				if d, ok := t.jitter.add(now.Sub(p.SentAt)); ok {
					st.JitterSum += d
					st.JitterSamples++
					st.Jitter = t.jitter.j
				}
				if p.Layer >= 0 && p.Layer < len(st.Layers) {
					st.Layers[p.Layer]++
				}
				if ext == st.HighestSeq {
					st.Layer = p.Layer
				}
			}
		}
		t.mu.Unlock()
		if c.cfg.OnRTP != nil && !dup {
			c.cfg.OnRTP(t, &p)
		}
	}
}

// keyframeStart reports whether a payload starts a keyframe.
//
// The SFU has its own parser (signaling/sfu/codec.go, parseFrame). This one
// is kept apart on purpose, written independently, as the tests' oracle:
// what the client calls a keyframe start must not come from the code under
// test. Both are tested on the same cases, STAP-A aggregates included.
func keyframeStart(codec string, p []byte) bool {
	if strings.EqualFold(codec, webrtc.MimeTypeH264) {
		return h264KeyframeStart(p)
	}
	return vp8KeyframeStart(p)
}

// h264KeyframeStart: an IDR slice or SPS, alone, in a STAP-A or starting an FU-A.
func h264KeyframeStart(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case 5, 7:
		return true
	case 24:
		return stapAHasKeyframe(p[1:])
	case 28:
		return p[1]&0x80 != 0 && (p[1]&0x1f == 5 || p[1]&0x1f == 7)
	}
	return false
}

// stapAHasKeyframe looks through every NAL unit of a STAP-A (RFC 6184
// §5.7.1: 16-bit size, then the unit) for an IDR slice or SPS: encoders
// often put an AUD or SEI first.
func stapAHasKeyframe(p []byte) bool {
	for len(p) > 2 {
		n := int(p[0])<<8 | int(p[1])
		p = p[2:]
		if n == 0 || n > len(p) {
			return false
		}
		if t := p[0] & 0x1f; t == 5 || t == 7 {
			return true
		}
		p = p[n:]
	}
	return false
}

// vp8KeyframeStart reports whether a VP8 payload starts a keyframe.
func vp8KeyframeStart(p []byte) bool {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return false
	}
	i := 1
	if p[0]&0x80 != 0 {
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 {
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 {
			i++
		}
		if x&0x30 != 0 {
			i++
		}
	}
	return len(p) > i && p[i]&0x01 == 0
}

// seqWindow detects duplicates among the last 1024 sequence numbers and
// extends sequence numbers to 32 bits.
type seqWindow struct {
	bits [1024 / 64]uint64
	high uint32
}

func (w *seqWindow) reset(seq uint16) {
	w.bits = [len(w.bits)]uint64{}
	w.high = uint32(seq)
}

// add records seq and returns its extended value and whether it was seen before.
func (w *seqWindow) add(seq uint16, _ uint32) (uint32, bool) {
	diff := int32(int16(seq - uint16(w.high)))
	ext := uint32(int64(w.high) + int64(diff))
	if diff > 0 {
		// Clear the bits of the sequence numbers skipped over.
		for i := uint32(1); i <= uint32(diff) && i <= 1024; i++ {
			s := (w.high + i) % 1024
			w.bits[s/64] &^= 1 << (s % 64)
		}
		w.high = ext
	} else if -diff >= 1024 {
		return ext, true // too old to tell: count as duplicate
	}
	s := ext % 1024
	if w.bits[s/64]&(1<<(s%64)) != 0 {
		return ext, true
	}
	w.bits[s/64] |= 1 << (s % 64)
	return ext, false
}

// jitter is RFC 3550's interarrival jitter estimator (§6.4.1, A.8) over
// transit times.
type jitter struct {
	last   time.Duration // the previous packet's transit time
	primed bool
	j      time.Duration
}

// add takes a packet's transit time and returns how far it differs from
// the previous one's, and false for the first packet.
func (e *jitter) add(transit time.Duration) (time.Duration, bool) {
	last, primed := e.last, e.primed
	e.last, e.primed = transit, true
	if !primed {
		return 0, false
	}
	d := transit - last
	if d < 0 {
		d = -d
	}
	e.j += (d - e.j) / 16
	return d, true
}

// Histogram records durations in 50 µs buckets up to 100 ms.
type Histogram struct {
	Buckets [2001]uint32 // the last bucket holds everything above 100 ms
	Count   uint64
	Sum     time.Duration
}

const bucketWidth = 50 * time.Microsecond

// Add records one duration.
func (h *Histogram) Add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := int(d / bucketWidth)
	if i >= len(h.Buckets) {
		i = len(h.Buckets) - 1
	}
	h.Buckets[i]++
	h.Count++
	h.Sum += d
}

// Merge adds o into h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range h.Buckets {
		h.Buckets[i] += o.Buckets[i]
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// Quantile returns the q-quantile (0 < q ≤ 1), at bucket resolution.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	target := uint64(q*float64(h.Count) + 0.5)
	if target < 1 {
		target = 1
	}
	var acc uint64
	for i, n := range h.Buckets {
		acc += uint64(n)
		if acc >= target {
			return time.Duration(i)*bucketWidth + bucketWidth/2
		}
	}
	return time.Duration(len(h.Buckets)) * bucketWidth
}

// Quantiles is a helper for a sorted sample.
func Quantiles(ds []time.Duration, qs ...float64) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	out := make([]time.Duration, len(qs))
	if len(s) == 0 {
		return out
	}
	for i, q := range qs {
		k := int(q*float64(len(s))+0.5) - 1
		if k < 0 {
			k = 0
		}
		if k >= len(s) {
			k = len(s) - 1
		}
		out[i] = s[k]
	}
	return out
}

// lossyConn drops a fraction of the incoming RTP datagrams (RFC 7983:
// first byte 128–191, and not RTCP, whose packet types are 192–223).
type lossyConn struct {
	net.PacketConn
	rate float64
	mu   sync.Mutex
	rnd  *rand.Rand
}

func newLossyConn(c net.PacketConn, rate float64) *lossyConn {
	return &lossyConn{PacketConn: c, rate: rate, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (l *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := l.PacketConn.ReadFrom(b)
		if err != nil || n < 2 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
			return n, addr, err
		}
		l.mu.Lock()
		drop := l.rnd.Float64() < l.rate
		l.mu.Unlock()
		if !drop {
			return n, addr, err
		}
	}
}
