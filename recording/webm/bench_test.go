package webm

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
)

// BenchmarkWriteRTP measures what the SFU pays per packet: WriteRTP's copy
// and enqueue. The queue is drained by a goroutine that discards, so the
// figure is the caller's cost alone (BenchmarkRecordPacket is the rest).
func BenchmarkWriteRTP(b *testing.B) {
	rec, err := Start(context.Background(), Config{Sink: &dirSink{dir: b.TempDir()}, SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	g := newGroup(rec, groupKey{uuid.New(), "s"}, "")
	spec, _ := lookupCodec(vp8Codec)
	w := &trackWriter{g: g, t: newTrack(TrackInfo{TrackID: "v", Codec: vp8Codec}, spec)}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-g.in:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: make([]byte, 1100)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SequenceNumber = uint16(i)
		p.Timestamp = uint32(i/5) * 3000
		p.Marker = i%5 == 4
		w.WriteRTP(p)
	}
	b.StopTimer()
	b.ReportMetric(float64(w.t.dropped.Load())/float64(b.N), "dropped/op")
}

// BenchmarkRecordPacket measures the recorder's own work per packet of a
// participant sending VP8 (400 kbit/s, 30 fps) and Opus: jitter buffer,
// depacketising, timing through the sender reports, interleaving and
// writing the WebM spool (no fsync).
func BenchmarkRecordPacket(b *testing.B) {
	dir := sampleMedia(b)
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{Sink: &dirSink{dir: b.TempDir()}, SpoolDir: b.TempDir(), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	p := uuid.New()
	g := newGroup(rec, groupKey{p, "s"}, "")
	tracks := []*track{}
	for _, c := range []TrackInfo{
		{ParticipantID: p, StreamID: "s", TrackID: "a", Codec: opusCodec},
		{ParticipantID: p, StreamID: "s", TrackID: "v", Codec: vp8Codec},
	} {
		spec, _ := lookupCodec(c.Codec)
		t := newTrack(c, spec)
		tracks = append(tracks, t)
		g.tracks = append(g.tracks, t)
	}
	pkts := merge([][]timedPacket{opusPackets(b, dir, 0, 1), vp8Packets(b, dir, 1, 2)}, []time.Duration{0, 0})
	var count [2]uint16
	for _, tp := range pkts {
		count[tp.track]++
	}
	span := time.Duration(mediaSeconds) * time.Second
	clocks := [2]uint32{48000, 90000}
	var bytes int
	for _, tp := range pkts {
		bytes += len(tp.p.Payload)
	}
	// Each track's sender report comes before its first packet, as the
	// SFU hands a tap the latest one: every frame is timed by reports.
	for n, t := range tracks {
		for _, tp := range pkts {
			if tp.track == n {
				g.handle(inPacket{t: t, sr: &SenderReport{SSRC: tp.p.SSRC, NTPTime: 3_973_000_000 << 32, RTPTime: tp.p.Timestamp}})
				break
			}
		}
	}
	b.SetBytes(int64(bytes / len(pkts)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, tp := i/len(pkts), pkts[i%len(pkts)]
		g.handle(inPacket{
			t:       tracks[tp.track],
			arrival: time.Duration(k)*span + tp.at,
			seq:     tp.p.SequenceNumber + uint16(k)*count[tp.track],
			ts:      tp.p.Timestamp + uint32(k)*uint32(mediaSeconds)*clocks[tp.track],
			ssrc:    tp.p.SSRC,
			marker:  tp.p.Marker,
			payload: tp.p.Payload,
		})
	}
	b.StopTimer()
	for _, t := range tracks {
		if t.havePackets && t.mode != timingReports {
			b.Fatalf("track %s timed by %s, not sender reports", t.info.TrackID, t.mode)
		}
	}
	g.finishFile()
	rec.Stop(context.Background())
}
