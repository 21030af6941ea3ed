package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	pub         *webrtc.PeerConnection // created by the first publish offer; under mu

	started      atomic.Bool
	subConnected atomic.Bool

	mu             sync.Mutex
	closed         bool
	mids           map[string]Source   // sources announced in publish offers
	midRIDs        map[string][]string // simulcast RIDs per mid, lowest first
	ups            map[string]*UpTrack // by mid
	downs          map[*UpTrack]*downTrack
	pendingCands   [2][]webrtc.ICECandidateInit
	needOffer      bool
	awaitingAnswer bool

	bw *bandwidth // the subscriber's estimate and layer allocation

	kick      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
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
		mids:        make(map[string]Source),
		midRIDs:     make(map[string][]string),
		ups:         make(map[string]*UpTrack),
		downs:       make(map[*UpTrack]*downTrack),
		kick:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	p.bw = newBandwidth(r.sfu.clock, r.sfu.cfg.SubscriberBitrate)
	var err error
	// The publish PeerConnection is created with the first publish offer:
	// most participants of a hearing only watch, and an idle
	// PeerConnection still runs its interceptors' timers.
	if p.sub, err = r.sfu.subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, fmt.Errorf("sfu: subscribe PeerConnection: %w", err)
	}
	p.setupPC(p.sub, protocol.PCSubscribe)

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
	go p.negotiator()
	go p.rtcpSender()
	return p, nil
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

// HandleOffer applies an offer on the publish PeerConnection and returns the answer.
func (p *Peer) HandleOffer(sd protocol.SessionDescription) (string, error) {
	if len(sd.SDP) > protocol.MaxSDPSize {
		return "", fmt.Errorf("%w: SDP of %d bytes", ErrTooLarge, len(sd.SDP))
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(sd.SDP); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if n := len(parsed.MediaDescriptions); n > MaxTracksPerPeer {
		return "", fmt.Errorf("%w: %d media sections, at most %d", ErrBadRequest, n, MaxTracksPerPeer)
	}
	sources := make(map[string]Source, len(sd.Tracks))
	for _, ml := range sd.Tracks {
		src := Source(ml.Source)
		if !src.Valid() {
			return "", fmt.Errorf("%w: unknown source %q for mid %q", ErrBadRequest, ml.Source, ml.Mid)
		}
		sources[ml.Mid] = src
	}
	rids := make(map[string][]string)
	for _, md := range parsed.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		if r := simulcastRIDs(md); len(r) > 0 {
			rids[mid] = orderRIDs(r)
		}
	}
	if err := p.mayPublish(&parsed, sources); err != nil {
		return "", err
	}
	offer, err := p.filterSDP(sd.SDP, &parsed)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", ErrClosed
	}
	if p.pub == nil {
		pc, err := p.room.sfu.pubAPI.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			p.mu.Unlock()
			return "", fmt.Errorf("sfu: publish PeerConnection: %w", err)
		}
		p.setupPC(pc, protocol.PCPublish)
		pc.OnTrack(p.onTrack)
		p.pub = pc
	}
	pub := p.pub
	for mid, src := range sources {
		p.mids[mid] = src
	}
	for mid, r := range rids {
		p.midRIDs[mid] = r
	}
	p.mu.Unlock()

	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	answer, err := pub.CreateAnswer(nil)
	if err != nil {
		_ = pub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if err := pub.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	p.flushCandidates(0)
	return pub.LocalDescription().SDP, nil
}

// mayPublish refuses a publish offer none of whose sending media sections
// the Policy lets this participant publish (an observer's, say), before any
// PeerConnection or track exists for it. A section whose source is refused
// within an offer that carries an allowed one is taken in but neither
// forwarded nor recorded until the Policy allows it (Room.Reconcile): that
// is how a Policy mutes one source without a renegotiation.
func (p *Peer) mayPublish(parsed *sdp.SessionDescription, sources map[string]Source) error {
	sending, allowed := 0, 0
	var refused Source
	for _, md := range parsed.MediaDescriptions {
		if !sends(md) {
			continue
		}
		mid, _ := md.Attribute("mid")
		src, ok := sources[mid]
		if !ok {
			// What onTrack will call it.
			src = SourceCamera
			if md.MediaName.Media == "audio" {
				src = SourceMicrophone
			}
		}
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
func (p *Peer) publishPC() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}

// simulcastRIDs returns the RIDs a media section sends with simulcast.
func simulcastRIDs(md *sdp.MediaDescription) []string {
	v, ok := md.Attribute("simulcast")
	if !ok {
		return nil
	}
	fields := strings.Fields(v)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != "send" {
			continue
		}
		var out []string
		for _, alt := range strings.Split(fields[i+1], ";") {
			rid, _, _ := strings.Cut(alt, ",")
			rid = strings.TrimPrefix(rid, "~")
			if rid != "" && len(out) < 4 {
				out = append(out, rid)
			}
		}
		return out
	}
	return nil
}

