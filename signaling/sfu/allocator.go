package sfu

import (
	"sync"
	"sync/atomic"
	"time"
)

// Layer selection.
const (
	upSwitchHeadroom = 85                     // % of a share a higher layer may use before we switch up
	upSwitchHoldoff  = 2 * time.Second        // no switch up this soon after a switch down
	allocInterval    = 200 * time.Millisecond // at most this often on REMB

	// A browser's REMB comes from a receive-side estimator (libwebrtc's
	// AIMD rate control) that starts from what it sees at first, ramps up
	// by about 8 % a second and never rises above about 1.5 times what the
	// subscriber receives: it cannot say that a higher layer would fit.
	// Only a falling estimate says the link is congested. So a subscriber
	// switches down when its estimate has fallen recently and the layer no
	// longer fits; until its estimate has fallen once, the bandwidth
	// assumed without one stands; and while the estimate is well above
	// what it receives and has not fallen lately, the allocator tries the
	// next layer up (a probe), backing off after each probe that fails.
	estimateFall    = 95              // % of the previous estimate below which a new one is a fall
	congestionHold  = 2 * time.Second // a fall makes the estimate binding for this long
	probeHeadroom   = 130             // % of what the subscriber receives the estimate must reach to probe
	probeWindow     = 5 * time.Second // a switch down this soon after a probe means the probe failed
	probeBackoffMin = 4 * time.Second
	probeBackoffMax = 60 * time.Second
)

// allocState is what the allocator remembers of one subscriber between
// two runs. Times are Clock readings; 0 is never.
type allocState struct {
	hasREMB      bool  // the estimate comes from the subscriber, not the default
	lastFall     int64 // the last falling estimate (congestion)
	lastDownAt   int64 // the last switch down, for hysteresis
	lastProbeAt  int64 // the last probe
	probeJudged  bool  // the last probe has been found to hold or to fail
	probeBackoff time.Duration
}

// allocTrack is one down-track as the allocator sees it.
type allocTrack struct {
	simulcast bool
	brs       []uint64 // each layer's bitrate, 0 for a silent or absent layer
	// maxLayer is the highest layer the subscriber allows (its cap, the
	// top layer without one), -1 when paused.
	maxLayer        int
	current, target int // the down-track's layers
}

// allocate shares a subscriber's estimate among its video tracks and
// returns each track's target layer, with the state to remember: tracks
// without simulcast take what they take, the simulcast ones share the rest
// equally, each getting the highest layer that fits its share and the
// subscriber's preference. Switching up needs headroom and waits a while
// after a switch down, so that the layer does not oscillate; switching
// down needs a falling estimate (or a cap, or a layer gone silent); and an
// uncongested subscriber probes one layer up at a time.
//
// It is a pure function of the time, the estimate, the bandwidth assumed
// without one, the state and the tracks.
func allocate(now int64, estimate, assumed uint64, st allocState, tracks []allocTrack) ([]int, allocState) {
	targets := make([]int, len(tracks))
	congested := since(now, st.lastFall) < congestionHold
	budget := estimate
	if st.lastFall == 0 {
		// Until the estimate has fallen once it is still ramping up from
		// wherever the estimator started (often a few tens of kbit/s):
		// the bandwidth assumed without an estimate stands.
		budget = max(budget, assumed)
	}
	var received uint64 // what the subscriber receives now, bit/s
	nsim := 0
	for i, t := range tracks {
		if !t.simulcast {
			targets[i] = min(t.maxLayer, 0)
			if t.maxLayer >= 0 && len(t.brs) > 0 {
				budget -= min(t.brs[0], budget)
				received += t.brs[0]
			}
			continue
		}
		nsim++
		if cur := t.cur(); cur >= 0 && cur < len(t.brs) {
			received += t.brs[cur]
		}
	}
	st = judgeProbe(now, st)
	if nsim == 0 {
		return targets, st
	}
	sinceDown := since(now, st.lastDownAt)
	probe := !congested && st.hasREMB && estimate >= received*probeHeadroom/100 &&
		sinceDown >= upSwitchHoldoff && since(now, st.lastProbeAt) >= st.probeBackoff
	share := budget / uint64(nsim)
	for i, t := range tracks {
		if !t.simulcast {
			continue
		}
		best := t.choose(share, congested, sinceDown)
		if best < 0 {
			targets[i] = -1 // paused: neither a probe nor a switch down
			continue
		}
		// A probe: one layer up, from a layer being forwarded (not while
		// a switch is under way).
		if probe && t.canProbe(best) {
			best++
			probe = false
			st.lastProbeAt, st.probeJudged = now, false
		}
		if cur := t.cur(); cur >= 0 && best < cur {
			st.lastDownAt = now
		}
		targets[i] = best
	}
	return targets, st
}

// cur is the layer being forwarded, or the target while nothing is yet.
func (t *allocTrack) cur() int {
	if t.current < 0 {
		return t.target
	}
	return t.current
}

// choose picks a simulcast track's layer for its share of the budget.
func (t *allocTrack) choose(share uint64, congested bool, sinceDown time.Duration) int {
	if t.maxLayer < 0 {
		return -1
	}
	cur := t.cur()
	best := chooseLayer(t.brs, cur, t.maxLayer, share)
	if cur >= 0 && best > cur && sinceDown < upSwitchHoldoff {
		best = cur
	}
	// Without a fall of the estimate, a layer that is allowed and still
	// sending stays: an estimate below it is still ramping up.
	if !congested && best < cur && cur <= t.maxLayer && cur < len(t.brs) && t.brs[cur] > 0 {
		best = cur
	}
	return best
}

