package webm

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

func TestNTPMapping(t *testing.T) {
	const sec = uint64(1) << 32
	for _, tc := range []struct {
		name string
		ntp  uint64
		want int64
	}{
		{"zero", 0, 0},
		{"one second", sec, int64(time.Second)},
		{"half a second", sec / 2, int64(500 * time.Millisecond)},
		{"2026", 3_973_000_000*sec + sec/4, 3_973_000_000*int64(time.Second) + int64(250*time.Millisecond)},
		{"end of era 0", math.MaxUint64, int64(math.MaxUint32)*int64(time.Second) + int64(time.Second) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ntpNanos(tc.ntp); got != tc.want {
				t.Errorf("ntpNanos(%#x) = %d, want %d", tc.ntp, got, tc.want)
			}
		})
	}
	m := srMapping{ok: true, ntp: int64(100 * time.Second), rtp: math.MaxUint32 - 4799} // 100 ms before a wraparound at 48 kHz
	for _, tc := range []struct {
		name string
		ts   uint32
		rate uint32
		want time.Duration
	}{
		{"the report itself", math.MaxUint32 - 4799, 48000, 100 * time.Second},
		{"across the wraparound", 4800, 48000, 100*time.Second + 200*time.Millisecond},
		{"before the report", math.MaxUint32 - 4799 - 48000, 48000, 99 * time.Second},
		{"video clock", 4200, 90000, 100*time.Second + 100*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := time.Duration(m.at(tc.ts, tc.rate)); got != tc.want {
				t.Errorf("at(%d) = %v, want %v", tc.ts, got, tc.want)
			}
		})
	}
}

// reportPlan says when a track's sender reports are sent: first at first,
// then every every (0: never).
type reportPlan struct{ first, every time.Duration }

const ntpBase = uint64(3_973_000_000) << 32 // the publisher's clock at its send time 0

// ntpAt is the publisher's clock at send time at.
func ntpAt(at time.Duration) uint64 {
	toNTP := func(d time.Duration) uint64 {
		return uint64(d/time.Second)<<32 + uint64(d%time.Second)<<32/uint64(time.Second)
	}
	if at < 0 {
		return ntpBase - toNTP(-at)
	}
	return ntpBase + toNTP(at)
}

// withReports adds to the tracks' packet lists the sender reports of a
// publisher whose wall clock reads ntpBase at send time 0, sent as plans
// say until end, and shifts each list by its network delay: packets and
// reports of track i arrive delays[i] after they were sent. The lists
// must be as generated (in order, not impaired), so that their first
// packet pairs send time 0 with the track's first RTP timestamp.
func withReports(lists [][]timedPacket, rates []uint32, plans []reportPlan, delays []time.Duration, end time.Duration) []timedPacket {
	var out [][]timedPacket
	for i, l := range lists {
		l = slices.Clone(l)
		if p := plans[i]; p.every > 0 {
			first := l[0]
			for at := p.first; at < end; at += p.every {
				ntp := ntpAt(at)
				rtpTS := first.p.Timestamp + uint32(int64(at)*int64(rates[i])/int64(time.Second))
				l = append(l, timedPacket{at: at, track: i, sr: &SenderReport{SSRC: first.p.SSRC, NTPTime: ntp, RTPTime: rtpTS}})
			}
		}
		sortStable(l)
		out = append(out, l)
	}
	return merge(out, delays)
}

// packetTimes lists the times ffprobe reads for one stream's packets.
func packetTimes(t *testing.T, path, stream string) []time.Duration {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffprobe"), "-v", "error", "-select_streams", stream,
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var times []time.Duration
	for _, line := range strings.Fields(string(out)) {
		f, err := strconv.ParseFloat(strings.TrimSuffix(line, ","), 64)
		if err != nil {
			t.Fatalf("ffprobe packet time %q", line)
		}
		times = append(times, time.Duration(math.Round(f*1000))*time.Millisecond)
	}
	slices.Sort(times)
	return times
}

// captureOffset is where send time 0 falls in a stream whose n-th packet
// was sent at n*every: the median of their differences.
func captureOffset(times []time.Duration, every time.Duration) time.Duration {
	d := make([]time.Duration, len(times))
	for n, at := range times {
		d[n] = at - time.Duration(n)*every
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// TestSenderReportSync records a participant whose audio reaches the
// server 180 ms later than their video (a longer path, a jitter buffer in
// the way): anchored at arrival, the recording would play the sound 180 ms
// late. With the publisher's sender reports — video's every second from
// 0.5 s, audio's from 2.5 s every 5 s, as Chrome sends them, so the audio
// waits for its first — audio and video captured together are written at
// the same time, to the millisecond.
func TestSenderReportSync(t *testing.T) {
	dir := sampleMedia(t)
	delays := []time.Duration{190 * time.Millisecond, 10 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		plans   []reportPlan
		wait    time.Duration
		skew    time.Duration // audio after video
		timings []string
	}{
		{"sender reports", []reportPlan{{2500 * time.Millisecond, 5 * time.Second}, {500 * time.Millisecond, time.Second}}, 0,
			0, []string{TimingSenderReports, TimingSenderReports}},
		{"no reports: arrival", []reportPlan{{}, {}}, -1,
			delays[0] - delays[1], []string{TimingArrival, TimingArrival}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &dirSink{dir: t.TempDir()}
			clock := &testClock{}
			rec, err := Start(context.Background(), Config{Sink: sink, SessionID: uuid.New(), SpoolDir: t.TempDir(),
				Logger: testenv.Logger(t), Now: clock.Now, SenderReportWait: tc.wait})
			if err != nil {
				t.Fatal(err)
			}
			p := uuid.New()
			audio, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "audio", Codec: opusCodec})
			video, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "video", Codec: vp8Codec})
			pkts := withReports([][]timedPacket{opusPackets(t, dir, 0, 11), vp8Packets(t, dir, 1, 22)},
				[]uint32{48000, 90000}, tc.plans, delays, mediaSeconds*time.Second)
			feed(t, clock, 0, pkts, []TrackWriter{audio, video})
			clock.Advance(time.Second)
			m, err := rec.Stop(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Files) != 1 || len(m.Files[0].Tracks) != 2 {
				t.Fatalf("files %+v, want one with two tracks", m.Files)
			}
			f := m.Files[0]
			path := sink.path(f.Key)
			a := captureOffset(packetTimes(t, path, "a:0"), 20*time.Millisecond)
			v := captureOffset(packetTimes(t, path, "v:0"), time.Second/30)
			if d := a - v - tc.skew; d < -2*time.Millisecond || d > 2*time.Millisecond {
				t.Errorf("audio sent with the video plays %v after it, want %v", a-v, tc.skew)
			}
			for i, tr := range f.Tracks {
				if tr.Timing != tc.timings[i] {
					t.Errorf("track %s timed by %q, want %q", tr.TrackID, tr.Timing, tc.timings[i])
				}
			}
			// The file starts with its first frame, wherever it falls:
			// the video's arrival, or what it was captured with.
			if d := time.Duration(f.StartOffsetMs)*time.Millisecond - delays[1]; d < -2*time.Millisecond || d > 2*time.Millisecond+tc.skew {
				t.Errorf("file starts at %d ms", f.StartOffsetMs)
			}
			if e := decodeErrors(t, path); e != "" {
				t.Errorf("decoding: %s", e)
			}
		})
	}
}