// HandleAnswer applies the participant's answer to a subscribe offer.
func (p *Peer) HandleAnswer(sd protocol.SessionDescription) error {
	if len(sd.SDP) > protocol.MaxSDPSize {
		return fmt.Errorf("%w: SDP of %d bytes", ErrTooLarge, len(sd.SDP))
	}
	p.mu.Lock()
	waiting := p.awaitingAnswer
	p.mu.Unlock()
	if !waiting {
		return fmt.Errorf("%w: no subscribe offer is outstanding", ErrState)
	}
	// An answer that does not parse goes to pion as it is, which refuses
	// it and rolls back below.
	answer := sd.SDP
	var parsed sdp.SessionDescription
	if p.room.sfu.cfg.Candidates != nil && parsed.UnmarshalString(sd.SDP) == nil {
		filtered, err := p.filterSDP(sd.SDP, &parsed)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadSDP, err)
		}
		answer = filtered
	}
	err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		// Roll back and offer again, so that one bad answer does not wedge the connection.
		_ = p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
	}
	p.mu.Lock()
	p.awaitingAnswer = false
	if err != nil {
		p.needOffer = true
	}
	p.mu.Unlock()
	if err == nil {
		p.flushCandidates(1)
	}
	p.kickNegotiation()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return nil
}

// HandleCandidate adds a trickled ICE candidate.
func (p *Peer) HandleCandidate(c protocol.Candidate) error {
	var idx int
	switch c.PC {
	case protocol.PCPublish:
		idx = 0
	case protocol.PCSubscribe:
		idx = 1
	default:
		return fmt.Errorf("%w: unknown pc %q", ErrBadCandidate, c.PC)
	}
	if len(c.Candidate) > protocol.MaxCandidate {
		return fmt.Errorf("%w: candidate of %d bytes", ErrTooLarge, len(c.Candidate))
	}
	if c.Candidate == "" {
		return nil // end of candidates
	}
	if !p.checkCandidate(c.Candidate) {
		return nil // dropped quietly: the participant's other candidates may do
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	p.mu.Lock()
	pc := p.pcFor(idx)
	if pc == nil || pc.RemoteDescription() == nil {
		defer p.mu.Unlock()
		if len(p.pendingCands[idx]) >= maxPendingCands {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadCandidate)
		}
		p.pendingCands[idx] = append(p.pendingCands[idx], init)
		return nil
	}
	p.mu.Unlock()
	if err := pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

// pcFor returns the publish (idx 0) or subscribe (idx 1) PeerConnection, as
// indexed in pendingCands; p.mu must be held.
func (p *Peer) pcFor(idx int) *webrtc.PeerConnection {
	if idx == 0 {
		return p.pub
	}
	return p.sub
}

func (p *Peer) flushCandidates(idx int) {
	p.mu.Lock()
	pc := p.pcFor(idx)
	cands := p.pendingCands[idx]
	p.pendingCands[idx] = nil
	p.mu.Unlock()
	for _, c := range cands {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate rejected", "err", err)
		}
	}
}

// SetQuality applies a subscriber's preference for one track.
func (p *Peer) SetQuality(q protocol.Quality) error {
	p.mu.Lock()
	var dt *downTrack
	for up, d := range p.downs {
		if up.id == q.TrackID {
			dt = d
			break
		}
	}
	p.mu.Unlock()
	if dt == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, q.TrackID)
	}
	if q.MaxLayer != nil && (*q.MaxLayer < 0 || *q.MaxLayer > 2) {
		return fmt.Errorf("%w: max_layer must be 0, 1 or 2", ErrBadRequest)
	}
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
		src, ok := p.mids[mid]
		if !ok {
			src = SourceCamera
			if remote.Kind() == webrtc.RTPCodecTypeAudio {
				src = SourceMicrophone
			}
		}
		rids := p.midRIDs[mid]
		if remote.RID() == "" {
			rids = nil
		}
		up = newUpTrack(p, mid, src, remote, recv, rids)
		p.ups[mid] = up
		isNew = true
	}
	l, ok := up.addLayer(remote)
	if !ok {
		p.mu.Unlock()
		p.log.Warn("unexpected stream ignored", "mid", mid, "rid", remote.RID())
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go l.readLoop()
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
	_, ok := p.downs[t]
	return ok
}

