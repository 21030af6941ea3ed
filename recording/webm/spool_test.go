package webm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/at-wat/ebml-go/webm"
	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// recordToSpool records crashSeconds of VP8 + Opus and waits until the
// recorder has written it all to the spool, without stopping. It returns
// a copy of the spool file, its layout, and the recording (to Stop).
func recordToSpool(t *testing.T, sink Sink) (string, layout, *Recording) {
	t.Helper()
	dir := sampleMedia(t)
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{
		Sink: sink, SessionID: uuid.New(), SpoolDir: t.TempDir(), Logger: testenv.Logger(t), Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := uuid.New()
	audio, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "audio", Codec: opusCodec})
	video, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "video", Codec: vp8Codec})
	var pkts []timedPacket
	for _, p := range merge([][]timedPacket{opusPackets(t, dir, 0, 1), vp8Packets(t, dir, 1, 2)}, []time.Duration{0, 0}) {
		if p.at < crashSeconds*time.Second {
			pkts = append(pkts, p)
		}
	}
	feed(t, clock, 0, pkts, []TrackWriter{audio, video})
	clock.Advance(2 * time.Second)
	rec.flush() // as the idle flush would, a second after the last packet
	var fm fileMeta
	if err := readJSON(filepath.Join(rec.dir, "001.json"), &fm); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rec.dir, fm.Spool))
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.webm")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cp, fm.Layout, rec
}

// TestRepairAnyPoint cuts a live spool file at many points, as a crash
// can, and checks that each repaired file plays to about the cut.
func TestRepairAnyPoint(t *testing.T) {
	spool, lay, rec := recordToSpool(t, &dirSink{dir: t.TempDir()})
	if _, err := rec.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Duration
	for _, frac := range []float64{0.05, 0.2, 0.37, 0.5, 0.71, 0.9, 0.999, 1} {
		cut := lay.ClustersAt + int64(frac*float64(int64(len(full))-lay.ClustersAt))
		path := filepath.Join(t.TempDir(), "cut.webm")
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		endMs, err := repairWebM(path, lay)
		if err != nil {
			t.Fatalf("cut at %.3f: %v", frac, err)
		}
		p := ffprobe(t, path)
		if p.codecs() != "opus,vp8" {
			t.Errorf("cut at %.3f: codecs %s", frac, p.codecs())
		}
		d := p.duration(t)
		if d != time.Duration(endMs)*time.Millisecond || d < last {
			t.Errorf("cut at %.3f: duration %v (scan %d ms), previous cut %v", frac, d, endMs, last)
		}
		last = d
		if e := decodeErrors(t, path); e != "" {
			t.Errorf("cut at %.3f: %s", frac, e)
		}
	}
	if want := crashSeconds * time.Second; last < want-100*time.Millisecond || last > want+100*time.Millisecond {
		t.Errorf("uncut file repaired to %v, want %v", last, want)
	}
}

// flakySink fails its first n Puts, as an unreachable evidence store would.
type flakySink struct {
	*dirSink
	fail int
}

var errUnreachable = errors.New("evidence store unreachable")

func (s *flakySink) Put(ctx context.Context, key string, r io.Reader, ct string) (int64, string, error) {
	if s.fail > 0 {
		s.fail--
		io.Copy(io.Discard, r)
		return 0, "", errUnreachable
	}
	return s.dirSink.Put(ctx, key, r, ct)
}

// lyingSink stores something other than what it was given.
type lyingSink struct{ *dirSink }

func (s lyingSink) Put(ctx context.Context, key string, r io.Reader, ct string) (int64, string, error) {
	b, _ := io.ReadAll(r)
	b[len(b)/2] ^= 1
	return s.dirSink.Put(ctx, key, bytes.NewReader(b), ct)
}

// TestStopUploadFails: when the sink fails, Stop says so and keeps the
// spool; Recover on the next start stores the file and a manifest.
func TestStopUploadFails(t *testing.T) {
	sink := &flakySink{dirSink: &dirSink{dir: t.TempDir()}, fail: 1}
	_, _, rec := recordToSpool(t, sink)
	m, err := rec.Stop(context.Background())
	if !errors.Is(err, errUnreachable) {
		t.Fatalf("Stop = %+v, %v; want the sink's error", m, err)
	}
	if _, err := os.Stat(filepath.Join(rec.dir, recordingFile)); err != nil {
		t.Fatalf("spool not kept: %v", err)
	}
	ms, err := Recover(context.Background(), filepath.Dir(rec.dir), sink, testenv.Logger(t))
	if err != nil || len(ms) != 1 || len(ms[0].Files) != 1 {
		t.Fatalf("Recover = %+v, %v", ms, err)
	}
	f := ms[0].Files[0]
	if !f.Recovered || f.DurationMs < 2900 || f.DurationMs > 3100 || fileSHA256(t, sink.path(f.Key)) != f.SHA256 {
		t.Errorf("recovered %+v", f)
	}
	if d := ffprobe(t, sink.path(f.Key)).duration(t); d < 2900*time.Millisecond {
		t.Errorf("recovered file lasts %v", d)
	}
}

// TestSinkIntegrity: a sink that stores different bytes is caught.
func TestSinkIntegrity(t *testing.T) {
	_, _, rec := recordToSpool(t, lyingSink{&dirSink{dir: t.TempDir()}})
	if _, err := rec.Stop(context.Background()); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Stop: %v, want ErrIntegrity", err)
	}
}

