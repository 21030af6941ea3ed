package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// The cascade for large public galleries (docs/operations.md, "Cascade").
// At a room's home node, a join by a gallery observer (Config.GalleryRole,
// a client that follows redirects) beyond Config.GalleryThreshold observers
// here is answered with a redirect to another node — an edge. The edge
// serves the observer from an edge room: it opens one relay connection to
// the home (the signalling protocol, authenticated by the node signature
// instead of a token) and receives there, as the participant
// Config.RelayParticipant, what an observer may receive; each relayed track
// enters the edge room as the track of a ghost peer (sfu.JoinGhost) and is
// fanned out to the edge's observers by the edge's SFU. Events the home
// sends the relay — filtered there for an observer — go to every observer
// of the edge room, which holds nobody else. The edge never becomes the
// room's home and keeps no room state: when the relay ends, its observers
// are told to reconnect (bye moved), and reach the home again.

// Cascade is what the signalling server needs of the cluster for the
// cascade; nil turns it off.
type Cascade interface {
	// Place returns the signalling URL (ws:// or wss://, with its
	// placement ticket) of an edge node for one more gallery observer of
	// a room whose home is this node; "" keeps the observer here.
	Place(ctx context.Context, sessionID, participantID uuid.UUID) (string, error)
	// DialHome returns the URL of the relay endpoint of the room's home
	// and the headers that authenticate this node there.
	DialHome(ctx context.Context, sessionID uuid.UUID) (string, http.Header, error)
}

type relayKey struct{}
type edgeKey struct{}

// WithRelay marks a signalling request as an edge node's relay connection,
// authenticated as coming from node (the caller checked the signature).
func WithRelay(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, relayKey{}, node)
}

// WithEdge marks a signalling request as the join of the gallery observer
// participant, whom the room's home placed on this node (the caller checked
// the placement ticket).
func WithEdge(ctx context.Context, participant uuid.UUID) context.Context {
	return context.WithValue(ctx, edgeKey{}, participant)
}

func relayFrom(ctx context.Context) (string, bool) {
	n, ok := ctx.Value(relayKey{}).(string)
	return n, ok && n != ""
}

func edgeFor(ctx context.Context) (uuid.UUID, bool) {
	p, ok := ctx.Value(edgeKey{}).(uuid.UUID)
	return p, ok && p != uuid.Nil
}

// relayPingEvery keeps the relay connection alive at the home (whose
// IdleTimeout closes a silent connection).
const relayPingEvery = 20 * time.Second

// edgeRelay is an edge room's link to the room's home: the relay
// connection's state and the ghosts of the home's publishers.
type edgeRelay struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	peers  map[string]protocol.PeerEvent // home connections an observer may know of, by connection ID
	tracks map[string]protocol.Track     // announced tracks, by ID
	lines  map[string]protocol.MediaLine // subscribe m-lines, by mid
	ghosts map[uuid.UUID]*sfu.Peer       // by the home's connection ID
	pubs   map[uuid.UUID]int             // ghost participants, with their ghost count
}

func newEdgeRelay() *edgeRelay {
	return &edgeRelay{done: make(chan struct{}), peers: map[string]protocol.PeerEvent{}, tracks: map[string]protocol.Track{},
		lines: map[string]protocol.MediaLine{}, ghosts: map[uuid.UUID]*sfu.Peer{}, pubs: map[uuid.UUID]int{}}
}

// edgePolicy is an edge room's media policy: only the ghosts publish, and
// what the home relays (an observer's share, decided there) reaches an
// observer here as the room's own policy lets it — not from the waiting
// room, not once removed — on the live state the edge re-reads with every
// event of the home.
type edgePolicy struct {
	e    *edgeRelay
	base sfu.Permissions
}

func (p edgePolicy) MayPublish(participant uuid.UUID, src sfu.Source) bool {
	return p.ghost(participant) && p.base.MayPublish(participant, src)
}

func (p edgePolicy) MayForward(sub, publisher uuid.UUID, src sfu.Source) bool {
	return p.ghost(publisher) && p.base.MayForward(sub, publisher, src)
}

func (p edgePolicy) ghost(id uuid.UUID) bool {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	return p.e.pubs[id] > 0
}

// knownPeers lists the home connections an observer may know of, for a
// new observer of the edge room.
func (e *edgeRelay) knownPeers() []protocol.PeerEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]protocol.PeerEvent, 0, len(e.peers))
	for _, p := range e.peers {
		out = append(out, p)
	}
	return out
}

