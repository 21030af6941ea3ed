package signaling

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
	"github.com/chamber-court/chamber/signaling/turnserver"
)

// Defaults for Config.
const (
	DefaultTURNCredentialTTL = 8 * time.Hour
	DefaultMessagesPerSecond = 20
	DefaultMessageBurst      = 60
	DefaultJoinTimeout       = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	outQueue                 = 512 // messages waiting to be written to one connection
	writeTimeout             = 10 * time.Second
	hardReadLimit            = 1 << 20 // beyond this a message closes the connection (1009)
)

// Per-participant limits, over all of a participant's connections.
const (
	// DefaultMaxConnectionsPerParticipant bounds one participant's
	// simultaneous WebSockets (tabs and devices).
	DefaultMaxConnectionsPerParticipant = 4
	// DefaultRoomMessagesPerSecond and DefaultRoomMessageBurst bound the
	// room messages (chat, present) one participant sends: each is
	// journalled.
	DefaultRoomMessagesPerSecond = 2
	DefaultRoomMessageBurst      = 10
)

// Config configures a Server. The flag each field maps to is in brackets.
type Config struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Authenticator checks join tokens. Required.
	Authenticator Authenticator
	// Permissions decides who publishes and who receives whom; nil lets everyone
	// publish and receive everyone.
	Permissions MediaPermissions
	// Hooks follows connections and owns room messages; nil accepts
	// everyone and broadcasts chat to the whole session.
	Hooks Hooks
	// Audience decides what each connection learns of every event; nil
	// tells everyone everything.
	Audience Audience
	// Recorder attaches recording taps; nil records nothing.
	Recorder Recorder

	// MediaUDPAddr is the one UDP address of all media (ICE UDP mux)
	// [--media-udp-port → ":PORT"]; default sfu.DefaultUDPAddr. Tests use
	// "127.0.0.1:0".
	MediaUDPAddr string
	// MediaTCPAddr is the ICE-TCP address [--media-tcp-port → ":PORT"];
	// default sfu.DefaultTCPAddr; "off" disables ICE-TCP.
	MediaTCPAddr string
	// AllowPrivateCandidates lets the SFU check participants' candidates in
	// loopback, private, link-local, CGNAT, multicast and cloud-metadata
	// ranges [--allow-private-candidates]. nil means true when MediaUDPAddr
	// is a loopback address (every participant is then on this host) and
	// false otherwise; the TURN relay address is always allowed.
	AllowPrivateCandidates *bool
	// NATIP is the public address in front of a 1:1 NAT [--nat-ip]; host
	// candidates and TURN relay candidates then carry it.
	NATIP string
	// PublicHost is the host name or IP put in TURN URLs [--public-host];
	// empty means the host the client used to reach the signalling endpoint.
	PublicHost string

	// TURNUDPAddr, TURNTCPAddr and TURNTLSAddr are the embedded TURN
	// server's listeners [--turn-udp-port, --turn-tcp-port (e.g. 3478),
	// --turn-tls-port (443 in production)]; empty disables each, all empty
	// disables TURN.
	TURNUDPAddr, TURNTCPAddr, TURNTLSAddr string
	// TURNTLSCertFile and TURNTLSKeyFile are the TLS listener's certificate
	// and key (PEM) [--turn-tls-cert, --turn-tls-key].
	TURNTLSCertFile, TURNTLSKeyFile string
	// TURNRelayIP is the address of relayed candidates; default NATIP, else
	// the address of the interface with the default route.
	TURNRelayIP string
	// TURNSecret signs TURN credentials [--turn-secret]; empty means random
	// at each start.
	TURNSecret []byte
	// TURNCredentialTTL is how long the TURN credentials sent in "joined"
	// stay valid [--turn-credential-ttl]; default 8h. An allocation is
	// refreshed with the same credential, so this bounds how long a
	// connection can stay on one relay before its client must rejoin.
	TURNCredentialTTL time.Duration

	// OriginPatterns are the browser origins allowed besides the
	// endpoint's own host (see websocket.AcceptOptions).
	OriginPatterns []string
	// MessagesPerSecond and MessageBurst rate-limit each connection's messages.
	MessagesPerSecond float64
	MessageBurst      int
	// MaxConnectionsPerParticipant bounds one participant's simultaneous
	// connections [--max-connections-per-participant]; default 4.
	MaxConnectionsPerParticipant int
	// RoomMessagesPerSecond and RoomMessageBurst rate-limit the room
	// messages handed to Hooks (chat, present) per participant, across
	// their connections; defaults 2/s, burst 10.
	RoomMessagesPerSecond float64
	RoomMessageBurst      int
	// JoinTimeout bounds the wait for the join message; IdleTimeout closes
	// a connection that sends nothing (clients send ping every 20 s).
	JoinTimeout, IdleTimeout time.Duration
	// SubscriberBitrate is the bandwidth assumed for a subscriber until it
	// reports one (bit/s); zero means sfu.DefaultSubscriberBitrate.
	SubscriberBitrate uint64
	// ICEFailedTimeout bounds how long a participant whose network vanished
	// keeps its resources; zero means sfu.DefaultICEFailedTimeout.
	ICEFailedTimeout time.Duration
	// NoBatching disables sendmmsg batching of the media socket (benchmarks).
	NoBatching bool

	// Cascade spreads large public galleries over the nodes of a cluster
	// (cascade.go); nil keeps every connection on the node it reached.
	Cascade Cascade
	// GalleryThreshold is how many gallery observers a room's home serves
	// itself before it sends new ones to an edge node
	// [--gallery-node-threshold]; 0 never does.
	GalleryThreshold int
	// GalleryRole is the role of gallery observers ("observer").
	GalleryRole string
	// Refresh re-reads a room's live state (the session layer's) at an
	// edge node before it delivers an event of the home: the edge holds
	// no room state of its own making. Nil: nothing to re-read.
	Refresh func(ctx context.Context, sessionID uuid.UUID)
	// RelayParticipant is who an edge node's relay connection is to the
	// Permissions and the Audience: a participant ID the session layer
	// treats as an observer in the main room.
	RelayParticipant uuid.UUID
}

