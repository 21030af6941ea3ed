package sfu

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// negotiator owns one peer's session descriptions and ICE candidates: it
// answers the participant's publish offers, makes the subscribe offers one
// at a time, queues candidates that arrive before their description and
// filters the participant's candidates. The server is always the offerer on
// the subscribe PeerConnection and the participant on the publish one, so
// offers never cross.
type negotiator struct {
	log     *slog.Logger
	signal  func(typ string, data any)
	fail    func(code, reason string)
	filter  *CandidateFilter
	sub     *webrtc.PeerConnection
	makePub func() (*webrtc.PeerConnection, error)

	mu             sync.Mutex
	pub            *webrtc.PeerConnection // created by the first publish offer
	mids           map[string]Source      // sources announced in publish offers
	midRIDs        map[string][]string    // simulcast RIDs per mid, lowest first
	pendingCands   [2][]webrtc.ICECandidateInit
	needOffer      bool
	awaitingAnswer bool

	kick chan struct{}
	done <-chan struct{}
}

// publishOffer is what a publish offer says, parsed once.
type publishOffer struct {
	sdp     string
	parsed  sdp.SessionDescription
	sources map[string]Source
	rids    map[string][]string
}

// parseOffer checks a publish offer's size, syntax and sources.
func parseOffer(sd protocol.SessionDescription) (*publishOffer, error) {
	if len(sd.SDP) > protocol.MaxSDPSize {
		return nil, fmt.Errorf("%w: SDP of %d bytes", ErrTooLarge, len(sd.SDP))
	}
	o := &publishOffer{sdp: sd.SDP, sources: make(map[string]Source, len(sd.Tracks)), rids: make(map[string][]string)}
	if err := o.parsed.UnmarshalString(sd.SDP); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if n := len(o.parsed.MediaDescriptions); n > MaxTracksPerPeer {
		return nil, fmt.Errorf("%w: %d media sections, at most %d", ErrBadRequest, n, MaxTracksPerPeer)
	}
	for _, ml := range sd.Tracks {
		src := Source(ml.Source)
		if !src.Valid() {
			return nil, fmt.Errorf("%w: unknown source %q for mid %q", ErrBadRequest, ml.Source, ml.Mid)
		}
		o.sources[ml.Mid] = src
	}
	for _, md := range o.parsed.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		if r := simulcastRIDs(md); len(r) > 0 {
			o.rids[mid] = orderRIDs(r)
		}
	}
	return o, nil
}

// sourceOf returns the source a media section publishes: as announced, or
// by its kind.
func (o *publishOffer) sourceOf(md *sdp.MediaDescription) Source {
	mid, _ := md.Attribute("mid")
	if src, ok := o.sources[mid]; ok {
		return src
	}
	return defaultSource(md.MediaName.Media == "audio")
}

func defaultSource(audio bool) Source {
	if audio {
		return SourceMicrophone
	}
	return SourceCamera
}

// answer applies a publish offer and returns the answer.
func (n *negotiator) answer(o *publishOffer) (string, error) {
	offer, err := n.filterSDP(o.sdp, &o.parsed)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	pub, err := n.publishPCForOffer(o)
	if err != nil {
		return "", err
	}
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
	n.flushCandidates(0)
	return pub.LocalDescription().SDP, nil
}

// publishPCForOffer creates the publish PeerConnection on the first offer
// and records what the offer says of its media sections.
func (n *negotiator) publishPCForOffer(o *publishOffer) (*webrtc.PeerConnection, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.done:
		return nil, ErrClosed
	default:
	}
	if n.pub == nil {
		pc, err := n.makePub()
		if err != nil {
			return nil, fmt.Errorf("sfu: publish PeerConnection: %w", err)
		}
		n.pub = pc
	}
	for mid, src := range o.sources {
		n.mids[mid] = src
	}
	for mid, r := range o.rids {
		n.midRIDs[mid] = r
	}
	return n.pub, nil
}

// publishPC returns the publish PeerConnection, or nil before the first offer.
func (n *negotiator) publishPC() *webrtc.PeerConnection {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pub
}

// stream says what a new incoming stream of mid carries: its source and,
// with simulcast, its RIDs.
func (n *negotiator) stream(mid string, audio bool, rid string) (Source, []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	src, ok := n.mids[mid]
	if !ok {
		src = defaultSource(audio)
	}
	if rid == "" {
		return src, nil
	}
	return src, n.midRIDs[mid]
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

// handleAnswer applies the participant's answer to a subscribe offer.
func (n *negotiator) handleAnswer(sd protocol.SessionDescription) error {
	if len(sd.SDP) > protocol.MaxSDPSize {
		return fmt.Errorf("%w: SDP of %d bytes", ErrTooLarge, len(sd.SDP))
	}
	n.mu.Lock()
	waiting := n.awaitingAnswer
	n.mu.Unlock()
	if !waiting {
		return fmt.Errorf("%w: no subscribe offer is outstanding", ErrState)
	}
	// An answer that does not parse goes to pion as it is, which refuses
	// it and rolls back below.
	answer := sd.SDP
	var parsed sdp.SessionDescription
	if n.filter != nil && parsed.UnmarshalString(sd.SDP) == nil {
		filtered, err := n.filterSDP(sd.SDP, &parsed)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadSDP, err)
		}
		answer = filtered
	}
	err := n.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		// Roll back and offer again, so that one bad answer does not wedge the connection.
		_ = n.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
	}
	n.mu.Lock()
	n.awaitingAnswer = false
	if err != nil {
		n.needOffer = true
	}
	n.mu.Unlock()
	if err == nil {
		n.flushCandidates(1)
	}
	n.kickNegotiation()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return nil
}