// dropGhostLocked forgets the ghost of a home connection that left; e.mu
// is held.
func (e *edgeRelay) dropGhostLocked(connection string) *sfu.Peer {
	id, err := uuid.Parse(connection)
	g := e.ghosts[id]
	if err != nil || g == nil {
		return nil
	}
	delete(e.ghosts, id)
	if e.pubs[g.ParticipantID()]--; e.pubs[g.ParticipantID()] <= 0 {
		delete(e.pubs, g.ParticipantID())
	}
	return g
}

// stop ends the relay and waits for it: its PeerConnection is closed, so
// the ghosts' readers end.
func (e *edgeRelay) stop() {
	e.cancel()
	<-e.done
}

// runRelay keeps an edge room's relay to the home until ctx ends or the
// relay fails; then the room's observers are told to reconnect (or, after
// the home's bye, why they must go).
func (s *Server) runRelay(ctx context.Context, r *roomConns) {
	e := r.edge
	defer close(e.done)
	code, err := s.relay(ctx, r)
	if ctx.Err() != nil {
		return // the edge room closed
	}
	s.log.Info("cascade relay ended", "session", r.id, "bye", code, "err", err)
	conns, _ := s.connsOf(r.id, nil)
	for _, c := range conns {
		c.closeWith(websocket.StatusNormalClosure, code, protocol.Bye{Code: code})
	}
}

// relay runs one relay connection; it returns the bye code for the edge's
// observers.
func (s *Server) relay(ctx context.Context, r *roomConns) (string, error) {
	url, hdr, err := s.cfg.Cascade.DialHome(ctx, r.id)
	if err != nil {
		return protocol.ByeMoved, err
	}
	dctx, dcancel := context.WithTimeout(ctx, s.cfg.JoinTimeout)
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: hdr, CompressionMode: websocket.CompressionDisabled})
	dcancel()
	if err != nil {
		return protocol.ByeMoved, fmt.Errorf("dialling the home: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(hardReadLimit)
	pc, err := r.media.NewRelayPC()
	if err != nil {
		return protocol.ByeMoved, err
	}
	defer func() { _ = pc.Close() }() // before the ghosts close (room close): their readers end
	l := &relayLink{s: s, r: r, e: r.edge, ws: ws, pc: pc, ctx: ctx}
	metricRelays.WithLabelValues("in").Inc()
	defer metricRelays.WithLabelValues("in").Dec()
	return l.run()
}

// relayLink is one relay connection at the edge.
type relayLink struct {
	s   *Server
	r   *roomConns
	e   *edgeRelay
	ws  *websocket.Conn
	pc  *webrtc.PeerConnection
	ctx context.Context
	wmu sync.Mutex
}

func (l *relayLink) write(typ string, data any) error {
	msg, err := protocol.Encode(typ, "", data)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	ctx, cancel := context.WithTimeout(l.ctx, writeTimeout)
	defer cancel()
	return l.ws.Write(ctx, websocket.MessageText, msg)
}

func (l *relayLink) run() (string, error) {
	l.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		_ = l.write(protocol.TypeCandidate, protocol.Candidate{PC: protocol.PCSubscribe, Candidate: init.Candidate,
			SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex})
	})
	l.pc.OnTrack(l.onTrack)
	// A home cut off (not closed) is noticed by ICE or by the pings: the
	// relay ends, and the edge's observers reconnect.
	l.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			_ = l.ws.CloseNow()
		}
	})
	if err := l.write(protocol.TypeJoin, protocol.Join{Version: protocol.Version, Token: "relay"}); err != nil {
		return protocol.ByeMoved, err
	}
	pingDone := make(chan struct{})
	defer close(pingDone)
	go l.ping(pingDone) // ends with run
	for {
		_, data, err := l.ws.Read(l.ctx)
		if err != nil {
			return protocol.ByeMoved, err
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return protocol.ByeMoved, fmt.Errorf("malformed message from the home: %w", err)
		}
		if code, end := l.handle(env, data); end {
			return code, nil
		}
	}
}

func (l *relayLink) ping(done <-chan struct{}) {
	t := time.NewTicker(relayPingEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := l.write(protocol.TypePing, nil); err != nil {
				_ = l.ws.CloseNow()
				return
			}
		}
	}
}