// TestSenderReportFirst: a tap opened on a stream whose reports the SFU
// has seen gets the latest before the first packet, and nothing is held:
// the file is written while the media flows, long before the wait for a
// report would have ended.
func TestSenderReportFirst(t *testing.T) {
	dir := sampleMedia(t)
	spool := t.TempDir()
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{Sink: &dirSink{dir: t.TempDir()}, SessionID: uuid.New(), SpoolDir: spool,
		Logger: testenv.Logger(t), Now: clock.Now, SenderReportWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Discard()
	p := uuid.New()
	audio, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "audio", Codec: opusCodec})
	video, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "video", Codec: vp8Codec})
	// Reports "sent" before the recording started, delivered first.
	pkts := withReports([][]timedPacket{opusPackets(t, dir, 0, 11), vp8Packets(t, dir, 1, 22)},
		[]uint32{48000, 90000}, []reportPlan{{-3 * time.Second, time.Hour}, {-time.Second, time.Hour}}, []time.Duration{0, 0}, time.Second)
	for i := range pkts {
		pkts[i].at = max(pkts[i].at, 0)
	}
	feed(t, clock, 0, pkts, []TrackWriter{audio, video})
	// The spool file grows with the media (the clock stands still, so a
	// hold would never end).
	var files []string
	if !wait.Within(10*time.Second, func() bool {
		files, _ = filepath.Glob(filepath.Join(spool, "*", "*.webm"))
		if len(files) != 1 {
			return false
		}
		st, err := os.Stat(files[0])
		return err == nil && st.Size() > 50_000
	}) {
		t.Fatalf("no media written while reports were known: spool %v", files)
	}
}

// TestSenderReportWaitEnds: the video's reports come, the audio's never
// do. The audio is timed by arrival once the wait is over, and the file is
// written from then on; the manifest says how each track was timed.
func TestSenderReportWaitEnds(t *testing.T) {
	dir := sampleMedia(t)
	sink := &dirSink{dir: t.TempDir()}
	spool := t.TempDir()
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{Sink: sink, SessionID: uuid.New(), SpoolDir: spool,
		Logger: testenv.Logger(t), Now: clock.Now, SenderReportWait: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p := uuid.New()
	audio, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "audio", Codec: opusCodec})
	video, _ := rec.Track(TrackInfo{ParticipantID: p, StreamID: "s", TrackID: "video", Codec: vp8Codec})
	sound := opusPackets(t, dir, 0, 11)
	pkts := withReports([][]timedPacket{sound, vp8Packets(t, dir, 1, 22)},
		[]uint32{48000, 90000}, []reportPlan{{}, {200 * time.Millisecond, time.Second}}, []time.Duration{0, 0}, mediaSeconds*time.Second)
	var first, rest []timedPacket
	for _, p := range pkts {
		if p.at < 3*time.Second {
			first = append(first, p)
		} else {
			rest = append(rest, p)
		}
	}
	feed(t, clock, 0, first, []TrackWriter{audio, video})
	// Past the wait: the hold ended and the file is being written before
	// the recording stops.
	wait.For(t, 10*time.Second, "the file to start after the wait for reports", func() bool {
		files, _ := filepath.Glob(filepath.Join(spool, "*", "*.webm"))
		return len(files) == 1
	})
	feed(t, clock, 0, rest, []TrackWriter{audio, video})
	m, err := rec.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 1 {
		t.Fatalf("files %+v", m.Files)
	}
	if got := []string{m.Files[0].Tracks[0].Timing, m.Files[0].Tracks[1].Timing}; !slices.Equal(got, []string{TimingArrival, TimingSenderReports}) {
		t.Errorf("timings %v", got)
	}
	if e := decodeErrors(t, sink.path(m.Files[0].Key)); e != "" {
		t.Errorf("decoding: %s", e)
	}
	// Both reach the end: nothing was lost to the hold.
	if a := packetTimes(t, sink.path(m.Files[0].Key), "a:0"); len(a) != len(sound) {
		t.Errorf("%d audio frames, sent %d", len(a), len(sound))
	}
}