// Server is the signalling server and owner of the SFU and the TURN server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	auth     Authenticator
	policy   MediaPermissions
	hooks    Hooks
	audience Audience

	mu      sync.Mutex
	sfu     *sfu.SFU
	turn    *turnserver.Server
	relayIP net.IP
	rooms   map[uuid.UUID]*roomConns
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	conns   sync.WaitGroup
}

// roomConns is the signalling side of one session.
type roomConns struct {
	id    uuid.UUID
	media *sfu.Room
	conns map[uuid.UUID]*conn // by connection ID
	// edge is set when this node serves the room as a cascade edge: its
	// media come from the home node over the relay.
	edge *edgeRelay
	// present counts the connections that joined and whose teardown —
	// the session layer's record of the departure included — has not
	// finished.
	present sync.WaitGroup

	// messages limits each participant's room messages across their
	// connections; it lives as long as the room.
	limitMu  sync.Mutex
	messages map[uuid.UUID]*rate.Limiter
	perSec   rate.Limit
	burst    int
}

// allowMessage spends one of a participant's room messages.
func (r *roomConns) allowMessage(participant uuid.UUID) bool {
	r.limitMu.Lock()
	defer r.limitMu.Unlock()
	l := r.messages[participant]
	if l == nil {
		l = rate.NewLimiter(r.perSec, r.burst)
		r.messages[participant] = l
	}
	return l.Allow()
}

// errTooManyConnections refuses a join beyond MaxConnectionsPerParticipant.
var errTooManyConnections = errors.New("signaling: too many connections for one participant")