// handle applies one message of the home; end reports the relay's end and
// the bye code for the edge's observers.
func (l *relayLink) handle(env protocol.Envelope, raw []byte) (code string, end bool) {
	switch env.Type {
	case protocol.TypeJoined:
		l.onJoined(env.Data)
	case protocol.TypeOffer:
		return l.onOffer(env.Data)
	case protocol.TypeCandidate:
		var c protocol.Candidate
		if json.Unmarshal(env.Data, &c) == nil && c.Candidate != "" {
			_ = l.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex})
		}
	case protocol.TypeTrackPublished, protocol.TypeTrackUnpublished:
		l.onTrackEvent(env.Type, env.Data)
	case protocol.TypePeerJoined, protocol.TypePeerLeft:
		l.onPeer(env.Type, env.Data, raw)
	case protocol.TypeRelayEvent:
		return l.onRelayEvent(env.Data)
	case protocol.TypeRelayDisconnect:
		var d protocol.RelayDisconnect
		if json.Unmarshal(env.Data, &d) == nil {
			if id, err := uuid.Parse(d.ParticipantID); err == nil {
				l.s.Disconnect(l.r.id, id, d.Code)
			}
		}
	case protocol.TypeBye:
		var b protocol.Bye
		_ = json.Unmarshal(env.Data, &b)
		if b.Code == "" {
			b.Code = protocol.ByeMoved
		}
		return b.Code, true
	case protocol.TypeError:
		l.s.log.Warn("cascade relay: the home answered an error", "session", l.r.id, "error", string(env.Data))
		var pe protocol.Error
		if json.Unmarshal(env.Data, &pe) == nil && pe.Ref == protocol.TypeJoin {
			return protocol.ByeMoved, true
		}
	case protocol.TypeActiveSpeaker:
		var a protocol.ActiveSpeaker
		if json.Unmarshal(env.Data, &a) == nil {
			l.toKnowers(raw, a.ParticipantID)
		}
	case protocol.TypePong, protocol.TypeLayer:
	default:
		// Room messages (chat, present), which the home's Audience let an
		// observer in the main room learn: here each observer's own
		// Audience decides too.
		conns, _ := l.s.connsOf(l.r.id, nil)
		l.s.broadcast(conns, Event{Type: env.Type, Data: env.Data})
	}
	return "", false
}

// onJoined notes the peers the home announces with the relay's join.
func (l *relayLink) onJoined(data json.RawMessage) {
	var j protocol.Joined
	if json.Unmarshal(data, &j) != nil {
		return
	}
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	for _, p := range j.Peers {
		l.e.peers[p.ConnectionID] = p
	}
}

// onOffer answers the home's subscribe offer; anything else ends the relay.
func (l *relayLink) onOffer(data json.RawMessage) (code string, end bool) {
	var sd protocol.SessionDescription
	if err := json.Unmarshal(data, &sd); err != nil || sd.PC != protocol.PCSubscribe {
		return protocol.ByeMoved, true
	}
	if err := l.answer(sd); err != nil {
		l.s.log.Warn("cascade relay: answering the home's offer", "session", l.r.id, "err", err)
		return protocol.ByeMoved, true
	}
	return "", false
}

// onTrackEvent notes a track the home publishes, or forgets one it
// unpublishes: the home renegotiates it away, so its stream ends here,
// and the edge's track with it.
func (l *relayLink) onTrackEvent(typ string, data json.RawMessage) {
	var t protocol.TrackEvent
	if json.Unmarshal(data, &t) != nil {
		return
	}
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	if typ == protocol.TypeTrackPublished {
		l.e.tracks[t.Track.ID] = t.Track
	} else {
		delete(l.e.tracks, t.Track.ID)
	}
}

// onPeer follows the home's peers; a peer that left takes its ghost here
// along.
func (l *relayLink) onPeer(typ string, data json.RawMessage, raw []byte) {
	var p protocol.PeerEvent
	if json.Unmarshal(data, &p) != nil {
		return
	}
	e := l.e
	e.mu.Lock()
	var gone *sfu.Peer
	if typ == protocol.TypePeerJoined {
		e.peers[p.ConnectionID] = p
	} else {
		delete(e.peers, p.ConnectionID)
		gone = e.dropGhostLocked(p.ConnectionID)
	}
	e.mu.Unlock()
	if gone != nil {
		// Close waits for the ghost's readers, which end when the home
		// renegotiates its tracks away (or the relay ends).
		go gone.Close()
	}
	l.toKnowers(raw, p.Participant.ID)
}

// onRelayEvent delivers a session event of the home to the edge's
// observers, each through their own Audience, after re-reading the room.
func (l *relayLink) onRelayEvent(data json.RawMessage) (code string, end bool) {
	var ev protocol.RelayEvent
	if json.Unmarshal(data, &ev) != nil || ev.Type == "" {
		return "", false
	}
	var to []uuid.UUID
	if ev.To != nil {
		to = []uuid.UUID{}
		for _, id := range ev.To {
			if u, err := uuid.Parse(id); err == nil {
				to = append(to, u)
			}
		}
	}
	if l.s.cfg.Refresh != nil {
		l.s.cfg.Refresh(l.ctx, l.r.id)
	}
	l.s.notify(l.r.id, to, ev.Type, ev.Data)
	if ev.Type == protocol.ByeSessionClosed {
		// The session layer's session_closed event: every connection
		// ends, as at the home.
		return protocol.ByeSessionClosed, true
	}
	return "", false
}

