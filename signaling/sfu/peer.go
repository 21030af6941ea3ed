package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// Limits on what one peer may ask for.
const (
	MaxTracksPerPeer    = 8  // published tracks (m-lines in a publish offer)
	maxPendingCands     = 64 // candidates queued before a remote description
	answerTimeout       = 15 * time.Second
	negotiationDebounce = 20 * time.Millisecond
)

// Errors returned by Peer methods; the signalling layer maps them to error codes.
var (
	ErrBadSDP       = errors.New("sfu: invalid session description")
	ErrBadCandidate = errors.New("sfu: invalid ICE candidate")
	ErrTooLarge     = errors.New("sfu: too large")
	ErrNotFound     = errors.New("sfu: no such track")
	ErrState        = errors.New("sfu: not possible in the current state")
	ErrBadRequest   = errors.New("sfu: invalid request")
	ErrForbidden    = errors.New("sfu: forbidden")
)

// PeerConfig configures a Peer.
type PeerConfig struct {
	ParticipantID uuid.UUID
	ConnectionID  uuid.UUID
	// Name is the participant's display name (given to recording taps).
	Name string
	// Signal sends a message to the participant. It is called from many
	// goroutines and must not block (the signalling layer queues messages).
	Signal func(typ string, data any)
	// OnClose is called once, from a goroutine of its own, when the peer
	// closes for a reason of its own (ICE failure, no answer); code and
	// reason explain why. It is not called after an explicit Close.
	OnClose func(code, reason string)
}

// Peer is one participant connection's media: a publish and a subscribe
// PeerConnection.
type Peer struct {
	room        *Room
	log         *slog.Logger
	participant uuid.UUID
	conn        uuid.UUID
	name        string
	signalFn    func(string, any)
	onClose     func(code, reason string)
	sub         *webrtc.PeerConnection
	neg         *negotiator // descriptions and candidates of both PeerConnections
	bw          *bandwidth  // the subscriber's estimate and layer allocation

	started      atomic.Bool
	subConnected atomic.Bool
	// ghost: a connection publishing at another node (JoinGhost); it has
	// no subscribe PeerConnection and does not own its publish one.
	ghost bool
	// relay: an edge node's relay (SetRelay), whose down-tracks cross
	// to another node.
	relay atomic.Bool

	mu     sync.Mutex
	closed bool
	ups    map[string]*UpTrack // published, by mid
	owned  []*UpTrack          // every track published on this peer: Close waits for their goroutines
	// downs: what the peer receives of each track: one down-track, or
	// for a relay one per simulcast layer (SetRelay).
	downs map[*UpTrack][]*downTrack

	done      chan struct{}
	closeOnce sync.Once
	// wg counts the peer's own goroutines: the negotiator, the RTCP
	// sender and its down-tracks' RTCP readers. The goroutines of the
	// tracks it publishes belong to those tracks (UpTrack.wait).
	wg sync.WaitGroup
}

// Join creates a peer in the room. The peer receives nothing until Start.
func (r *Room) Join(cfg PeerConfig) (*Peer, error) {
	if cfg.Signal == nil {
		cfg.Signal = func(string, any) {}
	}
	p := &Peer{
		room:        r,
		log:         r.log.With("participant", cfg.ParticipantID, "connection", cfg.ConnectionID),
		participant: cfg.ParticipantID,
		conn:        cfg.ConnectionID,
		name:        cfg.Name,
		signalFn:    cfg.Signal,
		onClose:     cfg.OnClose,
		ups:         make(map[string]*UpTrack),
		downs:       make(map[*UpTrack][]*downTrack),
		done:        make(chan struct{}),
		bw:          newBandwidth(r.sfu.clock, r.sfu.cfg.SubscriberBitrate),
	}
	var err error
	// The publish PeerConnection is created with the first publish offer:
	// most participants of a hearing only watch, and an idle
	// PeerConnection still runs its interceptors' timers.
	if p.sub, err = r.sfu.subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, fmt.Errorf("sfu: subscribe PeerConnection: %w", err)
	}
	p.setupPC(p.sub, protocol.PCSubscribe)
	p.neg = &negotiator{
		log: p.log, signal: p.signal, fail: p.fail, filter: r.sfu.cfg.Candidates, sub: p.sub,
		makePub: p.newPublishPC,
		mids:    make(map[string]Source), midRIDs: make(map[string][]string),
		kick: make(chan struct{}, 1), done: p.done,
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		p.closePCs()
		return nil, ErrClosed
	}
	if _, dup := r.peers[p.conn]; dup {
		r.mu.Unlock()
		p.closePCs()
		return nil, ErrDuplicate
	}
	r.peers[p.conn] = p
	r.mu.Unlock()
	metricPeers.Inc()

	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.neg.run()
	}()
	go p.rtcpSender()
	return p, nil
}

