package sfu

import "time"

// Layer selection.
const (
	upSwitchHeadroom = 85                     // % of a share a higher layer may use before we switch up
	upSwitchHoldoff  = 2 * time.Second        // no switch up this soon after a switch down
	allocInterval    = 200 * time.Millisecond // at most this often on REMB
)

// setEstimate records a subscriber's bandwidth estimate (from REMB).
func (p *Peer) setEstimate(bps uint64) {
	p.estimate.Store(bps)
	now := clock()
	if now-p.lastAlloc.Load() >= int64(allocInterval) {
		p.allocate()
	}
}

// allocateTrack chooses the layer of one down-track (on bind or a preference change).
func (p *Peer) allocateTrack(dt *downTrack) {
	if len(dt.up.rids) == 0 {
		dt.setTarget(dt.capLayer(0))
		return
	}
	p.allocate()
}

// allocate shares the subscriber's estimate among its video tracks: tracks
// without simulcast take what they take, the simulcast ones share the rest
// equally, each getting the highest layer that fits its share and the
// subscriber's preference. Switching up needs headroom and waits a while
// after a switch down, so that the layer does not oscillate.
func (p *Peer) allocate() {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	now := clock()
	p.lastAlloc.Store(now)
	budget := p.estimate.Load()
	var sim []*downTrack
	var brs []uint64
	for _, dt := range p.downTracks() {
		if dt.bound.Load() == nil {
			continue
		}
		if len(dt.up.rids) == 0 {
			t := dt.capLayer(0)
			dt.setTarget(t)
			if t >= 0 {
				brs = dt.up.bitrates(brs[:0])
				if len(brs) > 0 {
					budget -= min(brs[0], budget)
				}
			}
			continue
		}
		sim = append(sim, dt)
	}
	if len(sim) == 0 {
		return
	}
	share := budget / uint64(len(sim))
	for _, dt := range sim {
		maxL := dt.capLayer(len(dt.up.rids) - 1)
		if maxL < 0 {
			dt.setTarget(-1)
			continue
		}
		brs = dt.up.bitrates(brs[:0])
		cur, target := dt.layers()
		if cur < 0 {
			cur = target
		}
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
		if cur >= 0 && best > cur && now-p.lastDownAt.Load() < int64(upSwitchHoldoff) {
			best = cur
		}
		if cur >= 0 && best < cur {
			p.lastDownAt.Store(now)
		}
		dt.setTarget(best)
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