// connectionsOf counts a participant's connections in the room; the
// server lock is held.
func (r *roomConns) connectionsOf(participant uuid.UUID) int {
	n := 0
	for _, c := range r.conns {
		if c.id.ParticipantID == participant {
			n++
		}
	}
	return n
}

// New checks the configuration. Start opens the sockets.
func New(cfg Config) (*Server, error) {
	if cfg.Authenticator == nil {
		return nil, fmt.Errorf("%w: an Authenticator is required", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TURNCredentialTTL == 0 {
		cfg.TURNCredentialTTL = DefaultTURNCredentialTTL
	}
	if cfg.MessagesPerSecond == 0 {
		cfg.MessagesPerSecond = DefaultMessagesPerSecond
	}
	if cfg.MessageBurst == 0 {
		cfg.MessageBurst = DefaultMessageBurst
	}
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConnectionsPerParticipant <= 0 {
		cfg.MaxConnectionsPerParticipant = DefaultMaxConnectionsPerParticipant
	}
	if cfg.RoomMessagesPerSecond == 0 {
		cfg.RoomMessagesPerSecond = DefaultRoomMessagesPerSecond
	}
	if cfg.RoomMessageBurst == 0 {
		cfg.RoomMessageBurst = DefaultRoomMessageBurst
	}
	if cfg.NATIP != "" && net.ParseIP(cfg.NATIP) == nil {
		return nil, fmt.Errorf("%w: NAT IP %q", ErrConfig, cfg.NATIP)
	}
	if cfg.TURNTLSAddr != "" && (cfg.TURNTLSCertFile == "" || cfg.TURNTLSKeyFile == "") {
		return nil, fmt.Errorf("%w: TURN over TLS needs a certificate and a key", ErrConfig)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, auth: cfg.Authenticator, policy: cfg.Permissions, hooks: cfg.Hooks, audience: cfg.Audience,
		rooms: make(map[uuid.UUID]*roomConns)}
	if s.policy == nil {
		s.policy = openPolicy{}
	}
	if s.hooks == nil {
		s.hooks = defaultHooks{}
	}
	if s.audience == nil {
		s.audience = openAudience{}
	}
	return s, nil
}

// Start opens the media sockets and starts the TURN server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sfu != nil || s.closed {
		return fmt.Errorf("%w: Start called twice or after Close", ErrConfig)
	}
	var nat []string
	if s.cfg.NATIP != "" {
		nat = []string{s.cfg.NATIP}
	}
	filter := s.candidateFilter()
	m, err := sfu.New(sfu.Config{
		Logger:            s.log,
		UDPAddr:           s.cfg.MediaUDPAddr,
		TCPAddr:           s.cfg.MediaTCPAddr,
		NATIPs:            nat,
		Candidates:        filter,
		SubscriberBitrate: s.cfg.SubscriberBitrate,
		ICEFailedTimeout:  s.cfg.ICEFailedTimeout,
		NoBatching:        s.cfg.NoBatching,
	})
	if err != nil {
		return err
	}
	if s.cfg.TURNUDPAddr != "" || s.cfg.TURNTCPAddr != "" || s.cfg.TURNTLSAddr != "" {
		t, relay, err := s.startTURN(m)
		if err != nil {
			_ = m.Close()
			return err
		}
		s.turn, s.relayIP = t, relay
		if filter != nil {
			// Before any peer exists: a participant behind TURN offers
			// the relay's address, which may well be a private one.
			if a, ok := netip.AddrFromSlice(relay); ok {
				filter.AllowRelay = append(filter.AllowRelay, a.Unmap())
			}
		}
	}
	s.sfu = m
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.log.Info("media ready", "udp", m.UDPAddr(), "tcp", m.TCPAddr(), "turn", s.turn != nil)
	return nil
}