// newPublishPC creates the publish PeerConnection (on the first offer).
func (p *Peer) newPublishPC() (*webrtc.PeerConnection, error) {
	pc, err := p.room.sfu.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p.setupPC(pc, protocol.PCPublish)
	pc.OnTrack(p.onTrack)
	return pc, nil
}

func (p *Peer) setupPC(pc *webrtc.PeerConnection, name string) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.signal(protocol.TypeCandidate, protocol.Candidate{
			PC: name, Candidate: init.Candidate, SDPMid: init.SDPMid,
			SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		})
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected {
			metricICE.WithLabelValues(transportOf(pc)).Inc()
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("peer connection state", "pc", name, "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			if name == protocol.PCSubscribe && !p.subConnected.Swap(true) {
				// Forwarding starts now: ask for keyframes so that the
				// subscriber's first video packets are decodable (each
				// down-track also keeps asking until it has one).
				for _, dt := range p.downTracks() {
					dt.requestKeyframe()
				}
			}
		case webrtc.PeerConnectionStateFailed:
			go p.fail(protocol.CodeICEFailed, "the "+name+" connection failed")
		}
	})
}

// transportOf names how a connected PeerConnection reaches its peer.
func transportOf(pc *webrtc.PeerConnection) string {
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return "udp"
	}
	if pair.Remote.Typ == webrtc.ICECandidateTypeRelay || pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		return "relay"
	}
	if pair.Local.Protocol == webrtc.ICEProtocolTCP {
		return "tcp"
	}
	return "udp"
}

// ParticipantID returns the participant this peer belongs to.
func (p *Peer) ParticipantID() uuid.UUID { return p.participant }

// ConnectionID returns the peer's connection ID.
func (p *Peer) ConnectionID() uuid.UUID { return p.conn }

// Done is closed when the peer is closed.
func (p *Peer) Done() <-chan struct{} { return p.done }

func (p *Peer) signal(typ string, data any) {
	select {
	case <-p.done:
	default:
		p.signalFn(typ, data)
	}
}

// Start subscribes the peer to every track it may receive. Call it after
// the participant has been told it joined.
func (p *Peer) Start() {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.peers[p.conn] != p {
		return
	}
	p.started.Store(true)
	r.reconcilePeerLocked(p)
}

// HandleOffer applies an offer on the publish PeerConnection and returns
// the answer. An offer the Permissions refuse altogether (mayPublish) is
// refused before any PeerConnection or track exists for it.
func (p *Peer) HandleOffer(sd protocol.SessionDescription) (string, error) {
	o, err := parseOffer(sd)
	if err != nil {
		return "", err
	}
	if err := p.mayPublish(o); err != nil {
		return "", err
	}
	return p.neg.answer(o)
}

// mayPublish refuses a publish offer none of whose sending media sections
// the Permissions let this participant publish (an observer's, say). A section
// whose source is refused within an offer that carries an allowed one is
// taken in but neither forwarded nor recorded until the Permissions allow it
// (Room.Reconcile): that is how the Permissions mute one source without a
// renegotiation.
func (p *Peer) mayPublish(o *publishOffer) error {
	sending, allowed := 0, 0
	var refused Source
	for _, md := range o.parsed.MediaDescriptions {
		if !sends(md) {
			continue
		}
		src := o.sourceOf(md)
		sending++
		if p.room.policy.MayPublish(p.participant, src) {
			allowed++
		} else {
			refused = src
		}
	}
	if sending > 0 && allowed == 0 {
		return fmt.Errorf("%w: this participant may not publish %s", ErrForbidden, refused)
	}
	return nil
}

// sends reports whether a media section of an offer sends media.
func sends(md *sdp.MediaDescription) bool {
	if md.MediaName.Port.Value == 0 {
		return false // rejected or stopped
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "recvonly", "inactive":
			return false
		}
	}
	return md.MediaName.Media == "audio" || md.MediaName.Media == "video"
}

