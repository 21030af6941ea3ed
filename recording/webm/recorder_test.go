package webm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/testenv"
)

var (
	opusCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	vp8Codec  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	h264Codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}
)

// feed sends packets to their writers, moving the clock to each packet's
// send time.
func feed(t testing.TB, clock *testClock, base time.Duration, pkts []timedPacket, writers []TrackWriter) {
	t.Helper()
	for _, p := range pkts {
		clock.Set(base + p.at)
		if p.sr != nil {
			if err := writers[p.track].WriteSenderReport(*p.sr); err != nil {
				t.Fatalf("WriteSenderReport: %v", err)
			}
			continue
		}
		if err := writers[p.track].WriteRTP(p.p); err != nil {
			t.Fatalf("WriteRTP: %v", err)
		}
	}
}

// TestRecord records three streams with loss, duplication, reordering and
// padding: participant A (VP8 + Opus) from the start, participant B
// (H.264 + Opus) from 1.5 s, and B's screen share (VP8) from 2 s. Each
// stream is a file that ffprobe reads with the right codecs and a duration
// within a second of what was sent, and the manifest places them in time.
func TestRecord(t *testing.T) {
	dir := sampleMedia(t)
	sink := &dirSink{dir: t.TempDir()}
	clock := &testClock{}
	session := uuid.New()
	rec, err := Start(context.Background(), Config{
		Sink: sink, SessionID: session, Prefix: "sessions/" + session.String() + "/recordings/",
		SpoolDir: t.TempDir(), Logger: testenv.Logger(t), Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := uuid.New(), uuid.New()
	var keyframeRequests atomic.Int64
	pli := func() { keyframeRequests.Add(1) }
	infos := []TrackInfo{
		{ParticipantID: alice, ParticipantName: "Alice", StreamID: "a-cam", TrackID: "a-audio", Codec: opusCodec},
		{ParticipantID: alice, ParticipantName: "Alice", StreamID: "a-cam", TrackID: "a-video", Codec: vp8Codec, RequestKeyframe: pli},
		{ParticipantID: bob, ParticipantName: "Bob", StreamID: "b-cam", TrackID: "b-audio", Codec: opusCodec},
		{ParticipantID: bob, ParticipantName: "Bob", StreamID: "b-cam", TrackID: "b-video", Codec: h264Codec, RequestKeyframe: pli},
		{ParticipantID: bob, ParticipantName: "Bob", StreamID: "b-screen", TrackID: "b-screen", Codec: vp8Codec, RequestKeyframe: pli},
	}
	offsets := []time.Duration{0, 0, 1500 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second}
	var writers []TrackWriter
	for _, info := range infos {
		w, err := rec.Track(info)
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	var lists [][]timedPacket
	lost := 0
	for i, gen := range []func(testing.TB, string, int, uint32) []timedPacket{opusPackets, vp8Packets, opusPackets, h264Packets, vp8Packets} {
		p, n := impair(gen(t, dir, i, uint32(1000+i)), uint64(i+1), 0.01, 0.01, 0.03)
		lists, lost = append(lists, p), lost+n
	}
	feed(t, clock, 0, merge(lists, offsets), writers)
	for _, w := range writers {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	m, err := rec.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if len(m.Files) != 3 {
		t.Fatalf("manifest has %d files, want 3: %+v", len(m.Files), m.Files)
	}
	want := []struct {
		participant uuid.UUID
		stream      string
		offset      time.Duration
		codecs      string
		format      string
	}{
		{alice, "a-cam", 0, "opus,vp8", "matroska,webm"},
		{bob, "b-cam", 1500 * time.Millisecond, "opus,h264", "matroska,webm"},
		{bob, "b-screen", 2 * time.Second, "vp8", "matroska,webm"},
	}
	var counted uint64
	for i, f := range m.Files {
		w := want[i]
		if f.ParticipantID != w.participant || f.StreamID != w.stream {
			t.Errorf("file %d is %s/%s, want %s/%s", i, f.ParticipantID, f.StreamID, w.participant, w.stream)
		}
		if d := time.Duration(f.StartOffsetMs)*time.Millisecond - w.offset; d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("%s: start offset %d ms, want %v", f.Key, f.StartOffsetMs, w.offset)
		}
		if !strings.HasPrefix(f.Key, "sessions/"+session.String()+"/recordings/"+m.RecordingID.String()+"/") {
			t.Errorf("key %s", f.Key)
		}
		path := sink.path(f.Key)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != f.Size || fileSHA256(t, path) != f.SHA256 {
			t.Errorf("%s: manifest size/sha256 %d %s do not match the stored file", f.Key, f.Size, f.SHA256)
		}
		p := ffprobe(t, path)
		if p.codecs() != w.codecs || p.Format.FormatName != w.format {
			t.Errorf("%s: ffprobe finds %s in %s, want %s", f.Key, p.codecs(), p.Format.FormatName, w.codecs)
		}
		sent := time.Duration(mediaSeconds) * time.Second
		if d := p.duration(t) - sent; d < -time.Second || d > time.Second {
			t.Errorf("%s: ffprobe duration %v, sent %v", f.Key, p.duration(t), sent)
		}
		if d := time.Duration(f.DurationMs)*time.Millisecond - p.duration(t); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: manifest duration %d ms, ffprobe %v", f.Key, f.DurationMs, p.duration(t))
		}
		for _, s := range p.Streams {
			if s.CodecType == "video" && (s.Width != 320 || s.Height != 240) {
				t.Errorf("%s: video %dx%d", f.Key, s.Width, s.Height)
			}
		}
		if e := decodeErrors(t, path); e != "" {
			t.Errorf("%s: decoding: %s", f.Key, e)
		}
		for _, tr := range f.Tracks {
			counted += tr.LostPackets
			if tr.Frames == 0 || tr.Packets == 0 {
				t.Errorf("%s: track %s wrote %d frames from %d packets", f.Key, tr.TrackID, tr.Frames, tr.Packets)
			}
			if tr.Kind == "video" && (tr.Width != 320 || tr.Height != 240) {
				t.Errorf("%s: track %s %dx%d", f.Key, tr.TrackID, tr.Width, tr.Height)
			}
		}
	}
	for _, f := range m.Files {
		t.Logf("%s: offset %d ms, duration %d ms, tracks %+v", f.StreamID, f.StartOffsetMs, f.DurationMs, f.Tracks)
	}
	if counted == 0 || lost == 0 {
		t.Errorf("lost %d packets, manifest counts %d lost", lost, counted)
	}
	if keyframeRequests.Load() == 0 {
		t.Error("no keyframe was requested")
	}

	// The manifest stored beside the files is the one returned.
	b, err := os.ReadFile(sink.path(m.Stored.Key))
	if err != nil {
		t.Fatal(err)
	}
	var stored Manifest
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if m.Stored.Key != "sessions/"+session.String()+"/recordings/"+m.RecordingID.String()+"/manifest.json" ||
		stored.RecordingID != m.RecordingID || stored.SessionID != session || len(stored.Files) != 3 ||
		stored.Files[1].SHA256 != m.Files[1].SHA256 || stored.Recovered || fileSHA256(t, sink.path(m.Stored.Key)) != m.Stored.SHA256 {
		t.Errorf("stored manifest %s differs: %s", m.Stored.Key, b)
	}
	// The spool stays, noting the stored manifest, until the caller has
	// recorded it and releases it.
	var meta recordingMeta
	if err := readJSON(filepath.Join(rec.dir, recordingFile), &meta); err != nil || meta.Stored == nil || meta.Stored.Object != m.Stored {
		t.Errorf("spool after Stop: %+v, %v; want the stored manifest noted", meta.Stored, err)
	}
	if err := rec.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rec.dir); !os.IsNotExist(err) {
		t.Errorf("spool directory left after Release: %v", err)
	}
	if _, err := rec.Track(infos[0]); err != ErrStopped {
		t.Errorf("Track after Stop: %v", err)
	}
	if err := writers[0].WriteRTP(lists[0][0].p); err != ErrClosed {
		t.Errorf("WriteRTP after Close: %v", err)
	}
}

// TestLateVideo starts a participant's audio alone; the video's first
// keyframe arrives after HeaderWait, so it begins a second file that holds
// both tracks. Both files play, and together cover the whole time.
func TestLateVideo(t *testing.T) {
	dir := sampleMedia(t)
	sink := &dirSink{dir: t.TempDir()}
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{
		Sink: sink, SessionID: uuid.New(), SpoolDir: t.TempDir(), Logger: testenv.Logger(t), Now: clock.Now,
		// A publisher without sender reports, timed by arrival at once
		// (sync_test.go has the reports).
		HeaderWait: time.Second, SenderReportWait: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := uuid.New()
	audio, err := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "audio", Codec: opusCodec})
	if err != nil {
		t.Fatal(err)
	}
	video, err := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "video", Codec: vp8Codec})
	if err != nil {
		t.Fatal(err)
	}
	pkts := merge([][]timedPacket{opusPackets(t, dir, 0, 1), vp8Packets(t, dir, 1, 2)}, []time.Duration{0, 2 * time.Second})
	var cut []timedPacket
	for _, p := range pkts {
		if p.track == 0 || p.at < mediaSeconds*time.Second { // video from 2 s to the end of the audio
			cut = append(cut, p)
		}
	}
	feed(t, clock, 0, cut, []TrackWriter{audio, video})
	m, err := rec.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 {
		t.Fatalf("%d files, want 2: %+v", len(m.Files), m.Files)
	}
	first, second := ffprobe(t, sink.path(m.Files[0].Key)), ffprobe(t, sink.path(m.Files[1].Key))
	if first.codecs() != "opus" || second.codecs() != "opus,vp8" {
		t.Errorf("codecs %s then %s, want opus then opus,vp8", first.codecs(), second.codecs())
	}
	if off := m.Files[1].StartOffsetMs; off < 1900 || off > 2100 {
		t.Errorf("second file starts at %d ms, want 2000", off)
	}
	if d := first.duration(t); d < 1900*time.Millisecond || d > 2100*time.Millisecond {
		t.Errorf("first file lasts %v, want 2 s", d)
	}
	if d := second.duration(t); d < 1500*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("second file lasts %v, want 2 s", d)
	}
	// Audio and video sent together start together (lip sync).
	if len(second.Streams) == 2 {
		a, _ := strconv.ParseFloat(second.Streams[0].StartTime, 64)
		v, _ := strconv.ParseFloat(second.Streams[1].StartTime, 64)
		if d := a - v; d < -0.03 || d > 0.03 {
			t.Errorf("second file: audio starts at %.3f s, video at %.3f s", a, v)
		}
	}
	for _, f := range m.Files {
		if e := decodeErrors(t, sink.path(f.Key)); e != "" {
			t.Errorf("%s: %s", f.Key, e)
		}
		// Nothing was lost on the way, and the padding among the video
		// packets must not look like loss.
		for _, tr := range f.Tracks {
			if tr.LostPackets != 0 || tr.SkippedFrames != 0 || tr.DroppedPackets != 0 {
				t.Errorf("%s: track %s: %+v", f.Key, tr.TrackID, tr)
			}
		}
	}
}

