package sfu

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// fakeClock is a Clock the tests move by hand.
type fakeClock struct{ now atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.now.Store(int64(time.Hour)) // 0 would mean "never"
	return c
}

func (c *fakeClock) Now() int64              { return c.now.Load() }
func (c *fakeClock) advance(d time.Duration) { c.now.Add(int64(d)) }

// allocFixture is one subscriber receiving one simulcast track whose three
// layers send 150, 400 and 800 kbit/s: the allocator alone, no media, on a
// clock of its own.
type allocFixture struct {
	t     *testing.T
	clock *fakeClock
	sub   *Peer
	dt    *downTrack
	up    *UpTrack
}

func newAllocFixture(t *testing.T) *allocFixture {
	clk := newFakeClock()
	room := &Room{log: slog.New(slog.DiscardHandler), sfu: &SFU{clock: clk}}
	pub := &Peer{room: room, log: room.log, done: make(chan struct{})}
	up := &UpTrack{id: "video", room: room, peer: pub, kind: webrtc.RTPCodecTypeVideo, ck: codecVP8,
		rids: []string{"q", "h", "f"}, layers: make([]*layer, 3), downs: map[*downTrack]struct{}{}}
	for i, br := range []uint64{150_000, 400_000, 800_000} {
		l := &layer{up: up, index: i, done: make(chan struct{})}
		l.bitrate.Store(br)
		up.layers[i] = l
	}
	sub := &Peer{room: room, log: room.log, done: make(chan struct{}), signalFn: func(string, any) {},
		downs: map[*UpTrack][]*downTrack{}, bw: newBandwidth(clk, DefaultSubscriberBitrate)}
	dt := newDownTrack(up, sub)
	dt.bound.Store(&binding{})
	sub.downs[up] = []*downTrack{dt}
	return &allocFixture{t: t, clock: clk, sub: sub, dt: dt, up: up}
}

// live marks every layer as having just sent a packet.
func (f *allocFixture) live() {
	for _, l := range f.up.layers {
		l.lastPacket.Store(f.clock.Now())
	}
}

// remb delivers an estimate, one allocation interval after the last; the
// forwarder then completes any switch.
func (f *allocFixture) remb(bps uint64) {
	f.clock.advance(allocInterval)
	f.live()
	f.sub.setEstimate(bps)
	f.switched()
}

// switched completes a pending switch, as the target's keyframe would.
func (f *allocFixture) switched() {
	f.dt.mu.Lock()
	f.dt.fwd.current = f.dt.fwd.target
	f.dt.mu.Unlock()
}

// age lets time pass.
func (f *allocFixture) age(d time.Duration) { f.clock.advance(d) }

func (f *allocFixture) want(step string, layer int) {
	f.t.Helper()
	if cur, target := f.dt.layers(); target != layer {
		f.t.Fatalf("%s: target layer %d (current %d), want %d", step, target, cur, layer)
	}
}

func TestAllocatorFollowsABrowserEstimate(t *testing.T) {
	f := newAllocFixture(t)
	f.live()
	f.sub.allocate()
	f.switched()
	f.want("before any REMB (2.5 Mbit/s assumed)", 2)

	// A browser's first estimates start low and ramp up: no reason to
	// leave the top layer.
	f.remb(300_000)
	f.want("first, ramping estimate", 2)
	f.remb(330_000)
	f.want("rising estimate below the layer", 2)

	// A fall is congestion: down to what fits.
	f.remb(1_000_000)
	f.remb(450_000)
	f.want("estimate fell to 450k", 1)
	f.remb(460_000)
	f.want("right after the fall", 1)

	// The estimate cannot rise above ~1.5× what is received (610k for
	// 400k), never enough for 800k: the allocator probes one layer up once
	// the fall is old and the estimate well above what the subscriber gets.
	f.age(3 * time.Second)
	f.remb(610_000)
	f.want("probe up", 2)

	// The probe congests the link: the estimate falls, back down, and the
	// next probe waits twice as long (8 s).
	f.remb(500_000)
	f.want("failed probe", 1)
	f.age(3 * time.Second)
	f.remb(610_000)
	f.want("3 s after a failed probe", 1)
	f.age(3 * time.Second)
	f.remb(615_000)
	f.want("6 s after a failed probe", 1)
	f.age(3 * time.Second)
	f.remb(620_000)
	f.want("9 s after a failed probe", 2)

	// This probe holds: the estimate keeps rising.
	for range 3 {
		f.age(2 * time.Second)
		f.remb(f.sub.bw.estimate.Load() * 105 / 100)
		f.want("a probe that holds", 2)
	}
	if b := f.sub.bw.st.probeBackoff; b != probeBackoffMin {
		t.Errorf("backoff after a probe that held: %v, want %v", b, probeBackoffMin)
	}
}

