package sfu

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The cascade (docs/operations.md): an edge node receives each published
// track of a room once from the room's home node, on one relay
// PeerConnection, and fans it out to its own subscribers. Here the relayed
// tracks enter the edge's room as the tracks of ghost peers — one per
// publishing connection at the home, with its participant and connection
// IDs — so that everything downstream (down-tracks, the allocator, the
// speaker detector, track announcements) is the ordinary path. A ghost
// never receives, and the relay PeerConnection is the ghost's publish
// PeerConnection: a keyframe request of an edge subscriber goes up it to
// the home, whose down-track passes it to the publisher (rate-limited
// there, as any subscriber's).

var metricCascadeTracks = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "chamber_cascade_tracks",
	Help: "Streams crossing between nodes, one per simulcast layer (one for a track without simulcast): sent by this home node to edge nodes (out), received by this edge node from home nodes (in).",
}, []string{"direction"})

var (
	cascadeOut = metricCascadeTracks.WithLabelValues("out")
	cascadeIn  = metricCascadeTracks.WithLabelValues("in")

	metricRelayBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_cascade_relay_bytes_total",
		Help: "RTP bytes this edge node received from home nodes over its relays.",
	})
	metricRelayPackets = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_cascade_relay_packets_total",
		Help: "RTP packets this edge node received from home nodes over its relays.",
	})
	metricRelayGaps = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_cascade_relay_packets_missing_total",
		Help: "RTP packets missing on arrival on the relays to this edge node (sequence gaps, before retransmission repairs them): the relay's loss.",
	})
)

// relayCount counts one packet received on a relayed layer; the reader
// goroutine owns l.relaySeq.
func (l *layer) relayCount(n int, seq uint16) {
	metricRelayBytes.Add(float64(n))
	metricRelayPackets.Inc()
	if l.relaySeen {
		if gap := seq - l.relaySeq; gap > 1 && gap < 0x8000 {
			metricRelayGaps.Add(float64(gap - 1))
		} else if gap >= 0x8000 {
			return // a late or retransmitted packet: the highest stays
		}
	}
	l.relaySeq, l.relaySeen = seq, true
}

// NewRelayPC creates the PeerConnection on which an edge node receives a
// room's tracks from its home: the publish API (NACK generator, receiver
// reports), on the SFU's own media sockets. The caller owns and closes it.
func (r *Room) NewRelayPC() (*webrtc.PeerConnection, error) {
	pc, err := r.sfu.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: relay PeerConnection: %w", err)
	}
	return pc, nil
}

// JoinGhost adds to the room the ghost of a connection that publishes at
// the room's home node; its tracks arrive on feed (AddRelayedTrack).
// Closing the ghost unpublishes them but leaves feed open: it carries the
// other ghosts' tracks too.
func (r *Room) JoinGhost(participant, connection uuid.UUID, name string, feed *webrtc.PeerConnection) (*Peer, error) {
	p := &Peer{
		room:        r,
		log:         r.log.With("participant", participant, "connection", connection, "ghost", true),
		participant: participant,
		conn:        connection,
		name:        name,
		ghost:       true,
		signalFn:    func(string, any) {},
		ups:         make(map[string]*UpTrack),
		downs:       make(map[*UpTrack][]*downTrack),
		done:        make(chan struct{}),
		bw:          newBandwidth(r.sfu.clock, r.sfu.cfg.SubscriberBitrate),
	}
	p.neg = &negotiator{log: p.log, pub: feed, mids: map[string]Source{}, midRIDs: map[string][]string{}, done: p.done}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if _, dup := r.peers[p.conn]; dup {
		return nil, ErrDuplicate
	}
	r.peers[p.conn] = p
	return p, nil
}

// maxRelayedLayers bounds the layers of a relayed track, as a publish
// offer's simulcast RIDs are (parseOffer keeps at most four).
const maxRelayedLayers = 4

// RelayedLayer is what the home announced of a stream arriving on the
// relay PeerConnection: the track it belongs to and which of its layers
// it is.
type RelayedLayer struct {
	Source Source
	// TrackID is the home's ID of the track: the layers of one track
	// share it, and become one track here.
	TrackID string
	// Layers are the track's simulcast RIDs, lowest first; nil without
	// simulcast.
	Layers []string
	// RID is this stream's layer, one of Layers ("" without simulcast).
	RID string
}

// AddRelayedTrack publishes, on a ghost, a stream arriving on the relay
// PeerConnection. The layers of a simulcast track, each on an m-line of
// its own, become one track with those layers, as a local publisher's
// simulcast track: the edge's allocator picks a layer per subscriber, and
// a subscriber's keyframe request goes up the relay for that layer. The
// track ends, and is unpublished, when the home stops sending all its
// layers.
func (p *Peer) AddRelayedTrack(rl RelayedLayer, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) error {
	if !p.ghost {
		return fmt.Errorf("%w: only a ghost takes relayed tracks", ErrState)
	}
	if rl.TrackID == "" || len(rl.Layers) > maxRelayedLayers {
		return fmt.Errorf("%w: relayed track %q with %d layers", ErrBadRequest, rl.TrackID, len(rl.Layers))
	}
	if rl.RID == "" {
		// A home that relays one layer of a simulcast track (a node of
		// an earlier version sends the top one): a track of one layer.
		rl.Layers = nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	// Ghost tracks are keyed by the home's track ID, not by mid.
	up, isNew := p.ups[rl.TrackID], false
	if up == nil || up.isEnded() {
		if len(p.ups) >= MaxTracksPerPeer {
			p.mu.Unlock()
			return fmt.Errorf("%w: relayed track %q", ErrState, rl.TrackID)
		}
		up, isNew = newUpTrack(p, rl.TrackID, rl.Source, remote, recv, rl.Layers), true
		up.relayed = true
		p.ups[rl.TrackID] = up
		p.owned = append(p.owned, up)
	}
	l, ok := up.addLayerAs(remote, rl.RID, recv)
	if !ok {
		if isNew {
			delete(p.ups, rl.TrackID)
		}
		p.mu.Unlock()
		return fmt.Errorf("%w: relayed track %q layer %q has no place", ErrState, rl.TrackID, rl.RID)
	}
	cascadeIn.Inc()
	up.start(l)
	p.mu.Unlock()
	if !isNew {
		// A further layer: subscribers may now prefer it.
		p.room.reallocateTrack(up)
		return nil
	}
	return p.room.publish(up)
}

// Ghost reports whether the peer is the ghost of a connection at another
// node (JoinGhost).
func (p *Peer) Ghost() bool { return p.ghost }

// Published counts the tracks the peer publishes now.
func (p *Peer) Published() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ups)
}

// relayBitrate is the bandwidth assumed of a relay between nodes, which
// sends no estimate of its own. Its simulcast layers are pinned, outside
// the allocator; this only concerns what else it might be allocated.
const relayBitrate = 200_000_000

// SetRelay marks the peer as an edge node's relay at this home node: it
// receives every simulcast layer of a track, each once, on a down-track
// pinned to that layer (newDownTracks) and announced with its RID in the
// subscribe offer, and each down-track is counted as crossing to another
// node. Call it before Start.
func (p *Peer) SetRelay() {
	p.relay.Store(true)
	p.bw.mu.Lock()
	p.bw.assumed = relayBitrate
	p.bw.estimate.Store(relayBitrate)
	p.bw.mu.Unlock()
}