// candidateFilter returns the filter of participants' candidates, or nil
// when private candidates are allowed.
func (s *Server) candidateFilter() *sfu.CandidateFilter {
	allow := false
	if s.cfg.AllowPrivateCandidates != nil {
		allow = *s.cfg.AllowPrivateCandidates
	} else if ap, err := netip.ParseAddrPort(s.cfg.MediaUDPAddr); err == nil {
		allow = ap.Addr().IsLoopback()
	}
	if allow {
		return nil
	}
	return &sfu.CandidateFilter{}
}

func (s *Server) startTURN(m *sfu.SFU) (*turnserver.Server, net.IP, error) {
	relay := net.ParseIP(s.cfg.TURNRelayIP)
	if relay == nil && s.cfg.TURNRelayIP != "" {
		return nil, nil, fmt.Errorf("%w: TURN relay IP %q", ErrConfig, s.cfg.TURNRelayIP)
	}
	if relay == nil && s.cfg.NATIP != "" {
		relay = net.ParseIP(s.cfg.NATIP)
	}
	media := m.UDPAddr().IP
	if relay == nil && media != nil && !media.IsUnspecified() {
		relay = media
	}
	if relay == nil {
		relay = outboundIP()
	}
	var tlsCfg *tls.Config
	if s.cfg.TURNTLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TURNTLSCertFile, s.cfg.TURNTLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("signaling: TURN TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	own := ownAddresses(s.cfg.NATIP, media)
	mediaPort := m.UDPAddr().Port
	t, err := turnserver.New(turnserver.Config{
		Logger:  s.log,
		UDPAddr: s.cfg.TURNUDPAddr,
		TCPAddr: s.cfg.TURNTCPAddr,
		TLSAddr: s.cfg.TURNTLSAddr,
		TLS:     tlsCfg,
		RelayIP: relay,
		Secret:  s.cfg.TURNSecret,
		// Only the SFU's media port on this host: participants cannot use
		// the relay to reach anything else. The IP is checked once per
		// permission, the port on every datagram.
		AllowPeerIP: func(ip net.IP) bool {
			_, ok := own[ip.String()]
			return ok
		},
		PeerPort: mediaPort,
	})
	return t, relay, err
}

// ownAddresses lists the addresses the SFU's candidates can carry: the
// TURN server may relay only to those.
func ownAddresses(nat string, media net.IP) map[string]struct{} {
	own := map[string]struct{}{"127.0.0.1": {}, "::1": {}}
	if nat != "" {
		own[net.ParseIP(nat).String()] = struct{}{}
	}
	if media != nil && !media.IsUnspecified() {
		own[media.String()] = struct{}{}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				own[n.IP.String()] = struct{}{}
			}
		}
	}
	return own
}

// outboundIP returns the address of the interface with the default route
// (no packet is sent), or loopback.
func outboundIP() net.IP {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}

// MediaUDPAddr returns the media UDP address (after Start).
func (s *Server) MediaUDPAddr() net.Addr { return s.sfu.UDPAddr() }

// MediaTCPAddr returns the ICE-TCP address (after Start), or nil.
func (s *Server) MediaTCPAddr() net.Addr {
	if a := s.sfu.TCPAddr(); a != nil {
		return a
	}
	return nil
}

// TURNAddrs returns the TURN listeners' addresses (nil entries when disabled).
func (s *Server) TURNAddrs() (udp, tcp, tls net.Addr) {
	if s.turn == nil {
		return nil, nil, nil
	}
	return s.turn.UDPAddr(), s.turn.TCPAddr(), s.turn.TLSAddr()
}

// Close closes every connection, the SFU and the TURN server, and waits for
// the connections' goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var conns []*conn
	for _, r := range s.rooms {
		for _, c := range r.conns {
			conns = append(conns, c)
		}
	}
	cancel := s.cancel
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.StatusGoingAway, "server shutting down", protocol.Bye{Code: protocol.ByeShutdown, Reason: "server shutting down"})
	}
	if cancel != nil {
		cancel()
	}
	s.conns.Wait()
	var err error
	if s.sfu != nil {
		err = s.sfu.Close()
	}
	if s.turn != nil {
		if e := s.turn.Close(); err == nil {
			err = e
		}
	}
	return err
}