func TestAllocatorCapAndProbeBackUp(t *testing.T) {
	f := newAllocFixture(t)
	f.live()
	f.sub.allocate()
	f.switched()
	f.remb(900_000)
	f.want("900k", 2)

	// The subscriber caps the track at the lowest layer; its estimate then
	// sinks to what the lowest layer lets it reach.
	f.dt.mu.Lock()
	f.dt.maxLayer = 0
	f.dt.mu.Unlock()
	f.sub.allocateTrack(f.dt)
	f.switched()
	f.want("capped at 0", 0)
	f.remb(800_000)
	f.remb(235_000)
	f.want("capped, low estimate", 0)

	// Uncapped, 235k fits only the lowest layer; probes climb one layer at
	// a time as the estimate follows what is received.
	f.dt.mu.Lock()
	f.dt.maxLayer = -1
	f.dt.mu.Unlock()
	f.age(3 * time.Second)
	f.remb(236_000)
	f.want("uncapped", 1)
	f.age(5 * time.Second)
	f.remb(610_000)
	f.want("second probe", 2)
}

func TestAllocatorRampingEstimateKeepsTheAssumption(t *testing.T) {
	f := newAllocFixture(t)
	f.live()
	f.sub.allocate()
	f.switched()
	// Chromium's estimator often starts from the few packets it saw first.
	f.remb(50_000)
	f.remb(54_000)
	f.want("ramping from 50k", 2)
	f.dt.mu.Lock()
	f.dt.maxLayer = 0
	f.dt.mu.Unlock()
	f.sub.allocateTrack(f.dt)
	f.switched()
	f.want("capped", 0)
	f.dt.mu.Lock()
	f.dt.maxLayer = -1
	f.dt.mu.Unlock()
	f.age(3 * time.Second)
	f.remb(58_000)
	f.want("uncapped, never a fall", 2)
}

func TestAllocatorWithoutREMBNeverProbes(t *testing.T) {
	f := newAllocFixture(t)
	f.sub.bw = newBandwidth(f.clock, 500_000) // a configured SubscriberBitrate
	f.live()
	f.sub.allocate()
	f.switched()
	f.want("500k assumed", 1)
	f.age(time.Minute)
	f.live()
	f.sub.allocate()
	f.want("no REMB: no probe", 1)
}

func TestChooseLayer(t *testing.T) {
	brs := []uint64{150_000, 400_000, 800_000}
	cases := []struct {
		name      string
		brs       []uint64
		cur, maxL int
		share     uint64
		want      int
	}{
		{"everything fits", brs, 2, 2, 5_000_000, 2},
		{"top needs headroom to switch up", brs, 1, 2, 900_000, 1},
		{"top stays without headroom", brs, 2, 2, 850_000, 2},
		{"capped", brs, 2, 0, 5_000_000, 0},
		{"nothing fits: lowest live", []uint64{0, 400_000, 800_000}, -1, 2, 100_000, 1},
		{"nothing live yet", []uint64{0, 0, 0}, -1, 2, 5_000_000, 0},
		{"silent top layer skipped", []uint64{150_000, 400_000, 0}, 2, 2, 5_000_000, 1},
	}
	for _, c := range cases {
		if got := chooseLayer(c.brs, c.cur, c.maxL, c.share); got != c.want {
			t.Errorf("%s: layer %d, want %d", c.name, got, c.want)
		}
	}
}

