package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// conn is one signalling WebSocket.
type conn struct {
	s      *Server
	log    *slog.Logger
	ws     *websocket.Conn
	id     Identity
	connID uuid.UUID
	room   *roomConns
	peer   *sfu.Peer

	out       chan []byte
	closeReq  chan closeRequest
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc

	limiter       *rate.Limiter
	lastRateError time.Time

	// expiry closes the connection when its credential expires.
	expiry *time.Timer
	// announced is this connection's PeerEvent, encoded once before it
	// joins the room and only read after.
	announced json.RawMessage

	// relay: an edge node's relay connection (cascade.go), never
	// announced, never handed to the session layer. edge: a gallery
	// observer this node serves as the room's edge. Set before join.
	relay, edge bool

	// While the connection catches up with its welcome (catchUp), the
	// events sent to it are counted. catchMu is taken after Server.mu.
	catchMu  sync.Mutex
	catching bool
	events   int
}

type closeRequest struct {
	code   websocket.StatusCode
	reason string
}

// hookTypePattern is what a room message type handed to Hooks must look like.
var hookTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// HandleSignal serves GET /api/v1/sessions/{id}/signal (the session ID is
// read with r.PathValue("id")). Answers that are not an upgrade are JSON
// errors shaped like the REST API's: 404 not_found for a malformed session
// ID, 503 unavailable while the server is not running, 400 bad_request for
// a request that is not a WebSocket handshake and 403 forbidden for a
// foreign Origin.
func (s *Server) HandleSignal(w http.ResponseWriter, r *http.Request) {
	sessionID, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		// As in the REST API: a malformed ID names nothing, so it is not found.
		writeHTTPError(w, http.StatusNotFound, "not_found", "session "+strconv.Quote(r.PathValue("id"))+" is not a valid id")
		return
	}
	s.mu.Lock()
	ready := s.sfu != nil && !s.closed
	base := s.ctx
	if ready {
		s.conns.Add(1)
	}
	s.mu.Unlock()
	if !ready {
		writeHTTPError(w, http.StatusServiceUnavailable, "unavailable", "signalling is not running")
		return
	}
	defer s.conns.Done()

	// websocket.Accept answers a failed handshake with http.Error (plain
	// text); the wrapper holds that answer back so that it becomes JSON.
	hw := &handshakeWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns:  s.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		hw.fail(err)
		return
	}
	ws.SetReadLimit(hardReadLimit)
	ctx, cancel := context.WithCancel(base)
	c := &conn{
		s:        s,
		log:      s.log,
		ws:       ws,
		connID:   uuid.New(),
		out:      make(chan []byte, outQueue),
		closeReq: make(chan closeRequest, 1),
		ctx:      ctx,
		cancel:   cancel,
		limiter:  rate.NewLimiter(rate.Limit(s.cfg.MessagesPerSecond), s.cfg.MessageBurst),
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	defer func() {
		// Let the writer flush and send the close frame (a no-op request if
		// one was made already), then release the context.
		c.closeWith(websocket.StatusNormalClosure, "", nil)
		<-writerDone
		cancel()
	}()

	host := s.cfg.PublicHost
	if host == "" {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	if !c.handshake(r, sessionID, host) {
		return
	}
	c.readLoop()
	c.teardown()
}

// handshake reads the join message, authenticates and joins the room.
func (c *conn) handshake(upgrade *http.Request, sessionID uuid.UUID, host string) bool {
	env, join, ok := c.readJoin()
	if !ok {
		return false
	}
	if node, isRelay := relayFrom(upgrade.Context()); isRelay {
		// Authenticated by the node signature (the caller checked it), as
		// the participant the Permissions and the Audience treat as an
		// observer in the main room.
		c.relay = true
		c.id = Identity{SessionID: sessionID, ParticipantID: c.s.cfg.RelayParticipant, Name: "relay:" + node, Role: "relay"}
		c.log = c.s.log.With("session", sessionID, "relay", node, "connection", c.connID)
		return c.enter(env.ID, c.id, nil, host)
	}
	id, welcome, ok := c.authenticate(upgrade, sessionID, env.ID, join)
	if !ok {
		return false
	}
	return c.enter(env.ID, id, welcome, host)
}

// placeElsewhere answers the join of a gallery observer with a redirect
// to an edge node when the room already serves GalleryThreshold of them
// here; true when it did.
func (c *conn) placeElsewhere(id Identity, join protocol.Join, reqID string) bool {
	s := c.s
	if s.cfg.Cascade == nil || s.cfg.GalleryThreshold <= 0 || !join.Redirect || id.Role != s.cfg.GalleryRole ||
		s.galleryHere(id.SessionID) < s.cfg.GalleryThreshold {
		return false
	}
	to, err := s.cfg.Cascade.Place(c.ctx, id.SessionID, id.ParticipantID)
	var u *url.URL
	if err == nil && to != "" {
		u, err = url.Parse(to)
	}
	if err != nil || u == nil {
		if err != nil {
			c.log.Warn("no edge node for a gallery observer; serving here", "err", err)
		}
		return false
	}
	metricRedirects.Inc()
	c.sendID(protocol.TypeRedirect, reqID, protocol.Redirect{URL: to, Path: u.RequestURI(), Reason: "gallery"})
	c.closeWith(websocket.StatusNormalClosure, "redirect", nil)
	return true
}

// readJoin reads the first message, which must be a well-formed join of
// this protocol version carrying a token.
func (c *conn) readJoin() (protocol.Envelope, protocol.Join, bool) {
	var env protocol.Envelope
	var join protocol.Join
	jctx, jcancel := context.WithTimeout(c.ctx, c.s.cfg.JoinTimeout)
	data, err := c.readMessage(jctx)
	jcancel()
	if err != nil {
		if errors.Is(err, errTooLarge) {
			c.refuse(protocol.CodeTooLarge, "message too large", "")
		} else {
			c.closeWith(websocket.StatusPolicyViolation, "no join message", nil)
		}
		return env, join, false
	}
	if err := json.Unmarshal(data, &env); err != nil || env.Type != protocol.TypeJoin {
		c.refuse(protocol.CodeBadRequest, "the first message must be join", env.ID)
		return env, join, false
	}
	if err := strictUnmarshal(env.Data, &join); err != nil {
		c.refuse(protocol.CodeBadRequest, "malformed join: "+err.Error(), env.ID)
		return env, join, false
	}
	if join.Version != protocol.Version {
		c.refuse(protocol.CodeUnsupportedVersion, fmt.Sprintf("this server speaks version %d", protocol.Version), env.ID)
		return env, join, false
	}
	if join.Token == "" {
		c.refuse(protocol.CodeUnauthenticated, "missing token", env.ID)
		return env, join, false
	}
	return env, join, true
}

// authenticate checks the join token and asks the session layer to admit
// the participant; it returns who joined and the welcome for "joined".
func (c *conn) authenticate(upgrade *http.Request, sessionID uuid.UUID, reqID string, join protocol.Join) (Identity, json.RawMessage, bool) {
	s := c.s
	id, err := s.auth.Authenticate(context.WithValue(c.ctx, upgradeKey{}, upgrade), sessionID, join.Token)
	if err == nil && (id.SessionID != sessionID || id.ParticipantID == uuid.Nil) {
		err = fault.Unauthenticated
	}
	if err != nil {
		code, msg := authFailure(err)
		if code == protocol.CodeInternal || code == protocol.CodeUnavailable {
			s.log.Warn("authentication failed", "session", sessionID, "err", err)
		}
		c.refuse(code, msg, reqID)
		return id, nil, false
	}
	c.id = id
	c.log = s.log.With("session", id.SessionID, "participant", id.ParticipantID, "connection", c.connID)
	if placed, isEdge := edgeFor(upgrade.Context()); isEdge {
		// Placed here by the room's home for this observer alone.
		if id.ParticipantID != placed || id.Role != s.cfg.GalleryRole {
			c.refuse(protocol.CodeForbidden, "this node serves the room's gallery only", reqID)
			return id, nil, false
		}
		c.edge = true
	} else if c.placeElsewhere(id, join, reqID) {
		return id, nil, false
	}
	welcome, err := s.hooks.Connected(c.ctx, id)
	if err != nil {
		code, msg, internal := errorFor(err)
		if internal {
			c.log.Error("connected hook failed", "err", err)
		}
		if code == protocol.CodeInternal || code == protocol.CodeBadRequest {
			code = protocol.CodeForbidden
		}
		c.refuse(code, msg, reqID)
		return id, nil, false
	}
	if welcome != nil && !json.Valid(welcome) {
		c.log.Error("connected hook returned invalid JSON")
		welcome = nil
	}
	return id, welcome, true
}

// enter joins the room (sending "joined" and announcing the connection to
// the others) and the media room.
func (c *conn) enter(reqID string, id Identity, welcome json.RawMessage, host string) bool {
	s := c.s
	ice := s.iceServers(host, id.ParticipantID, c.connID)
	// The same bytes go to every other participant the Audience lets
	// learn of the join: encoded once, and before taking the server lock,
	// under which welcome runs.
	c.announced, _ = json.Marshal(c.peerEvent()) // plain strings: always marshals
	joined := c.peerAnnouncement(protocol.TypePeerJoined)
	joinedMsg := mustEncode(joined.Type, "", joined.Data)
	c.catching = welcome != nil && !c.relay // not yet in the room: nothing sends to it
	r, err := s.join(c, func(others []*conn) {
		c.sendID(protocol.TypeJoined, reqID, c.joinedMessage(id, welcome, ice, others))
		if c.relay {
			return // nobody learns of a relay
		}
		// Under the server lock too, so that every connection sees joins
		// in the same order as the peers lists.
		for _, o := range others {
			s.deliver(o, joined, joinedMsg)
		}
		if c.room.edge != nil {
			// Who is on stage at the home, as the relay learnt it.
			for _, pe := range c.room.edge.knownPeers() {
				if id, err := uuid.Parse(pe.Participant.ID); err == nil && s.edgeMayKnow(c, id) {
					c.send(protocol.TypePeerJoined, pe)
				}
			}
		}
	})
	if err != nil {
		s.revokeTURN(id.ParticipantID, c.connID)
		if !c.relay {
			s.hooks.Disconnected(context.WithoutCancel(c.ctx), id)
		}
		switch {
		case errors.Is(err, errEdgeRoom):
			c.refuse(protocol.CodeUnavailable, "the room is moving to this node; retry", reqID)
		case errors.Is(err, errTooManyConnections):
			c.refuse(protocol.CodeForbidden, fmt.Sprintf("you already have %d connections to this session; close one first", s.cfg.MaxConnectionsPerParticipant), reqID)
		default:
			c.refuse(protocol.CodeConflict, "the server is shutting down", reqID)
		}
		return false
	}
	peer, err := r.media.Join(sfu.PeerConfig{
		ParticipantID: id.ParticipantID,
		ConnectionID:  c.connID,
		Name:          id.Name,
		Signal:        c.fromMedia,
		OnClose: func(code, reason string) {
			c.closeWith(websocket.StatusNormalClosure, reason, protocol.Error{Code: code, Message: reason})
		},
	})
	if err != nil {
		c.log.Error("media join failed", "err", err)
		c.sendError("", "", protocol.CodeInternal, "media unavailable")
		c.closeWith(websocket.StatusInternalError, "media unavailable", nil)
		c.teardown() // the room already announced this connection
		return false
	}
	c.peer = peer
	if c.relay {
		peer.SetRelay()
		metricRelays.WithLabelValues("out").Inc()
	}
	if c.edge {
		metricEdgeObservers.Inc()
	}
	peer.Start()
	c.watchExpiry()
	c.log.Info("joined", "name", id.Name, "role", id.Role)
	c.catchUp(id, welcome)
	return true
}

// catchUp sends the welcome again if it changed between its reading and
// the connection joining its room (WelcomeReader). A reading during which
// an event reached the connection is not trusted, as the event may be
// newer than it: it is read again, up to three times, and the last
// reading sent if it differs even then.
func (c *conn) catchUp(id Identity, sent json.RawMessage) {
	defer func() {
		c.catchMu.Lock()
		c.catching = false
		c.catchMu.Unlock()
	}()
	wr, ok := c.s.hooks.(WelcomeReader)
	if !ok || !c.catching {
		return
	}
	for reading := 1; ; reading++ {
		c.catchMu.Lock()
		before := c.events
		c.catchMu.Unlock()
		now, err := wr.Welcome(c.ctx, id)
		if err != nil || !json.Valid(now) {
			c.log.Warn("could not read the welcome again", "err", err)
			return
		}
		c.catchMu.Lock()
		trusted := c.events == before || reading == welcomeReadings
		if trusted && !bytes.Equal(now, sent) {
			metricWelcomesAgain.Inc()
			c.sendRaw(mustEncode(protocol.TypeWelcome, "", json.RawMessage(now)))
		}
		c.catchMu.Unlock()
		if trusted {
			return
		}
	}
}

// welcomeReadings bounds catchUp's readings: events that keep overtaking
// them cannot hold a join's read loop.
const welcomeReadings = 3

// sendEvent queues an event (Server.deliver), counted while the
// connection catches up with its welcome.
func (c *conn) sendEvent(msg []byte) {
	c.catchMu.Lock()
	defer c.catchMu.Unlock()
	if c.catching {
		c.events++
	}
	c.sendRaw(msg)
}

// joinedMessage is the "joined" a new connection receives.
func (c *conn) joinedMessage(id Identity, welcome json.RawMessage, ice []protocol.ICEServer, others []*conn) protocol.Joined {
	return protocol.Joined{
		Version:      protocol.Version,
		ConnectionID: c.connID.String(),
		Participant:  protocol.Participant{ID: id.ParticipantID.String(), Name: id.Name, Role: id.Role},
		Session:      welcome,
		ICEServers:   ice,
		Peers:        c.peersKnown(others),
		Limits: protocol.Limits{
			MaxMessageSize: protocol.MaxMessageSize,
			MaxSDPSize:     protocol.MaxSDPSize,
			MessagesPerSec: c.s.cfg.MessagesPerSecond,
			MessageBurst:   c.s.cfg.MessageBurst,
		},
	}
}

func (c *conn) peerEvent() protocol.PeerEvent {
	return protocol.PeerEvent{
		ConnectionID: c.connID.String(),
		Participant:  protocol.Participant{ID: c.id.ParticipantID.String(), Name: c.id.Name, Role: c.id.Role},
	}
}

// peerAnnouncement is the event telling others of this connection
// (peer_joined or peer_left).
func (c *conn) peerAnnouncement(typ string) Event {
	return Event{Type: typ, Data: c.announced, Subject: c.id.ParticipantID}
}

// peersKnown lists, for joined.peers, the other connections this one may
// learn of: each is an announcement like peer_joined, and the Audience
// decides on it in the same way.
func (c *conn) peersKnown(others []*conn) []protocol.PeerEvent {
	peers := make([]protocol.PeerEvent, 0, len(others))
	for _, o := range others {
		if o.relay {
			continue
		}
		ev := o.peerAnnouncement(protocol.TypePeerJoined)
		data, ok := c.s.audience.Filter(c.id.SessionID, c.id.ParticipantID, ev)
		if !ok {
			continue
		}
		var pe protocol.PeerEvent
		if err := json.Unmarshal(data, &pe); err != nil {
			c.log.Error("audience returned a bad peer", "err", err)
			continue
		}
		peers = append(peers, pe)
	}
	return peers
}

// fromMedia passes on what the SFU sends this connection (its
// sfu.PeerConfig.Signal): the announcements of tracks and of the active
// speaker are events, which the Audience filters like any other; the rest
// is this connection's own media negotiation.
func (c *conn) fromMedia(typ string, data any) {
	var subject string
	switch d := data.(type) {
	case protocol.TrackEvent:
		subject = d.Track.ParticipantID
	case protocol.ActiveSpeaker:
		subject = d.ParticipantID
	default:
		c.send(typ, data)
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		c.log.Error("encoding a media event", "type", typ, "err", err)
		return
	}
	sub, _ := uuid.Parse(subject)
	c.s.deliver(c, Event{Type: typ, Data: raw, Subject: sub}, nil)
}

// watchExpiry closes the connection with bye token_expired when its
// credential expires. teardown stops the timer; should it fire after the
// connection ended, closeWith has already run and it does nothing.
func (c *conn) watchExpiry() {
	if c.id.ExpiresAt.IsZero() {
		return
	}
	c.expiry = time.AfterFunc(time.Until(c.id.ExpiresAt), func() {
		c.log.Info("credential expired; closing")
		c.closeWith(websocket.StatusNormalClosure, protocol.ByeExpired, protocol.Bye{Code: protocol.ByeExpired})
	})
}

// teardown releases everything the connection holds.
func (c *conn) teardown() {
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.peer != nil {
		c.peer.Close()
	}
	registered := c.s.leave(c)
	if c.relay {
		if c.peer != nil {
			metricRelays.WithLabelValues("out").Dec()
		}
	} else {
		left := c.peerAnnouncement(protocol.TypePeerLeft)
		msg := mustEncode(left.Type, "", left.Data)
		for _, o := range registered.others {
			c.s.deliver(o, left, msg)
		}
		c.s.hooks.Disconnected(context.WithoutCancel(c.ctx), c.id)
	}
	if c.edge && c.peer != nil {
		metricEdgeObservers.Dec()
	}
	if registered.was {
		c.room.present.Done()
	}
	// Last, so as not to delay the session layer's record of the
	// departure; the peer's PeerConnections are closed already.
	c.s.revokeTURN(c.id.ParticipantID, c.connID)
	c.log.Info("left")
}

var errTooLarge = errors.New("message too large")

// readMessage reads one text message of at most MaxMessageSize bytes. A
// larger message is read to its end (up to the hard limit) and reported as
// errTooLarge, so the connection survives it.
func (c *conn) readMessage(ctx context.Context) ([]byte, error) {
	typ, rd, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(rd, protocol.MaxMessageSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > protocol.MaxMessageSize {
		if _, err := io.Copy(io.Discard, rd); err != nil {
			return nil, err
		}
		return nil, errTooLarge
	}
	if typ != websocket.MessageText {
		return nil, errBinary
	}
	return data, nil
}

var errBinary = errors.New("binary message")

func (c *conn) readLoop() {
	for {
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.IdleTimeout)
		data, err := c.readMessage(ctx)
		cancel()
		switch {
		case errors.Is(err, errTooLarge):
			c.sendError("", "", protocol.CodeTooLarge, fmt.Sprintf("messages are limited to %d bytes", protocol.MaxMessageSize))
			continue
		case errors.Is(err, errBinary):
			c.sendError("", "", protocol.CodeBadRequest, "binary messages are not supported")
			continue
		case err != nil:
			if st := websocket.CloseStatus(err); st != websocket.StatusNormalClosure && st != websocket.StatusGoingAway && !errors.Is(err, context.Canceled) {
				c.log.Debug("read ended", "err", err)
			}
			return
		}
		if !c.limiter.Allow() {
			// One error a second at most, so that a flood is not answered by a flood.
			if now := time.Now(); now.Sub(c.lastRateError) > time.Second {
				c.lastRateError = now
				c.sendError("", "", protocol.CodeRateLimited, "too many messages; this one was dropped")
			}
			continue
		}
		if !c.handle(data) {
			return
		}
	}
}

// handle processes one message; false ends the connection.
func (c *conn) handle(data []byte) bool {
	var env protocol.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		c.sendError("", "", protocol.CodeBadRequest, "malformed JSON")
		return true
	}
	if env.Type == "" {
		c.sendError(env.ID, "", protocol.CodeBadRequest, "missing type")
		return true
	}
	fail := func(err error) bool {
		code, msg, internal := errorFor(err)
		if internal {
			c.log.Error("handling a message failed", "type", env.Type, "err", err)
		}
		c.sendError(env.ID, env.Type, code, msg)
		return true
	}
	switch env.Type {
	case protocol.TypeOffer:
		var sd protocol.SessionDescription
		if err := strictUnmarshal(env.Data, &sd); err != nil {
			return fail(fault.New(fault.BadRequest, "offer: %v", err))
		}
		if sd.PC != protocol.PCPublish {
			return fail(fault.New(fault.BadRequest, "offers are made on the publish connection"))
		}
		answer, err := c.peer.HandleOffer(sd)
		if err != nil {
			return fail(err)
		}
		c.sendID(protocol.TypeAnswer, env.ID, protocol.SessionDescription{PC: protocol.PCPublish, SDP: answer})
	case protocol.TypeAnswer:
		var sd protocol.SessionDescription
		if err := strictUnmarshal(env.Data, &sd); err != nil {
			return fail(fault.New(fault.BadRequest, "answer: %v", err))
		}
		if sd.PC != protocol.PCSubscribe {
			return fail(fault.New(fault.BadRequest, "answers are made on the subscribe connection"))
		}
		if err := c.peer.HandleAnswer(sd); err != nil {
			return fail(err)
		}
	case protocol.TypeCandidate:
		var cand protocol.Candidate
		if err := strictUnmarshal(env.Data, &cand); err != nil {
			return fail(fault.New(fault.BadRequest, "candidate: %v", err))
		}
		if err := c.peer.HandleCandidate(cand); err != nil {
			return fail(err)
		}
	case protocol.TypeQuality:
		var q protocol.Quality
		if err := strictUnmarshal(env.Data, &q); err != nil {
			return fail(fault.New(fault.BadRequest, "quality: %v", err))
		}
		if err := c.peer.SetQuality(q); err != nil {
			return fail(err)
		}
	case protocol.TypePing:
		c.sendRaw(mustEncode(protocol.TypePong, env.ID, env.Data))
	case protocol.TypeLeave:
		c.closeWith(websocket.StatusNormalClosure, "left", protocol.Bye{Code: protocol.ByeLeft})
		return false
	case protocol.TypeJoin:
		return fail(fault.New(fault.Conflict, "already joined"))
	default:
		if !hookTypePattern.MatchString(env.Type) {
			return fail(unknownType(env.Type))
		}
		if !c.room.allowMessage(c.id.ParticipantID) {
			return fail(&fault.Error{Kind: fault.RateLimited, Message: "too many room messages; this one was dropped"})
		}
		payload := env.Data
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		out, err := c.s.hooks.Message(c.ctx, c.id, env.Type, payload)
		if err != nil {
			return fail(err)
		}
		c.roomMessage(env.Type, out)
	}
	return true
}

