package webm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// This file holds the test fixtures: real media made by ffmpeg, turned
// into RTP by pion's payloaders, a clock the tests move with the media, a
// directory-backed Sink, and ffprobe.

const mediaSeconds = 4 // length of the generated samples

var (
	mediaOnce sync.Once
	mediaDir  string
	mediaErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if mediaDir != "" {
		os.RemoveAll(mediaDir)
	}
	os.Exit(code)
}

// sampleMedia generates (once per test binary) VP8, H.264 and Opus samples
// of mediaSeconds, with a keyframe every second.
func sampleMedia(t testing.TB) string {
	t.Helper()
	ffmpeg := testenv.Command(t, "ffmpeg")
	testenv.Command(t, "ffprobe")
	mediaOnce.Do(func() {
		mediaDir, mediaErr = os.MkdirTemp("", "recorder-media-")
		if mediaErr != nil {
			return
		}
		d := strconv.Itoa(mediaSeconds)
		video := []string{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", d}
		for _, args := range [][]string{
			append(video, "-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "400k", "-f", "ivf", "vp8.ivf"),
			append(video, "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0",
				"-bsf:v", "h264_mp4toannexb", "-f", "h264", "h264.h264"),
			{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", d, "-c:a", "libopus",
				"-frame_duration", "20", "-page_duration", "20000", "-ac", "2", "-f", "ogg", "opus.ogg"},
		} {
			cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-v", "error", "-y"}, args...)...)
			cmd.Dir = mediaDir
			if out, err := cmd.CombinedOutput(); err != nil {
				mediaErr = errors.New(string(out) + err.Error())
				return
			}
		}
	})
	if mediaErr != nil {
		t.Fatalf("generating media: %v", mediaErr)
	}
	return mediaDir
}

// timedPacket is an RTP packet and when it is sent, from the sender's start.
type timedPacket struct {
	at    time.Duration
	track int
	p     *rtp.Packet
	sr    *SenderReport // a sender report instead of a packet
}

func vp8Packets(t testing.TB, dir string, track int, ssrc uint32) []timedPacket {
	f, err := os.Open(filepath.Join(dir, "vp8.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	pk := rtp.NewPacketizer(1200, 96, ssrc, &codecs.VP8Payloader{}, rtp.NewRandomSequencer(), 90000)
	var out []timedPacket
	for i := 0; ; i++ {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		at := time.Duration(i) * time.Second / 30 // ffmpeg made 30 frames a second
		for _, p := range pk.Packetize(frame, 3000) {
			out = append(out, timedPacket{at: at, track: track, p: p})
		}
		if i%25 == 7 { // bandwidth-probe padding, as browsers send
			for _, p := range pk.GeneratePadding(2) {
				out = append(out, timedPacket{at: at, track: track, p: p})
			}
		}
	}
	return out
}

func h264Packets(t testing.TB, dir string, track int, ssrc uint32) []timedPacket {
	f, err := os.Open(filepath.Join(dir, "h264.h264"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	pk := rtp.NewPacketizer(1200, 102, ssrc, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	var out []timedPacket
	var au []byte
	n := 0
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		au = append(au, 0, 0, 0, 1)
		au = append(au, nal.Data...)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr {
			at := time.Duration(n) * time.Second / 30
			for _, p := range pk.Packetize(au, 3000) {
				out = append(out, timedPacket{at: at, track: track, p: p})
			}
			au, n = nil, n+1
		}
	}
	return out
}

func opusPackets(t testing.TB, dir string, track int, ssrc uint32) []timedPacket {
	f, err := os.Open(filepath.Join(dir, "opus.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	pk := rtp.NewPacketizer(1200, 111, ssrc, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	var out []timedPacket
	for n := 0; ; {
		page, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		at := time.Duration(n) * 20 * time.Millisecond
		for _, p := range pk.Packetize(page, 960) {
			out = append(out, timedPacket{at: at, track: track, p: p})
		}
		n++
	}
	return out
}

// impair loses, duplicates and reorders packets as a network would.
func impair(pkts []timedPacket, seed uint64, loss, dup, reorder float64) (out []timedPacket, lost int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	for _, p := range pkts {
		switch x := rng.Float64(); {
		case x < loss:
			lost++
			continue
		case x < loss+dup:
			out = append(out, p)
		}
		out = append(out, p)
	}
	for i := 0; i+1 < len(out); i++ {
		if rng.Float64() < reorder {
			out[i].p, out[i+1].p = out[i+1].p, out[i].p
			out[i].track, out[i+1].track = out[i+1].track, out[i].track
			i++
		}
	}
	return out, lost
}

// merge interleaves packet lists by send time, shifting each by its offset.
func merge(lists [][]timedPacket, offsets []time.Duration) []timedPacket {
	var all []timedPacket
	for i, l := range lists {
		for _, p := range l {
			p.at += offsets[i]
			all = append(all, p)
		}
	}
	// Stable by time, so each list keeps its (impaired) order.
	sortStable(all)
	return all
}

func sortStable(p []timedPacket) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].at < p[j-1].at; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// testClock is moved by the test as it sends packets.
type testClock struct{ ns atomic.Int64 }

var clockBase = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func (c *testClock) Now() time.Time          { return clockBase.Add(time.Duration(c.ns.Load())) }
func (c *testClock) Set(d time.Duration)     { c.ns.Store(int64(d)) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// dirSink stores objects as files, write-once, visible only when complete.
type dirSink struct {
	dir  string
	mu   sync.Mutex
	puts []string
}

func (s *dirSink) Put(ctx context.Context, key string, r io.Reader, contentType string) (int64, string, error) {
	path := filepath.Join(s.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".put-*")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", err
	}
	if err := os.Link(tmp.Name(), path); err != nil { // fails if the key exists
		return 0, "", err
	}
	s.mu.Lock()
	s.puts = append(s.puts, key)
	s.mu.Unlock()
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func (s *dirSink) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		StartTime string `json:"start_time"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffprobe"), "-v", "error", "-of", "json",
		"-show_entries", "format=duration,format_name:stream=codec_name,codec_type,width,height,start_time", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return p
}

func (p probe) duration(t testing.TB) time.Duration {
	t.Helper()
	f, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe reports duration %q", p.Format.Duration)
	}
	return time.Duration(f * float64(time.Second))
}

func (p probe) codecs() string {
	var c []string
	for _, s := range p.Streams {
		c = append(c, s.CodecName)
	}
	return strings.Join(c, ",")
}

// decodeErrors decodes every frame of path with ffmpeg and returns what it
// complained about.
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command(testenv.Command(t, "ffmpeg"), "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return string(out)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