// The allocator as a pure function: each case is the time, the estimate,
// the state and the tracks, and the targets and state that follow.
func TestAllocate(t *testing.T) {
	const now = int64(time.Hour)
	sec := func(d float64) int64 { return now - int64(d*float64(time.Second)) }
	brs := []uint64{150_000, 400_000, 800_000}
	sim := func(current, target, maxLayer int) allocTrack {
		return allocTrack{simulcast: true, brs: brs, maxLayer: maxLayer, current: current, target: target}
	}
	plain := func(br uint64, maxLayer int) allocTrack {
		return allocTrack{brs: []uint64{br}, maxLayer: maxLayer, current: 0, target: 0}
	}
	remb := allocState{hasREMB: true, probeBackoff: probeBackoffMin}
	cases := []struct {
		name     string
		estimate uint64
		st       allocState
		tracks   []allocTrack
		want     []int
		check    func(t *testing.T, st allocState)
	}{
		{name: "no estimate yet: the assumed bandwidth stands", estimate: 50_000, st: allocState{},
			tracks: []allocTrack{sim(-1, -1, 2)}, want: []int{2}},
		{name: "non-simulcast tracks take theirs first", estimate: 1_000_000, st: allocState{lastFall: sec(10)},
			tracks: []allocTrack{plain(500_000, 0), sim(0, 0, 2)}, want: []int{0, 1}},
		{name: "a paused track gets nothing and no budget", estimate: 1_000_000, st: allocState{lastFall: sec(10)},
			tracks: []allocTrack{plain(500_000, -1), sim(1, 1, -1), sim(2, 2, 2)}, want: []int{-1, -1, 2}},
		{name: "a cap holds", estimate: 5_000_000, st: remb,
			tracks: []allocTrack{sim(2, 2, 0)}, want: []int{0}},
		{name: "congestion: down to what fits", estimate: 450_000, st: allocState{hasREMB: true, lastFall: sec(0.1)},
			tracks: []allocTrack{sim(2, 2, 2)}, want: []int{1},
			check: func(t *testing.T, st allocState) {
				if st.lastDownAt != now {
					t.Errorf("switch down not remembered: %d", st.lastDownAt)
				}
			}},
		{name: "a low estimate without a fall is still ramping: stay", estimate: 300_000, st: allocState{hasREMB: true, lastFall: sec(30)},
			tracks: []allocTrack{sim(2, 2, 2)}, want: []int{2}},
		{name: "two simulcast tracks share", estimate: 1_000_000, st: allocState{hasREMB: true, lastFall: sec(0.5)},
			tracks: []allocTrack{sim(2, 2, 2), sim(2, 2, 2)}, want: []int{1, 1}},
		{name: "no switch up right after a switch down", estimate: 5_000_000, st: allocState{hasREMB: true, lastDownAt: sec(1), lastFall: sec(10)},
			tracks: []allocTrack{sim(1, 1, 2)}, want: []int{1}},
		{name: "probe one layer up", estimate: 610_000, st: allocState{hasREMB: true, lastFall: sec(3), lastDownAt: sec(3)},
			tracks: []allocTrack{sim(1, 1, 2)}, want: []int{2},
			check: func(t *testing.T, st allocState) {
				if st.lastProbeAt != now || st.probeJudged {
					t.Errorf("probe not remembered: %+v", st)
				}
			}},
		{name: "no probe below the headroom", estimate: 500_000, st: allocState{hasREMB: true, lastFall: sec(3), lastDownAt: sec(3)},
			tracks: []allocTrack{sim(1, 1, 2)}, want: []int{1}},
		{name: "no probe while a switch is under way", estimate: 610_000, st: allocState{hasREMB: true, lastFall: sec(3), lastDownAt: sec(3)},
			tracks: []allocTrack{sim(0, 1, 2)}, want: []int{1}},
		{name: "no probe without REMB", estimate: 610_000, st: allocState{lastFall: sec(30)},
			tracks: []allocTrack{sim(1, 1, 2)}, want: []int{1}},
		{name: "a failed probe doubles the backoff", estimate: 500_000,
			st:     allocState{hasREMB: true, lastProbeAt: sec(2), lastFall: sec(1), probeBackoff: probeBackoffMin},
			tracks: []allocTrack{sim(2, 2, 2)}, want: []int{1},
			check: func(t *testing.T, st allocState) {
				if st.probeBackoff != 2*probeBackoffMin || !st.probeJudged {
					t.Errorf("after a failed probe: %+v", st)
				}
			}},
		{name: "a probe that held resets the backoff", estimate: 900_000,
			st:     allocState{hasREMB: true, lastProbeAt: sec(6), lastFall: sec(20), probeBackoff: 16 * time.Second},
			tracks: []allocTrack{sim(2, 2, 2)}, want: []int{2},
			check: func(t *testing.T, st allocState) {
				if st.probeBackoff != probeBackoffMin || !st.probeJudged {
					t.Errorf("after a probe that held: %+v", st)
				}
			}},
		{name: "nothing live yet: the lowest layer", estimate: 5_000_000, st: remb,
			tracks: []allocTrack{{simulcast: true, brs: []uint64{0, 0, 0}, maxLayer: 2, current: -1, target: -1}}, want: []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, st := allocate(now, c.estimate, DefaultSubscriberBitrate, c.st, c.tracks)
			if len(got) != len(c.want) {
				t.Fatalf("targets %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("targets %v, want %v", got, c.want)
				}
			}
			if c.check != nil {
				c.check(t, st)
			}
		})
	}
}