// publishPC returns the publish PeerConnection, or nil before the first offer.
func (p *Peer) publishPC() *webrtc.PeerConnection { return p.neg.publishPC() }

// HandleAnswer applies the participant's answer to a subscribe offer.
func (p *Peer) HandleAnswer(sd protocol.SessionDescription) error { return p.neg.handleAnswer(sd) }

// HandleCandidate adds a trickled ICE candidate.
func (p *Peer) HandleCandidate(c protocol.Candidate) error { return p.neg.handleCandidate(c) }

// SetQuality applies a subscriber's preference for one track.
func (p *Peer) SetQuality(q protocol.Quality) error {
	p.mu.Lock()
	var dts []*downTrack
	for up, d := range p.downs {
		if up.id == q.TrackID {
			dts = d
			break
		}
	}
	p.mu.Unlock()
	if len(dts) == 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, q.TrackID)
	}
	if q.MaxLayer != nil && (*q.MaxLayer < 0 || *q.MaxLayer > 2) {
		return fmt.Errorf("%w: max_layer must be 0, 1 or 2", ErrBadRequest)
	}
	for _, dt := range dts {
		dt.mu.Lock()
		dt.paused = q.Paused
		dt.maxLayer = -1
		if q.MaxLayer != nil {
			dt.maxLayer = *q.MaxLayer
		}
		dt.mu.Unlock()
		if dt.bound.Load() != nil {
			p.allocateTrack(dt)
		}
	}
	return nil
}

// onTrack is called by pion for every incoming stream (each simulcast layer
// separately) once its first packet has arrived.
func (p *Peer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	tr := recv.RTPTransceiver()
	mid := ""
	if tr != nil {
		mid = tr.Mid()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	up := p.ups[mid]
	isNew := false
	if up == nil || up.receiver != recv {
		if len(p.ups) >= MaxTracksPerPeer {
			p.mu.Unlock()
			p.log.Warn("too many published tracks; ignoring one", "mid", mid)
			return
		}
		src, rids := p.neg.stream(mid, remote.Kind() == webrtc.RTPCodecTypeAudio, remote.RID())
		up = newUpTrack(p, mid, src, remote, recv, rids)
		p.ups[mid] = up
		p.owned = append(p.owned, up)
		isNew = true
	}
	l, ok := up.addLayer(remote)
	if !ok {
		p.mu.Unlock()
		p.log.Warn("unexpected stream ignored", "mid", mid, "rid", remote.RID())
		return
	}
	up.start(l)
	p.mu.Unlock()
	if isNew {
		if err := p.room.publish(up); err != nil {
			p.log.Debug("publish after close", "err", err)
		}
	} else {
		// A new simulcast layer: subscribers may now prefer it.
		p.room.reallocateTrack(up)
	}
}

// trackEnded forgets a published track whose streams have all ended.
func (p *Peer) trackEnded(t *UpTrack) {
	p.mu.Lock()
	if p.ups[t.mid] == t {
		delete(p.ups, t.mid)
	}
	p.mu.Unlock()
}

func (p *Peer) hasDown(t *UpTrack) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.downs[t]) > 0
}

func (p *Peer) downTracks() []*downTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*downTrack, 0, len(p.downs))
	for _, dts := range p.downs {
		out = append(out, dts...)
	}
	return out
}

// addDown starts sending t to this peer. The room lock is held.
func (p *Peer) addDown(t *UpTrack) {
	if !p.started.Load() {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var dts []*downTrack
	for _, dt := range p.newDownTracks(t) {
		sender, err := p.sub.AddTrack(dt)
		if err != nil {
			p.log.Error("adding a track to a subscriber failed", "track", t.id, "layer", dt.pinned, "err", err)
			continue
		}
		for _, tr := range p.sub.GetTransceivers() {
			if tr.Sender() == sender {
				codec := t.codec
				codec.PayloadType = 0
				if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{codec}); err != nil {
					p.log.Warn("subscriber cannot take the publisher's codec", "track", t.id, "codec", codec.MimeType, "err", err)
				}
			}
		}
		dt.sender = sender
		dts = append(dts, dt)
	}
	if len(dts) == 0 {
		p.mu.Unlock()
		return
	}
	p.downs[t] = dts
	p.wg.Add(len(dts))
	p.mu.Unlock()
	for _, dt := range dts {
		t.addDown(dt)
		if p.relay.Load() {
			cascadeOut.Inc()
		}
		go dt.rtcpLoop()
	}
	p.signal(protocol.TypeTrackPublished, protocol.TrackEvent{Track: t.describe()})
	p.neg.renegotiate()
}