// Notify pushes a state event to the connections of a session, each as the
// Audience decides, and then re-evaluates forwarding for the whole room
// against the MediaPermissions (spaces, mute, etc.). to narrows the connections
// considered to those of the listed participants (nil = all); the Audience
// decides for each of them all the same.
func (s *Server) Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage) {
	if s.edgeRoom(sessionID) {
		return // the home's event comes over the relay (relay_event)
	}
	s.notify(sessionID, to, typ, payload)
	if relays := s.relaysOf(sessionID); len(relays) > 0 {
		ev := protocol.RelayEvent{Type: typ, Data: payload}
		for _, id := range to {
			ev.To = append(ev.To, id.String())
		}
		if to != nil && ev.To == nil {
			ev.To = []string{} // nobody, not everyone
		}
		msg := mustEncode(protocol.TypeRelayEvent, "", ev)
		for _, c := range relays {
			c.sendRaw(msg)
		}
	}
}

// notify delivers a session event to the connections here (each as the
// Audience decides; relays have theirs in relay_event) and re-applies the
// media policy.
func (s *Server) notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage) {
	conns, media := s.connsOf(sessionID, to)
	conns = slices.DeleteFunc(conns, func(c *conn) bool { return c.relay })
	s.broadcast(conns, Event{Type: typ, Data: payload})
	if media != nil {
		media.Reconcile()
	}
}

// broadcast delivers one event to each of conns, encoded once unless the
// Audience reshapes it for someone.
func (s *Server) broadcast(conns []*conn, ev Event) {
	msg, err := protocol.Encode(ev.Type, "", ev.Data)
	if err != nil {
		s.log.Error("event with a bad payload", "type", ev.Type, "err", err)
		return
	}
	for _, c := range conns {
		s.deliver(c, ev, msg)
	}
}

// deliver is the one way an event reaches a connection: the Audience
// decides whether, and with which data. msg is ev encoded as it is (nil:
// not encoded yet), sent unless the Audience redacts the data.
func (s *Server) deliver(c *conn, ev Event, msg []byte) {
	data, ok := s.audience.Filter(c.id.SessionID, c.id.ParticipantID, ev)
	if !ok {
		return
	}
	if msg == nil || !bytes.Equal(data, ev.Data) {
		var err error
		if msg, err = protocol.Encode(ev.Type, "", data); err != nil {
			s.log.Error("audience returned a bad payload", "type", ev.Type, "err", err)
			return
		}
	}
	c.sendEvent(msg)
}

// Disconnect closes a participant's connection(s); code is a protocol Bye
// code (removed, token_revoked, session_closed …).
func (s *Server) Disconnect(sessionID, participantID uuid.UUID, code string) {
	conns, _ := s.connsOf(sessionID, []uuid.UUID{participantID})
	for _, c := range conns {
		c.closeWith(websocket.StatusNormalClosure, code, protocol.Bye{Code: code})
	}
	// The participant may be a gallery observer at an edge node.
	msg := mustEncode(protocol.TypeRelayDisconnect, "", protocol.RelayDisconnect{ParticipantID: participantID.String(), Code: code})
	for _, c := range s.relaysOf(sessionID) {
		c.sendRaw(msg)
	}
}

// edgeRoom reports whether this node serves the room as a cascade edge.
func (s *Server) edgeRoom(sessionID uuid.UUID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sessionID]
	return r != nil && r.edge != nil
}

// relaysOf returns the edge nodes' relay connections to a room.
func (s *Server) relaysOf(sessionID uuid.UUID) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sessionID]
	if r == nil {
		return nil
	}
	var out []*conn
	for _, c := range r.conns {
		if c.relay {
			out = append(out, c)
		}
	}
	return out
}