// TestCrashRecovery records in a child process and kills it mid-recording
// (SIGKILL: no Stop, no deferred code). The spool file it leaves plays as
// it is; a torn block is then appended, as an interrupted write would
// leave, and Recover cuts it off, completes the file and stores it with a
// manifest marked recovered.
func TestCrashRecovery(t *testing.T) {
	dir := sampleMedia(t)
	spool := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "RECORDER_CRASH_SPOOL="+spool, "RECORDER_CRASH_MEDIA="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "READY" {
			ready = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !ready {
		t.Fatal("the recording child did not get ready")
	}

	spoolFiles, _ := filepath.Glob(filepath.Join(spool, "*", "*.webm"))
	if len(spoolFiles) != 1 {
		t.Fatalf("spool files %v, want one", spoolFiles)
	}
	// Live mode: the file as the crash left it already plays.
	if e := decodeErrors(t, spoolFiles[0]); e != "" {
		t.Errorf("spool file before recovery: %s", e)
	}
	if p := ffprobe(t, spoolFiles[0]); p.codecs() != "opus,vp8" {
		t.Errorf("spool file before recovery has %s", p.codecs())
	}
	f, err := os.OpenFile(spoolFiles[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0xA3, 0x86, 0x81, 0x00}) // a SimpleBlock cut short
	f.Close()

	sink := &dirSink{dir: t.TempDir()}
	ms, err := Recover(context.Background(), spool, sink, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].Recovered || len(ms[0].Files) != 1 {
		t.Fatalf("recovered %+v", ms)
	}
	file := ms[0].Files[0]
	if !file.Recovered || !strings.HasSuffix(file.Key, ".recovered.webm") {
		t.Errorf("recovered file %+v", file)
	}
	path := sink.path(file.Key)
	p := ffprobe(t, path)
	if p.codecs() != "opus,vp8" {
		t.Errorf("recovered file has %s", p.codecs())
	}
	// The child sent crashSeconds and let the recorder write it all out
	// before it was killed.
	if d := p.duration(t) - crashSeconds*time.Second; d < -time.Second || d > time.Second {
		t.Errorf("recovered duration %v, sent %d s", p.duration(t), crashSeconds)
	}
	if e := decodeErrors(t, path); e != "" {
		t.Errorf("recovered file: %s", e)
	}
	if fileSHA256(t, path) != file.SHA256 {
		t.Error("recovered file's sha256 differs from the manifest")
	}
	if !strings.HasSuffix(ms[0].Stored.Key, "/manifest.recovered.json") {
		t.Errorf("manifest stored as %s", ms[0].Stored.Key)
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 0 {
		t.Errorf("spool not emptied: %v", entries)
	}
	// Nothing is left to recover a second time.
	if ms, err := Recover(context.Background(), spool, sink, nil); err != nil || len(ms) != 0 {
		t.Errorf("second Recover: %v, %v", ms, err)
	}
}

const crashSeconds = 3

// TestCrashChild is the recording process TestCrashRecovery kills.
func TestCrashChild(t *testing.T) {
	spool, dir := os.Getenv("RECORDER_CRASH_SPOOL"), os.Getenv("RECORDER_CRASH_MEDIA")
	if spool == "" {
		t.Skip("run by TestCrashRecovery")
	}
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{
		Sink: &dirSink{dir: t.TempDir()}, SessionID: uuid.New(), SpoolDir: spool, Now: clock.Now,
		SyncInterval: 100 * time.Millisecond,
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
	// The participant goes quiet: the recorder writes out what it holds
	// and syncs, as it would a second after the last packet.
	clock.Advance(2 * time.Second)
	rec.flush()
	fmt.Println("READY")
	time.Sleep(time.Minute) // killed here
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}