func (p *Peer) downTracks() []*downTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*downTrack, 0, len(p.downs))
	for _, dt := range p.downs {
		out = append(out, dt)
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
	dt := newDownTrack(t, p)
	sender, err := p.sub.AddTrack(dt)
	if err != nil {
		p.mu.Unlock()
		p.log.Error("adding a track to a subscriber failed", "track", t.id, "err", err)
		return
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
	p.downs[t] = dt
	p.needOffer = true
	p.wg.Add(1)
	p.mu.Unlock()
	t.addDown(dt)
	go dt.rtcpLoop()
	p.signal(protocol.TypeTrackPublished, protocol.TrackEvent{Track: t.describe()})
	p.kickNegotiation()
}

// removeDown stops sending t to this peer. The room lock is held.
func (p *Peer) removeDown(t *UpTrack) {
	p.mu.Lock()
	dt, ok := p.downs[t]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.downs, t)
	closed := p.closed
	p.needOffer = !closed
	p.mu.Unlock()
	dt.close()
	t.removeDown(dt)
	if !closed {
		if err := p.sub.RemoveTrack(dt.sender); err != nil {
			p.log.Debug("removing a track", "err", err)
		}
		p.signal(protocol.TypeTrackUnpublished, protocol.TrackEvent{Track: t.describe()})
		p.kickNegotiation()
	}
}

func (p *Peer) kickNegotiation() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// negotiator sends subscribe offers, one at a time: a new offer only after
// the answer to the previous one. The server is always the offerer on the
// subscribe PeerConnection and the participant on the publish one, so
// offers never cross.
func (p *Peer) negotiator() {
	defer p.wg.Done()
	var timeout <-chan time.Time
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-timeout:
			p.mu.Lock()
			stuck := p.awaitingAnswer
			p.mu.Unlock()
			if stuck {
				go p.fail(protocol.CodeConflict, "no answer to the subscribe offer")
				return
			}
			timeout = nil
			continue
		}
		select {
		case <-p.done:
			return
		case <-time.After(negotiationDebounce):
		}
		p.mu.Lock()
		if p.closed || p.awaitingAnswer || !p.needOffer {
			if !p.awaitingAnswer {
				timeout = nil
			}
			p.mu.Unlock()
			continue
		}
		p.needOffer = false
		p.awaitingAnswer = true
		p.mu.Unlock()
		if err := p.sendOffer(); err != nil {
			p.log.Error("subscribe offer failed", "err", err)
			go p.fail(protocol.CodeInternal, "could not renegotiate")
			return
		}
		timeout = time.After(answerTimeout)
	}
}

func (p *Peer) sendOffer() error {
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := p.sub.SetLocalDescription(offer); err != nil {
		return err
	}
	var lines []protocol.MediaLine
	for _, tr := range p.sub.GetTransceivers() {
		s := tr.Sender()
		if s == nil {
			continue
		}
		dt, ok := s.Track().(*downTrack)
		if !ok || dt == nil {
			continue
		}
		lines = append(lines, protocol.MediaLine{
			Mid: tr.Mid(), TrackID: dt.up.id, ParticipantID: dt.up.peer.participant.String(),
			Source: string(dt.up.source), Kind: dt.up.kind.String(),
		})
	}
	p.signal(protocol.TypeOffer, protocol.SessionDescription{PC: protocol.PCSubscribe, SDP: p.sub.LocalDescription().SDP, Tracks: lines})
	return nil
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
		p.downs = make(map[*UpTrack]*downTrack)
		p.mu.Unlock()
		for t, dt := range downs {
			dt.close()
			t.removeDown(dt)
		}
		p.closePCs()
		p.wg.Wait()
	})
}

func (p *Peer) closePCs() {
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