func TestUnsupportedCodec(t *testing.T) {
	rec, err := Start(context.Background(), Config{Sink: &dirSink{dir: t.TempDir()}, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rec.Track(TrackInfo{TrackID: "x", Codec: webrtc.RTPCodecCapability{MimeType: "video/AV1", ClockRate: 90000}})
	if !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("AV1: %v", err)
	}
	if m, err := rec.Stop(context.Background()); err != nil || len(m.Files) != 0 {
		t.Errorf("empty Stop: %+v, %v", m, err)
	}
}

func FuzzScanClusters(f *testing.F) {
	path := filepath.Join(f.TempDir(), "h.webm")
	w, err := createWebM(path, "webm", []webm.TrackEntry{{TrackNumber: 1, TrackUID: 1, CodecID: "A_OPUS", TrackType: 2,
		Audio: &webm.Audio{SamplingFrequency: 48000, Channels: 2}}}, 1, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		w.writeBlock(1, true, int64(i*20), 20, []byte{0xfc, 1, 2, 3})
	}
	w.f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	header, body := b[:w.lay.ClustersAt], b[w.lay.ClustersAt:]
	f.Add(body)
	f.Add(body[:len(body)-3])
	f.Add([]byte{0x1F, 0x43, 0xB6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xA3, 0x88})
	f.Fuzz(func(t *testing.T, tail []byte) {
		data := append(append([]byte{}, header...), tail...)
		res := scanClusters(bytes.NewReader(data), int64(len(data)), w.lay)
		if res.end < w.lay.ClustersAt || res.end > int64(len(data)) {
			t.Fatalf("end %d outside [%d, %d]", res.end, w.lay.ClustersAt, len(data))
		}
	})
}

func FuzzSPS(f *testing.F) {
	// x264 baseline 320x240 and a 1080p High profile SPS with cropping.
	f.Add([]byte{0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc5, 0x0a, 0xa8})
	f.Add([]byte{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58})
	f.Fuzz(func(t *testing.T, sps []byte) {
		w, h := spsDimensions(sps)
		if w < 0 || h < 0 || w > 1<<16 || h > 1<<17 {
			t.Fatalf("%dx%d", w, h)
		}
	})
}

// TestIdleFlush: a second after the last packet, what the jitter buffer
// and interleaver hold reaches the spool file without anyone asking.
func TestIdleFlush(t *testing.T) {
	dir := sampleMedia(t)
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{
		Sink: &dirSink{dir: t.TempDir()}, SessionID: uuid.New(), SpoolDir: t.TempDir(), Logger: testenv.Logger(t), Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Stop(context.Background())
	audio, _ := rec.Track(TrackInfo{ParticipantID: uuid.New(), StreamID: "s", TrackID: "audio", Codec: opusCodec})
	var pkts []timedPacket
	for _, p := range opusPackets(t, dir, 0, 1) {
		if p.at < time.Second {
			pkts = append(pkts, p)
		}
	}
	feed(t, clock, 0, pkts, []TrackWriter{audio})
	clock.Advance(idleFlush)
	var fm fileMeta
	var end int64
	if !wait.Within(5*time.Second, func() bool {
		if readJSON(filepath.Join(rec.dir, "001.json"), &fm) == nil {
			if f, err := os.Open(filepath.Join(rec.dir, fm.Spool)); err == nil {
				st, _ := f.Stat()
				end = scanClusters(f, st.Size(), fm.Layout).endMs
				f.Close()
			}
		}
		return end >= 1000 // 50 frames of 20 ms
	}) {
		t.Fatalf("after the idle flush the spool holds %d ms, want 1000", end)
	}
}

// TestRecoverTwice: a Recover interrupted after storing (here: by the
// store failing the manifest) is repeated under keys of its own, so the
// write-once store never refuses it.
func TestRecoverTwice(t *testing.T) {
	sink := &flakySink{dirSink: &dirSink{dir: t.TempDir()}, fail: 1}
	_, _, rec := recordToSpool(t, sink)
	if _, err := rec.Stop(context.Background()); err == nil {
		t.Fatal("Stop succeeded through a failing store")
	}
	// The first Recover stores the file, then the manifest fails; the spool stays.
	sink.fail = 0
	failing := &manifestFailSink{dirSink: sink.dirSink}
	if _, err := Recover(context.Background(), filepath.Dir(rec.dir), failing, testenv.Logger(t)); err == nil {
		t.Fatal("first Recover succeeded though its manifest could not be stored")
	}
	ms, err := Recover(context.Background(), filepath.Dir(rec.dir), sink, testenv.Logger(t))
	if err != nil || len(ms) != 1 || len(ms[0].Files) != 1 {
		t.Fatalf("second Recover = %+v, %v", ms, err)
	}
	if k := ms[0].Files[0].Key; !strings.HasSuffix(k, ".recovered.webm") {
		t.Errorf("file key %s: the first attempt's upload was recorded, so it is kept", k)
	}
	if k := ms[0].Stored.Key; !strings.HasSuffix(k, "/manifest.recovered-2.json") {
		t.Errorf("manifest key %s", k)
	}
}

// manifestFailSink stores files but fails manifests.
type manifestFailSink struct{ *dirSink }

func (s *manifestFailSink) Put(ctx context.Context, key string, r io.Reader, ct string) (int64, string, error) {
	if strings.Contains(key, "manifest") {
		return 0, "", errUnreachable
	}
	return s.dirSink.Put(ctx, key, r, ct)
}