// galleryHere counts the gallery observers a room has here.
func (s *Server) galleryHere(sessionID uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sessionID]
	if r == nil {
		return 0
	}
	n := 0
	for _, c := range r.conns {
		if !c.relay && c.id.Role == s.cfg.GalleryRole {
			n++
		}
	}
	return n
}

// DisconnectCredential closes every connection that credential
// authenticated (Identity.Credential), in every session: a staff member's
// signed-out browser or revoked API token, while their other devices stay.
// code is a protocol Bye code.
func (s *Server) DisconnectCredential(credential, code string) {
	if credential == "" {
		return
	}
	s.mu.Lock()
	var conns []*conn
	for _, r := range s.rooms {
		for _, c := range r.conns {
			if c.id.Credential == credential {
				conns = append(conns, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.StatusNormalClosure, code, protocol.Bye{Code: code})
	}
}

// CloseRoom closes every connection of a session with a Bye code and
// waits, until ctx ends, for every one of them to be torn down — its
// departure recorded by the session layer, its media closed. A node that is no longer a room's home ends
// the room's connections with protocol.ByeMoved: their clients reconnect,
// and reach the new home.
func (s *Server) CloseRoom(ctx context.Context, sessionID uuid.UUID, code string) error {
	s.mu.Lock()
	r := s.rooms[sessionID]
	var conns []*conn
	if r != nil {
		for _, c := range r.conns {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	for _, c := range conns {
		c.closeWith(websocket.StatusNormalClosure, code, protocol.Bye{Code: code})
	}
	gone := make(chan struct{})
	go func() { // ends with the last teardown, which closing has started
		r.present.Wait()
		close(gone)
	}()
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("signaling: closing room %s: %w", sessionID, ctx.Err())
	}
}

// HasRoom reports whether a session has connections here.
func (s *Server) HasRoom(sessionID uuid.UUID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[sessionID] != nil
}

// Load counts the rooms with connections here and their connections.
func (s *Server) Load() (rooms, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		rooms++
		conns += len(r.conns)
	}
	return rooms, conns
}

// connsOf returns the connections of the listed participants (nil = all).
func (s *Server) connsOf(sessionID uuid.UUID, to []uuid.UUID) ([]*conn, *sfu.Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sessionID]
	if r == nil {
		return nil, nil
	}
	var want map[uuid.UUID]bool
	if to != nil {
		want = make(map[uuid.UUID]bool, len(to))
		for _, id := range to {
			want[id] = true
		}
	}
	var out []*conn
	for _, c := range r.conns {
		if want == nil || want[c.id.ParticipantID] {
			out = append(out, c)
		}
	}
	return out, r.media
}

// join registers a connection in its session's room, creating the room.
// welcome runs under the server lock, before the connection becomes visible
// to others, so that the "joined" it queues precedes any event about them.
func (s *Server) join(c *conn, welcome func(others []*conn)) (*roomConns, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.sfu == nil {
		return nil, ErrClosed
	}
	r := s.rooms[c.id.SessionID]
	if r == nil {
		var err error
		if r, err = s.newRoomLocked(c.id.SessionID, c.edge); err != nil {
			return nil, err
		}
		s.rooms[r.id] = r
	}
	switch {
	case c.edge && r.edge == nil:
		// Placed here as an edge, but this node serves the room as its
		// home now (it moved): an observer like any other.
		c.edge = false
	case !c.edge && r.edge != nil:
		return nil, errEdgeRoom
	}
	if !c.relay && r.connectionsOf(c.id.ParticipantID) >= s.cfg.MaxConnectionsPerParticipant {
		return nil, errTooManyConnections
	}
	others := make([]*conn, 0, len(r.conns))
	for _, o := range r.conns {
		others = append(others, o)
	}
	c.room = r
	welcome(others)
	r.conns[c.connID] = c
	r.present.Add(1) // Done at the end of c's teardown
	return r, nil
}

// newRoomLocked creates a room: the home's, or an edge room fed by a relay
// to the home (which starts here). The server lock is held.
func (s *Server) newRoomLocked(id uuid.UUID, edge bool) (*roomConns, error) {
	cfg := sfu.RoomConfig{ID: id, Permissions: policyAdapter{session: id, p: s.policy}}
	var e *edgeRelay
	if edge {
		e = newEdgeRelay()
		cfg.Permissions, cfg.NoSpeaker = edgePolicy{e: e, base: cfg.Permissions}, true
	} else if s.cfg.Recorder != nil {
		cfg.Tapper = recorderAdapter{session: id, r: s.cfg.Recorder}
	}
	media, err := s.sfu.NewRoom(cfg)
	if err != nil {
		return nil, err
	}
	r := &roomConns{id: id, media: media, conns: make(map[uuid.UUID]*conn), edge: e,
		messages: map[uuid.UUID]*rate.Limiter{}, perSec: rate.Limit(s.cfg.RoomMessagesPerSecond), burst: s.cfg.RoomMessageBurst}
	if e != nil {
		var ctx context.Context
		ctx, e.cancel = context.WithCancel(s.ctx)
		go s.runRelay(ctx, r) // ends with the room (leave stops it) or the relay
	}
	return r, nil
}

// departure is what leave tells teardown: whether the connection was in
// its room, and who else is there.
type departure struct {
	was    bool
	others []*conn
}

// leave removes a connection; the last one out closes the room.
func (s *Server) leave(c *conn) (d departure) {
	s.mu.Lock()
	r := c.room
	if r == nil || r.conns[c.connID] != c {
		s.mu.Unlock()
		return departure{}
	}
	d.was = true
	delete(r.conns, c.connID)
	for _, o := range r.conns {
		d.others = append(d.others, o)
	}
	empty := len(r.conns) == 0
	if empty {
		delete(s.rooms, r.id)
	}
	s.mu.Unlock()
	if empty {
		if r.edge != nil {
			r.edge.stop() // first: the ghosts' readers end with the relay
		}
		r.media.Close()
	}
	return d
}

// iceServers returns the ICE servers for one connection of a participant:
// the embedded TURN server with fresh credentials, good until
// revokeTURN (at teardown) or their TTL.
func (s *Server) iceServers(host string, participant, connection uuid.UUID) []protocol.ICEServer {
	if s.turn == nil {
		return []protocol.ICEServer{}
	}
	if s.cfg.PublicHost != "" {
		host = s.cfg.PublicHost
	}
	user, pass, err := s.turn.Credentials(participant.String(), connection.String(), s.cfg.TURNCredentialTTL)
	if err != nil {
		s.log.Error("TURN credentials", "err", err)
		return []protocol.ICEServer{}
	}
	var urls []string
	port := func(a net.Addr) string {
		switch x := a.(type) {
		case *net.UDPAddr:
			return strconv.Itoa(x.Port)
		case *net.TCPAddr:
			return strconv.Itoa(x.Port)
		}
		return ""
	}
	if a := s.turn.UDPAddr(); a != nil {
		urls = append(urls, "turn:"+net.JoinHostPort(host, port(a))+"?transport=udp")
	}
	if a := s.turn.TCPAddr(); a != nil {
		urls = append(urls, "turn:"+net.JoinHostPort(host, port(a))+"?transport=tcp")
	}
	if a := s.turn.TLSAddr(); a != nil {
		urls = append(urls, "turns:"+net.JoinHostPort(host, port(a))+"?transport=tcp")
	}
	return []protocol.ICEServer{{URLs: urls, Username: user, Credential: pass}}
}

// revokeTURN ends a connection's TURN credential and closes its
// allocations: a participant who leaves, is removed or revoked, or whose
// session closes keeps no relay.
func (s *Server) revokeTURN(participant, connection uuid.UUID) {
	if s.turn != nil {
		s.turn.Revoke(participant.String(), connection.String())
	}
}