// toKnowers sends an announcement of the home about subject (a peer that
// joined or left, the active speaker), as it is, to the edge room's
// observers who may know of subject (edgeMayKnow).
func (l *relayLink) toKnowers(raw []byte, subject string) {
	id, err := uuid.Parse(subject)
	if err != nil {
		return
	}
	conns, _ := l.s.connsOf(l.r.id, nil)
	for _, c := range conns {
		if l.s.edgeMayKnow(c, id) {
			c.sendEvent(raw)
		}
	}
}

// edgeMayKnow reports whether an edge observer may learn of a participant
// at the home: the home let an observer in the main room know of them
// (they are on stage), and this observer receives them — so is in the
// main room itself, not waiting, not removed. The edge's live state shows
// nobody of the home as connected, so its Audience cannot decide this.
func (s *Server) edgeMayKnow(c *conn, subject uuid.UUID) bool {
	return s.policy.MayForward(c.id.SessionID, c.id.ParticipantID, subject, SourceCamera) ||
		s.policy.MayForward(c.id.SessionID, c.id.ParticipantID, subject, SourceMicrophone)
}

// answer applies the home's subscribe offer.
func (l *relayLink) answer(sd protocol.SessionDescription) error {
	l.e.mu.Lock()
	for _, t := range sd.Tracks {
		l.e.lines[t.Mid] = t
	}
	l.e.mu.Unlock()
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.SDP}); err != nil {
		return err
	}
	ans, err := l.pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := l.pc.SetLocalDescription(ans); err != nil {
		return err
	}
	return l.write(protocol.TypeAnswer, protocol.SessionDescription{PC: protocol.PCSubscribe, SDP: l.pc.LocalDescription().SDP})
}

// onTrack publishes a relayed stream on the ghost of its publisher's
// connection at the home.
func (l *relayLink) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	mid := ""
	if tr := recv.RTPTransceiver(); tr != nil {
		mid = tr.Mid()
	}
	e := l.e
	e.mu.Lock()
	line, ok := e.lines[mid]
	track := e.tracks[line.TrackID]
	name := e.peers[track.ConnectionID].Participant.Name
	e.mu.Unlock()
	participant, perr := uuid.Parse(line.ParticipantID)
	connection, cerr := uuid.Parse(track.ConnectionID)
	if !ok || perr != nil || cerr != nil {
		l.s.log.Warn("cascade relay: a stream the home did not announce", "session", l.r.id, "mid", mid)
		return
	}
	ghost, err := l.ghost(participant, connection, name)
	if err != nil {
		l.s.log.Warn("cascade relay: ghost", "session", l.r.id, "err", err)
		return
	}
	rl := sfu.RelayedLayer{Source: sfu.Source(line.Source), TrackID: line.TrackID, Layers: track.Layers, RID: line.RID}
	if err := ghost.AddRelayedTrack(rl, remote, recv); err != nil {
		l.s.log.Warn("cascade relay: relayed track", "session", l.r.id, "mid", mid, "err", err)
	}
}

// ghost returns the ghost of a home connection, creating it.
func (l *relayLink) ghost(participant, connection uuid.UUID, name string) (*sfu.Peer, error) {
	e := l.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.ghosts[connection]; g != nil {
		return g, nil
	}
	g, err := l.r.media.JoinGhost(participant, connection, name, l.pc)
	if err != nil {
		return nil, err
	}
	e.ghosts[connection] = g
	e.pubs[participant]++
	return g, nil
}

// errEdgeRoom refuses a connection that is not a gallery observer placed
// here into a room this node serves as an edge (this node may have become
// the room's home meanwhile: the client retries, and the edge room ends).
var errEdgeRoom = errors.New("signaling: the room is served here for its gallery only")

var (
	metricRedirects = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_gallery_redirects_total",
		Help: "Gallery observers this home node sent to an edge node (cascade).",
	})
	metricRelays = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chamber_cascade_relays",
		Help: "Relay connections between nodes: edge nodes served by this home node (out), homes this edge node is fed by (in).",
	}, []string{"direction"})
	metricEdgeObservers = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_edge_observers",
		Help: "Gallery observers this node serves as a cascade edge.",
	})
)