// handleCandidate adds a trickled ICE candidate, or queues it until its
// PeerConnection has a remote description.
func (n *negotiator) handleCandidate(c protocol.Candidate) error {
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
	if !n.checkCandidate(c.Candidate) {
		return nil // dropped quietly: the participant's other candidates may do
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	n.mu.Lock()
	pc := n.pcFor(idx)
	if pc == nil || pc.RemoteDescription() == nil {
		defer n.mu.Unlock()
		if len(n.pendingCands[idx]) >= maxPendingCands {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadCandidate)
		}
		n.pendingCands[idx] = append(n.pendingCands[idx], init)
		return nil
	}
	n.mu.Unlock()
	if err := pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

// pcFor returns the publish (idx 0) or subscribe (idx 1) PeerConnection, as
// indexed in pendingCands; n.mu must be held.
func (n *negotiator) pcFor(idx int) *webrtc.PeerConnection {
	if idx == 0 {
		return n.pub
	}
	return n.sub
}

func (n *negotiator) flushCandidates(idx int) {
	n.mu.Lock()
	pc := n.pcFor(idx)
	cands := n.pendingCands[idx]
	n.pendingCands[idx] = nil
	n.mu.Unlock()
	for _, c := range cands {
		if err := pc.AddICECandidate(c); err != nil {
			n.log.Debug("queued candidate rejected", "err", err)
		}
	}
}

// renegotiate asks for a new subscribe offer (the down-tracks changed).
func (n *negotiator) renegotiate() {
	n.mu.Lock()
	n.needOffer = true
	n.mu.Unlock()
	n.kickNegotiation()
}

func (n *negotiator) kickNegotiation() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// run sends subscribe offers, one at a time: a new offer only after the
// answer to the previous one. It returns when done is closed, or after
// failing the peer (no answer in time, or no offer could be made).
func (n *negotiator) run() {
	var timeout <-chan time.Time
	for {
		select {
		case <-n.done:
			return
		case <-n.kick:
		case <-timeout:
			if n.stuck() {
				go n.fail(protocol.CodeConflict, "no answer to the subscribe offer")
				return
			}
			timeout = nil
			continue
		}
		select {
		case <-n.done:
			return
		case <-time.After(negotiationDebounce):
		}
		offer, waiting := n.nextOffer()
		if !offer {
			if !waiting {
				timeout = nil
			}
			continue
		}
		if err := n.sendOffer(); err != nil {
			n.log.Error("subscribe offer failed", "err", err)
			go n.fail(protocol.CodeInternal, "could not renegotiate")
			return
		}
		timeout = time.After(answerTimeout)
	}
}

func (n *negotiator) stuck() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.awaitingAnswer
}

// nextOffer decides whether to make an offer now (one is needed and none is
// outstanding), and says whether an answer is awaited.
func (n *negotiator) nextOffer() (offer, waiting bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.done:
		return false, false
	default:
	}
	if n.awaitingAnswer || !n.needOffer {
		return false, n.awaitingAnswer
	}
	n.needOffer = false
	n.awaitingAnswer = true
	return true, true
}

func (n *negotiator) sendOffer() error {
	offer, err := n.sub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := n.sub.SetLocalDescription(offer); err != nil {
		return err
	}
	var lines []protocol.MediaLine
	for _, tr := range n.sub.GetTransceivers() {
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
			Source: string(dt.up.source), Kind: dt.up.kind.String(), RID: dt.pinnedRID(),
		})
	}
	n.signal(protocol.TypeOffer, protocol.SessionDescription{PC: protocol.PCSubscribe, SDP: n.sub.LocalDescription().SDP, Tracks: lines})
	return nil
}

// checkCandidate reports whether a remote candidate may be used, and
// counts and logs one that may not.
func (n *negotiator) checkCandidate(c string) bool {
	if n.filter == nil {
		return true
	}
	addr, typ, ok := candidateAddress(c)
	reason := "malformed"
	if ok {
		if ok, reason = n.filter.allows(addr, typ); ok {
			return true
		}
	}
	metricCandidatesDropped.WithLabelValues(reason).Inc()
	n.log.Debug("remote candidate dropped", "reason", reason, "candidate", c)
	return false
}

// filterSDP removes the candidates the filter refuses from a session
// description; it returns sd itself when nothing is removed.
func (n *negotiator) filterSDP(sd string, parsed *sdp.SessionDescription) (string, error) {
	if n.filter == nil {
		return sd, nil
	}
	dropped := false
	for _, md := range parsed.MediaDescriptions {
		kept := md.Attributes[:0]
		for _, a := range md.Attributes {
			if a.Key == sdp.AttrKeyCandidate && !n.checkCandidate(a.Value) {
				dropped = true
				continue
			}
			kept = append(kept, a)
		}
		md.Attributes = kept
	}
	if !dropped {
		return sd, nil
	}
	b, err := parsed.Marshal()
	if err != nil {
		return "", err
	}
	return string(b), nil
}
