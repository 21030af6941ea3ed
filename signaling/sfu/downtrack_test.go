package sfu

import (
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestNTPAdd(t *testing.T) {
	const base = uint64(3_900_000_000) << 32 // some NTP time, whole seconds
	for _, d := range []time.Duration{0, time.Second, 4290 * time.Millisecond, 4300 * time.Millisecond,
		10 * time.Second, 60 * time.Second, 1500 * time.Millisecond, -time.Second} {
		got := ntpAdd(base, d)
		want := base
		if d > 0 {
			want += uint64(math.Round(d.Seconds() * (1 << 32)))
		}
		// One unit of 2^-32 s of rounding either way.
		if diff := int64(got - want); diff < -1 || diff > 1 {
			t.Errorf("ntpAdd(+%v) = %d.%d s, want %d.%d s", d, got>>32, got&0xffffffff, want>>32, want&0xffffffff)
		}
	}
}

// srFixture is a down-track forwarding layer 0 of an audio track whose
// publisher sent a sender report at clock() time 1 s.
func srFixture(t *testing.T) (*downTrack, *layer) {
	t.Helper()
	room := &Room{log: slog.New(slog.DiscardHandler)}
	pub := &Peer{room: room, log: room.log, done: make(chan struct{})}
	up := &UpTrack{id: "audio", room: room, peer: pub, kind: webrtc.RTPCodecTypeAudio, ck: codecOpus,
		codec:  webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}},
		layers: make([]*layer, 1), downs: map[*downTrack]struct{}{}}
	l := &layer{up: up, index: 0, clock: 48000, done: make(chan struct{})}
	up.layers[0] = l
	sub := &Peer{room: room, log: room.log, done: make(chan struct{}), signalFn: func(string, any) {}}
	dt := newDownTrack(up, sub)
	dt.bound.Store(&binding{ssrc: 42})
	dt.packets.Store(1)
	dt.fwd.started = true
	dt.fwd.cur = segment{layer: 0, tsOff: 1000}
	l.sr = senderReport{valid: true, ntp: uint64(3_900_000_000) << 32, rtp: 480_000, arrival: int64(time.Second)}
	return dt, l
}

// Sender reports go out about once a second, but the publisher's may be
// older: Chrome sends audio SRs about every 5 s, past the 4.29 s where the
// NTP arithmetic used to overflow.
func TestSenderReportAcrossTheOverflowBoundary(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 4290 * time.Millisecond, 4300 * time.Millisecond, 10 * time.Second, 60 * time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			dt, l := srFixture(t)
			sr := dt.senderReport(l.sr.arrival + int64(d))
			if sr == nil {
				t.Fatal("no sender report")
			}
			gotNTP := float64(sr.NTPTime-l.sr.ntp) / (1 << 32)
			if math.Abs(gotNTP-d.Seconds()) > 1e-6 {
				t.Errorf("NTP time advanced %.6f s, want %.6f s", gotNTP, d.Seconds())
			}
			wantRTP := l.sr.rtp + uint32(d.Seconds()*48000) + 1000
			if sr.RTPTime != wantRTP {
				t.Errorf("RTP time %d, want %d", sr.RTPTime, wantRTP)
			}
			if sr.SSRC != 42 {
				t.Errorf("SSRC %d, want the down-track's 42", sr.SSRC)
			}
		})
	}
}

// bitrates reads the layers while addLayer installs a new simulcast layer
// (the race detector finds the unlocked read this once had).
func TestBitratesWhileALayerIsAdded(t *testing.T) {
	for range 50 {
		up := &UpTrack{id: "video", kind: webrtc.RTPCodecTypeVideo, rids: []string{"q", "h", "f"}, layers: make([]*layer, 3)}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 3 {
				if !up.install(&layer{up: up, index: i, done: make(chan struct{})}) {
					t.Errorf("layer %d not installed", i)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 10 {
				if got := up.bitrates(clock(), nil); len(got) != 3 {
					t.Errorf("%d bitrates for 3 layers", len(got))
				}
			}
		}()
		wg.Wait()
	}
}