// roomMessage sends what the session layer made of a room message to the
// session's connections, as the Audience lets each of them learn it.
func (c *conn) roomMessage(typ string, out json.RawMessage) {
	if out == nil {
		return
	}
	if !json.Valid(out) {
		c.log.Error("message hook returned invalid JSON", "type", typ)
		return
	}
	conns, _ := c.s.connsOf(c.id.SessionID, nil)
	c.s.broadcast(conns, Event{Type: typ, Data: out})
}

// strictUnmarshal decodes a message's data, refusing unknown fields and
// trailing data so that typos are reported instead of ignored.
func strictUnmarshal(data json.RawMessage, v any) error {
	if len(data) == 0 {
		return errors.New("missing data")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func mustEncode(typ, id string, data any) []byte {
	b, err := protocol.Encode(typ, id, data)
	if err != nil {
		b, _ = protocol.Encode(protocol.TypeError, id, protocol.Error{Code: protocol.CodeInternal, Message: "encoding failed"})
	}
	return b
}

// send queues a message (the sfu.PeerConfig.Signal function).
func (c *conn) send(typ string, data any) { c.sendRaw(mustEncode(typ, "", data)) }

func (c *conn) sendID(typ, id string, data any) { c.sendRaw(mustEncode(typ, id, data)) }

func (c *conn) sendError(id, ref, code, msg string) {
	c.sendRaw(mustEncode(protocol.TypeError, id, protocol.Error{Code: code, Message: msg, Ref: ref}))
}

// sendRaw queues an encoded message without blocking. A client that does
// not read its messages fast enough is disconnected: dropping signalling
// messages would silently wedge its session.
func (c *conn) sendRaw(msg []byte) {
	select {
	case <-c.ctx.Done():
		return
	default:
	}
	select {
	case c.out <- msg:
	default:
		c.log.Warn("client too slow to read its messages; closing")
		c.closeWith(websocket.StatusPolicyViolation, "too slow", nil)
	}
}

// refuse sends an error and closes with a policy violation.
func (c *conn) refuse(code, msg, id string) {
	c.sendError(id, protocol.TypeJoin, code, msg)
	c.closeWith(websocket.StatusPolicyViolation, code, nil)
}

// closeWith sends a last message (if any), flushes the queue and closes.
func (c *conn) closeWith(code websocket.StatusCode, reason string, last any) {
	c.closeOnce.Do(func() {
		if last != nil {
			typ := protocol.TypeBye
			if _, ok := last.(protocol.Error); ok {
				typ = protocol.TypeError
			}
			select {
			case c.out <- mustEncode(typ, "", last):
			default:
			}
		}
		if len(reason) > 120 {
			reason = reason[:120]
		}
		c.closeReq <- closeRequest{code: code, reason: reason}
	})
}

// writeLoop writes queued messages; after a close request it flushes what
// is queued and closes the WebSocket.
func (c *conn) writeLoop() {
	write := func(msg []byte) bool {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), writeTimeout)
		defer cancel()
		return c.ws.Write(ctx, websocket.MessageText, msg) == nil
	}
	for {
		select {
		case msg := <-c.out:
			if !write(msg) {
				c.cancel()
				_ = c.ws.CloseNow()
				return
			}
		case req := <-c.closeReq:
			for {
				select {
				case msg := <-c.out:
					if !write(msg) {
						_ = c.ws.CloseNow()
						c.cancel()
						return
					}
					continue
				default:
				}
				break
			}
			_ = c.ws.Close(req.code, req.reason)
			c.cancel()
			return
		case <-c.ctx.Done():
			_ = c.ws.CloseNow()
			return
		}
	}
}

var metricWelcomesAgain = promauto.NewCounter(prometheus.CounterOpts{
	Name: "chamber_welcomes_resent_total",
	Help: "Welcomes sent again because the session changed while the connection joined its room (a participant admitted as they joined).",
})
