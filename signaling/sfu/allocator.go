package sfu

import "time"

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

// setEstimate records a subscriber's bandwidth estimate (from REMB).
func (p *Peer) setEstimate(bps uint64) {
	prev := p.estimate.Swap(bps)
	now := clock()
	// The first estimate is where the subscriber's estimator starts, not
	// a fall from the default assumed before it.
	had := p.hasREMB.Swap(true)
	fell := had && bps < prev/100*estimateFall
	if fell {
		p.lastFall.Store(now)
	}
	if fell || since(now, p.lastAlloc.Load()) >= allocInterval {
		p.allocate()
	}
}

// since returns how long ago a clock() time t was; t == 0 means never.
func since(now, t int64) time.Duration {
	if t == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(now - t)
}

// allocateTrack chooses the layer of one down-track (on bind or a preference change).
func (p *Peer) allocateTrack(dt *downTrack) {
	if len(dt.up.rids) == 0 {
		dt.setTarget(dt.capLayer(0))
		return
	}
	p.allocate()
}

// simTrack is a simulcast down-track being allocated.
type simTrack struct {
	dt              *downTrack
	brs             []uint64
	current, target int // the down-track's
	cur             int // current, or target while nothing is forwarded yet
}

// allocate shares the subscriber's estimate among its video tracks: tracks
// without simulcast take what they take, the simulcast ones share the rest
// equally, each getting the highest layer that fits its share and the
// subscriber's preference. Switching up needs headroom and waits a while
// after a switch down, so that the layer does not oscillate; switching
// down needs a falling estimate (or a cap, or a layer gone silent); and an
// uncongested subscriber probes one layer up at a time.
func (p *Peer) allocate() {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	now := clock()
	p.lastAlloc.Store(now)
	estimate := p.estimate.Load()
	fall := p.lastFall.Load()
	congested := since(now, fall) < congestionHold
	budget := estimate
	if fall == 0 {
		// Until the estimate has fallen once it is still ramping up from
		// wherever the estimator started (often a few tens of kbit/s):
		// the bandwidth assumed without an estimate stands.
		budget = max(budget, p.assumed)
	}
	var sim []simTrack
	var received uint64 // what the subscriber receives now, bit/s
	for _, dt := range p.downTracks() {
		if dt.bound.Load() == nil {
			continue
		}
		brs := dt.up.bitrates(nil)
		if len(dt.up.rids) == 0 {
			t := dt.capLayer(0)
			dt.setTarget(t)
			if t >= 0 && len(brs) > 0 {
				budget -= min(brs[0], budget)
				received += brs[0]
			}
			continue
		}
		current, target := dt.layers()
		cur := current
		if cur < 0 {
			cur = target
		}
		if cur >= 0 && cur < len(brs) {
			received += brs[cur]
		}
		sim = append(sim, simTrack{dt: dt, brs: brs, current: current, target: target, cur: cur})
	}
	// Judge the last probe: failed if the estimate fell soon after it,
	// held if it did not.
	if p.probeBackoff == 0 {
		p.probeBackoff = probeBackoffMin
	}
	if p.lastProbeAt != 0 && !p.probeJudged {
		switch {
		case fall > p.lastProbeAt && time.Duration(fall-p.lastProbeAt) < probeWindow:
			p.probeBackoff = min(2*p.probeBackoff, probeBackoffMax)
			p.probeJudged = true
		case since(now, p.lastProbeAt) >= probeWindow:
			p.probeBackoff = probeBackoffMin
			p.probeJudged = true
		}
	}
	if len(sim) == 0 {
		return
	}
	sinceDown := since(now, p.lastDownAt.Load())
	probe := !congested && p.hasREMB.Load() && estimate >= received*probeHeadroom/100 &&
		sinceDown >= upSwitchHoldoff && since(now, p.lastProbeAt) >= p.probeBackoff
	share := budget / uint64(len(sim))
	for _, s := range sim {
		dt, cur, brs := s.dt, s.cur, s.brs
		maxL := dt.capLayer(len(dt.up.rids) - 1)
		if maxL < 0 {
			dt.setTarget(-1)
			continue
		}
		best := chooseLayer(brs, cur, maxL, share)
		if cur >= 0 && best > cur && sinceDown < upSwitchHoldoff {
			best = cur
		}
		// Without a fall of the estimate, a layer that is allowed and
		// still sending stays: an estimate below it is still ramping up.
		if !congested && best < cur && cur <= maxL && cur < len(brs) && brs[cur] > 0 {
			best = cur
		}
		// A probe: one layer up, from a layer being forwarded (not while
		// a switch is under way).
		if probe && s.current >= 0 && s.current == s.target && best == cur && cur < maxL && cur+1 < len(brs) && brs[cur+1] > 0 {
			best = cur + 1
			probe = false
			p.lastProbeAt, p.probeJudged = now, false
		}
		if cur >= 0 && best < cur {
			p.lastDownAt.Store(now)
		}
		dt.setTarget(best)
	}
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
