package sfu

import (
	"net"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// benchWriter stands in for pion's SRTP write stream: it marshals the packet
// as pion does before encrypting, and optionally encrypts it (AES-128-GCM)
// and sends it over loopback UDP.
type benchWriter struct {
	buf  []byte
	enc  []byte
	srtp *srtp.Context
	conn *net.UDPConn
	to   *net.UDPAddr
}

func (w *benchWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := rtp.MarshalPacketTo(w.buf, h, payload) //nolint:staticcheck // what pion's SRTP session does
	if err != nil {
		return 0, err
	}
	out := w.buf[:n]
	if w.srtp != nil {
		if out, err = w.srtp.EncryptRTP(w.enc[:0], out, h); err != nil {
			return 0, err
		}
	}
	if w.conn != nil {
		return w.conn.WriteToUDP(out, w.to)
	}
	return len(out), nil
}

func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }

// benchLayer builds a published VP8 layer with n bound down-tracks.
func benchLayer(b *testing.B, n int, mk func() *benchWriter) (*layer, []*downTrack) {
	b.Helper()
	pubPeer := &Peer{done: make(chan struct{})}
	up := &UpTrack{peer: pubPeer, kind: webrtc.RTPCodecTypeVideo, ck: codecVP8, codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}}
	l := &layer{up: up, cache: newPacketCache(videoCacheSlots), clock: 90000, done: make(chan struct{})}
	up.layers = []*layer{l}
	var dts []*downTrack
	for i := 0; i < n; i++ {
		sub := &Peer{done: make(chan struct{}), signalFn: func(string, any) {}}
		sub.subConnected.Store(true)
		dt := newDownTrack(up, sub)
		dt.fwd.target = 0
		dt.bound.Store(&binding{w: mk(), ssrc: uint32(1000 + i), pt: 96, absID: 3})
		dts = append(dts, dt)
	}
	return l, dts
}

// benchPackets returns a second of 1.5 Mbit/s VP8-like packets (1100 bytes).
func benchPackets() [][]byte {
	var out [][]byte
	seq, ts, pic := uint16(1), uint32(0), uint16(0)
	for f := 0; f < 30; f++ {
		for i := 0; i < 6; i++ {
			payload := make([]byte, 1100)
			payload[0] = 0x80
			if i == 0 {
				payload[0] |= 0x10
			}
			payload[1], payload[2], payload[3] = 0x80, 0x80|byte(pic>>8), byte(pic)
			if f == 0 && i == 0 {
				payload[4] = 0x10 // keyframe
			} else {
				payload[4] = 0x11
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 42, Marker: i == 5}, Payload: payload}
			b, _ := p.Marshal()
			out = append(out, b)
			seq++
		}
		ts += 3000
		pic++
	}
	return out
}

// runForward drives the reader's store and the writer's per-packet loop
// exactly as readLoop and writer.run do, and reports the cost per forwarded
// packet (one packet written to one subscriber).
func runForward(b *testing.B, subscribers int, mk func() *benchWriter) {
	l, dts := benchLayer(b, subscribers, mk)
	pkts := benchPackets()
	s := new(writeScratch)
	var hdr rtp.Header
	b.ReportAllocs()
	b.ResetTimer()
	forwarded := 0
	for i := 0; forwarded < b.N; i++ {
		raw := pkts[i%len(pkts)]
		// Sequence numbers keep increasing across repetitions of the second.
		seq := uint16(i + 1)
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		hl, _ := hdr.Unmarshal(raw)
		m := packetMeta{seq: hdr.SequenceNumber, ts: hdr.Timestamp + uint32(i/len(pkts))*90000, marker: hdr.Marker, payloadOff: uint16(hl), payloadEnd: uint16(len(raw)), arrival: clock()}
		m.frame = parseFrame(codecVP8, raw[hl:])
		l.cache.store(&m, raw)
		meta, ok := l.cache.get(m.seq, s.buf[:])
		if !ok {
			b.Fatal("cache miss")
		}
		now := clock()
		putAbsSendTime(s.absTime[:], clockTime(now))
		for _, dt := range dts {
			if dt.forward(l, &meta, s.buf[:meta.size], s, now) > 0 {
				forwarded++
			}
		}
	}
}

// BenchmarkForward is the SFU's own per-packet work per subscriber:
// translation under the down-track lock, header rewrite, abs-send-time and
// the marshal pion's SRTP session does; no encryption, no I/O.
func BenchmarkForward(b *testing.B) {
	runForward(b, 100, func() *benchWriter { return &benchWriter{buf: make([]byte, 1500)} })
}

// BenchmarkForwardSRTP adds AES-128-GCM SRTP encryption.
func BenchmarkForwardSRTP(b *testing.B) {
	runForward(b, 100, func() *benchWriter {
		ctx, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		return &benchWriter{buf: make([]byte, 1500), enc: make([]byte, 0, 1600), srtp: ctx}
	})
}

// BenchmarkForwardSRTPUDP adds one UDP send per packet on loopback: the
// physical floor of forwarding without batching.
func BenchmarkForwardSRTPUDP(b *testing.B) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	runForward(b, 100, func() *benchWriter {
		ctx, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		return &benchWriter{buf: make([]byte, 1500), enc: make([]byte, 0, 1600), srtp: ctx, conn: conn, to: sink.LocalAddr().(*net.UDPAddr)}
	})
}