// A relay's down-tracks are pinned, one to each layer: whatever the
// estimate, each sends its layer once that layer's stream is there, and
// the allocator leaves them be.
func TestRelayPinsEachLayer(t *testing.T) {
	f := newAllocFixture(t)
	top := f.up.layers[2]
	f.up.layers[2] = nil // the top layer's stream has not arrived yet
	f.sub.relay.Store(true)
	dts := f.sub.newDownTracks(f.up)
	if len(dts) != 3 {
		t.Fatalf("%d down-tracks for a relay of a 3-layer track, want 3", len(dts))
	}
	for _, dt := range dts {
		dt.bound.Store(&binding{})
	}
	f.sub.downs[f.up] = dts
	f.sub.setEstimate(5_000_000)
	f.clock.advance(allocInterval)
	f.sub.setEstimate(100_000) // a fall far below every layer
	for i, dt := range dts {
		want := i
		if i == 2 {
			want = -1
		}
		if _, target := dt.layers(); target != want {
			t.Errorf("pinned down-track %d: target %d, want %d", i, target, want)
		}
		if dt.ID() == f.up.id || dt.pinnedRID() != f.up.rids[i] {
			t.Errorf("pinned down-track %d: ID %q, RID %q", i, dt.ID(), dt.pinnedRID())
		}
	}
	f.up.layers[2] = top
	f.sub.allocate()
	if _, target := dts[2].layers(); target != 2 {
		t.Errorf("top layer arrived: pinned target %d, want 2", target)
	}
	// A cap below a pinned layer stops that down-track; it never sends
	// another layer.
	dts[2].mu.Lock()
	dts[2].maxLayer = 0
	dts[2].mu.Unlock()
	f.sub.allocate()
	if _, target := dts[2].layers(); target != -1 {
		t.Errorf("pinned to layer 2, capped at 0: target %d, want -1", target)
	}
	// An ordinary subscriber still gets one down-track.
	f.sub.relay.Store(false)
	if n := len(f.sub.newDownTracks(f.up)); n != 1 {
		t.Errorf("%d down-tracks for an ordinary subscriber, want 1", n)
	}
}
