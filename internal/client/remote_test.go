package client

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// The client's keyframe parser is the tests' oracle, independent of the
// SFU's (signaling/sfu/codec.go); these are the same cases as the SFU's
// TestParseFrame.
func TestKeyframeStart(t *testing.T) {
	for _, c := range []struct {
		name  string
		codec string
		p     []byte
		want  bool
	}{
		{"vp8 keyframe", webrtc.MimeTypeVP8, []byte{0x10, 0x00}, true},
		{"vp8 delta", webrtc.MimeTypeVP8, []byte{0x10, 0x01}, false},
		{"vp8 continuation", webrtc.MimeTypeVP8, []byte{0x00, 0x00}, false},
		{"vp8 extended, picture ID", webrtc.MimeTypeVP8, []byte{0x90, 0x80, 0x85, 0x01, 0x00}, true},
		{"h264 IDR", webrtc.MimeTypeH264, []byte{0x65, 0x88}, true},
		{"h264 non-IDR", webrtc.MimeTypeH264, []byte{0x41, 0x9a}, false},
		{"h264 STAP-A with SPS", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 STAP-A with AUD, then SPS", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x09, 0xf0, 0x00, 0x02, 0x67, 0x42}, true},
		{"h264 STAP-A with SEI, then IDR", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88}, true},
		{"h264 STAP-A without a keyframe unit", webrtc.MimeTypeH264, []byte{0x78, 0x00, 0x02, 0x09, 0xf0, 0x00, 0x02, 0x41, 0x9a}, false},
		{"h264 STAP-A truncated", webrtc.MimeTypeH264, []byte{0x78, 0xff, 0xff}, false},
		{"h264 FU-A start of IDR", webrtc.MimeTypeH264, []byte{0x7c, 0x85, 0x00}, true},
		{"h264 FU-A middle", webrtc.MimeTypeH264, []byte{0x7c, 0x05, 0x00}, false},
	} {
		if got := keyframeStart(c.codec, c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func FuzzKeyframeStart(f *testing.F) {
	f.Add(true, []byte{0x78, 0x00, 0x02, 0x09, 0xf0, 0x00, 0x02, 0x67, 0x42})
	f.Add(false, []byte{0x90, 0x80, 0x85, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, h264 bool, p []byte) {
		codec := webrtc.MimeTypeVP8
		if h264 {
			codec = webrtc.MimeTypeH264
		}
		_ = keyframeStart(codec, p) // must not panic
	})
}

// TestJitter: RFC 3550's estimator over transit times — constant transit is
// no jitter; an alternating transit converges to the alternation.
func TestJitter(t *testing.T) {
	for _, c := range []struct {
		name     string
		transits []time.Duration
		wantSum  time.Duration
		wantN    int
		wantJ    time.Duration // approximately
	}{
		{"one packet", []time.Duration{5 * time.Millisecond}, 0, 0, 0},
		{"constant transit", []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, 0, 2, 0},
		{"one late packet", []time.Duration{time.Millisecond, 17 * time.Millisecond, time.Millisecond}, 32 * time.Millisecond, 2, 16*time.Millisecond/16 + (16*time.Millisecond-time.Millisecond)/16},
	} {
		var e jitter
		var sum time.Duration
		n := 0
		for _, tr := range c.transits {
			if d, ok := e.add(tr); ok {
				sum += d
				n++
			}
		}
		if sum != c.wantSum || n != c.wantN || e.j != c.wantJ {
			t.Errorf("%s: sum %v n %d j %v, want %v %d %v", c.name, sum, n, e.j, c.wantSum, c.wantN, c.wantJ)
		}
	}
	var e jitter
	for i := range 1000 {
		_, _ = e.add(time.Duration(i%2) * 4 * time.Millisecond)
	}
	if e.j < 3900*time.Microsecond || e.j > 4*time.Millisecond {
		t.Errorf("alternating 0/4 ms: j = %v, want ≈ 4 ms", e.j)
	}
}