// newDownTracks makes what the peer receives of t: one down-track whose
// layer the allocator picks, or for a relay one down-track pinned to each
// simulcast layer, so that the edge node has every layer to allocate
// among its own subscribers.
func (p *Peer) newDownTracks(t *UpTrack) []*downTrack {
	if !p.relay.Load() || len(t.rids) == 0 {
		return []*downTrack{newDownTrack(t, p)}
	}
	dts := make([]*downTrack, len(t.rids))
	for i := range t.rids {
		dts[i] = newPinnedDownTrack(t, p, i)
	}
	return dts
}

// removeDown stops sending t to this peer. The room lock is held.
func (p *Peer) removeDown(t *UpTrack) {
	p.mu.Lock()
	dts, ok := p.downs[t]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.downs, t)
	closed := p.closed
	p.mu.Unlock()
	for _, dt := range dts {
		dt.close()
		t.removeDown(dt)
		if p.relay.Load() {
			cascadeOut.Dec()
		}
		if !closed {
			if err := p.sub.RemoveTrack(dt.sender); err != nil {
				p.log.Debug("removing a track", "err", err)
			}
		}
	}
	if !closed {
		p.signal(protocol.TypeTrackUnpublished, protocol.TrackEvent{Track: t.describe()})
		p.neg.renegotiate()
	}
}

// rtcpSender sends the down-tracks' sender reports about once a second and
// re-runs layer allocation.
func (p *Peer) rtcpSender() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var pkts []rtcp.Packet
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if !p.subConnected.Load() {
			continue
		}
		pkts = pkts[:0]
		now := p.bw.clock.Now()
		for _, dt := range p.downTracks() {
			if sr := dt.senderReport(now); sr != nil {
				pkts = append(pkts, sr)
			}
		}
		if len(pkts) > 0 {
			_ = p.sub.WriteRTCP(pkts)
		}
		p.allocate()
	}
}

// fail closes the peer for a reason of its own.
func (p *Peer) fail(code, reason string) {
	p.log.Info("closing peer", "code", code, "reason", reason)
	select {
	case <-p.done:
		return
	default:
	}
	if p.onClose != nil {
		p.onClose(code, reason)
	}
	p.Close()
}

// Close releases the peer: its tracks are unpublished, its PeerConnections
// closed and its goroutines stopped before Close returns.
func (p *Peer) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.done)
		p.room.leave(p)
		p.mu.Lock()
		downs := p.downs
		p.downs = make(map[*UpTrack][]*downTrack)
		p.mu.Unlock()
		for t, dts := range downs {
			for _, dt := range dts {
				dt.close()
				t.removeDown(dt)
				if p.relay.Load() {
					cascadeOut.Dec()
				}
			}
		}
		p.closePCs()
		p.mu.Lock()
		owned := p.owned
		p.mu.Unlock()
		for _, t := range owned {
			t.wait()
		}
		p.wg.Wait()
	})
}

func (p *Peer) closePCs() {
	if p.ghost {
		return // the relay's PeerConnection is its owner's to close
	}
	if pub := p.publishPC(); pub != nil {
		if err := pub.Close(); err != nil {
			p.log.Debug("closing publish PeerConnection", "err", err)
		}
	}
	if err := p.sub.Close(); err != nil {
		p.log.Debug("closing subscribe PeerConnection", "err", err)
	}
}

// PeerStats describes a peer's media.
type PeerStats struct {
	Estimate  uint64 // subscriber bandwidth estimate, bit/s
	Down      []DownTrackStats
	Published int
}

// Stats returns the peer's current statistics.
func (p *Peer) Stats() PeerStats {
	st := PeerStats{Estimate: p.bw.estimate.Load()}
	for _, dt := range p.downTracks() {
		st.Down = append(st.Down, dt.stats())
	}
	p.mu.Lock()
	st.Published = len(p.ups)
	p.mu.Unlock()
	return st
}