// canProbe reports whether the track may try the layer above best.
func (t *allocTrack) canProbe(best int) bool {
	cur := t.cur()
	return t.current >= 0 && t.current == t.target && best == cur && cur < t.maxLayer &&
		cur+1 < len(t.brs) && t.brs[cur+1] > 0
}

// judgeProbe finds the last probe failed if the estimate fell soon after
// it (the next one waits twice as long), held if it did not.
func judgeProbe(now int64, st allocState) allocState {
	if st.probeBackoff == 0 {
		st.probeBackoff = probeBackoffMin
	}
	if st.lastProbeAt == 0 || st.probeJudged {
		return st
	}
	switch {
	case st.lastFall > st.lastProbeAt && time.Duration(st.lastFall-st.lastProbeAt) < probeWindow:
		st.probeBackoff = min(2*st.probeBackoff, probeBackoffMax)
		st.probeJudged = true
	case since(now, st.lastProbeAt) >= probeWindow:
		st.probeBackoff = probeBackoffMin
		st.probeJudged = true
	}
	return st
}

// chooseLayer returns the highest live layer up to maxL whose bitrate fits
// share (with headroom above the current layer cur), else the lowest live
// one, else 0. brs holds each layer's bitrate, 0 for a silent layer.
func chooseLayer(brs []uint64, cur, maxL int, share uint64) int {
	best, lowest := -1, -1
	for i := 0; i <= maxL && i < len(brs); i++ {
		if brs[i] == 0 {
			continue
		}
		if lowest < 0 {
			lowest = i
		}
		limit := share
		if i > cur {
			limit = share * upSwitchHeadroom / 100
		}
		if brs[i] <= limit {
			best = i
		}
	}
	if best < 0 {
		best = lowest
	}
	if best < 0 {
		// Nothing is live yet: start from the lowest layer.
		best = 0
	}
	return best
}

// since returns how long ago a clock time t was; t == 0 means never.
func since(now, t int64) time.Duration {
	if t == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(now - t)
}

// bandwidth is one subscriber's estimate and the allocator's state for it.
type bandwidth struct {
	clock     Clock
	assumed   uint64        // bandwidth assumed without an estimate (Config.SubscriberBitrate)
	estimate  atomic.Uint64 // bit/s
	lastAlloc atomic.Int64

	mu sync.Mutex // taken before the peer lock (allocate reads the down-tracks)
	st allocState
}

func newBandwidth(c Clock, assumed uint64) *bandwidth {
	b := &bandwidth{clock: c, assumed: assumed}
	b.estimate.Store(assumed)
	return b
}

// setEstimate records a subscriber's bandwidth estimate (from REMB) and
// reallocates on a fall, or if the last allocation is old enough.
func (p *Peer) setEstimate(bps uint64) {
	bw := p.bw
	now := bw.clock.Now()
	bw.mu.Lock()
	prev := bw.estimate.Swap(bps)
	// The first estimate is where the subscriber's estimator starts, not
	// a fall from the default assumed before it.
	fell := bw.st.hasREMB && bps < prev/100*estimateFall
	bw.st.hasREMB = true
	if fell {
		bw.st.lastFall = now
	}
	bw.mu.Unlock()
	if fell || since(now, bw.lastAlloc.Load()) >= allocInterval {
		p.allocate()
	}
}

// allocateTrack chooses the layer of one down-track (on bind or a preference change).
func (p *Peer) allocateTrack(dt *downTrack) {
	if dt.pinned >= 0 {
		dt.setTarget(dt.pinnedTarget())
		return
	}
	if len(dt.up.rids) == 0 {
		dt.setTarget(dt.capLayer(0))
		return
	}
	p.allocate()
}

// allocate runs the allocator over the subscriber's bound down-tracks and
// sets their targets.
func (p *Peer) allocate() {
	bw := p.bw
	bw.mu.Lock()
	defer bw.mu.Unlock()
	now := bw.clock.Now()
	bw.lastAlloc.Store(now)
	var dts []*downTrack
	var tracks []allocTrack
	for _, dt := range p.downTracks() {
		if dt.bound.Load() == nil {
			continue
		}
		if dt.pinned >= 0 {
			// A relay's layer is not shared out: it is sent once its
			// stream is there.
			dt.setTarget(dt.pinnedTarget())
			continue
		}
		dts = append(dts, dt)
		tracks = append(tracks, dt.allocTrack(now))
	}
	targets, st := allocate(now, bw.estimate.Load(), bw.assumed, bw.st, tracks)
	bw.st = st
	for i, dt := range dts {
		dt.setTarget(targets[i])
	}
}

// allocTrack describes the down-track to the allocator at clock time now.
func (dt *downTrack) allocTrack(now int64) allocTrack {
	top := max(len(dt.up.rids)-1, 0)
	current, target := dt.layers()
	return allocTrack{
		simulcast: len(dt.up.rids) > 0,
		brs:       dt.up.bitrates(now, nil),
		maxLayer:  dt.capLayer(top),
		current:   current,
		target:    target,
	}
}

// reallocateTrack re-runs allocation for every subscriber of t (a new
// simulcast layer has appeared).
func (r *Room) reallocateTrack(t *UpTrack) {
	r.mu.Lock()
	var peers []*Peer
	for _, p := range r.peers {
		if p.hasDown(t) {
			peers = append(peers, p)
		}
	}
	r.mu.Unlock()
	for _, p := range peers {
		p.allocate()
	}
}
