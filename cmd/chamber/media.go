package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
)

// mediaConfig holds the media server's flags.
type mediaConfig struct {
	udpPort, tcpPort         int
	natIP, publicHost        string
	turnUDPPort, turnTCPPort int
	turnTLSPort              int
	turnTLSCert, turnTLSKey  string
	turnSecret               string
	turnTTL                  time.Duration
	origins                  stringList
	turnRelayIP              string
	disableTURN              bool
	subscriberBitrate        int64
	iceFailedTimeout         time.Duration
	maxConnections           int
}

type stringList []string

func (s *stringList) String() string { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func (m *mediaConfig) register(c *command) {
	c.fs.IntVar(&m.udpPort, "media-udp-port", 7882, "UDP port for all media (ICE UDP mux); 0 = any free port")
	c.fs.IntVar(&m.tcpPort, "media-tcp-port", 7881, "ICE-TCP port; 0 = any free port, -1 = off")
	c.fs.StringVar(&m.natIP, "nat-ip", "", "public IP address in front of a 1:1 NAT")
	c.fs.StringVar(&m.publicHost, "public-host", "", "host name put in TURN URLs (default: the host clients used)")
	c.fs.IntVar(&m.turnUDPPort, "turn-udp-port", 3478, "embedded TURN server UDP port; -1 = off")
	c.fs.IntVar(&m.turnTCPPort, "turn-tcp-port", 3478, "embedded TURN server TCP port; -1 = off")
	c.fs.IntVar(&m.turnTLSPort, "turn-tls-port", 5349, "embedded TURN server TLS port (443 in production); used with --turn-tls-cert")
	c.fs.StringVar(&m.turnTLSCert, "turn-tls-cert", "", "TURN over TLS certificate (PEM)")
	c.fs.StringVar(&m.turnTLSKey, "turn-tls-key", "", "TURN over TLS private key (PEM)")
	c.fs.StringVar(&m.turnSecret, "turn-secret", "", "secret signing TURN credentials (default: random at each start)")
	c.fs.DurationVar(&m.turnTTL, "turn-credential-ttl", 8*time.Hour, "lifetime of the TURN credentials handed out at join")
	c.fs.StringVar(&m.turnRelayIP, "turn-relay-ip", "", "address of relayed candidates (default --nat-ip, else the default route's)")
	c.fs.Var(&m.origins, "allowed-origin", "extra browser origin allowed to open the signalling WebSocket (repeatable)")
	c.fs.Int64Var(&m.subscriberBitrate, "subscriber-bitrate", 0, "bandwidth assumed for a subscriber until it reports one, bit/s (0 = built-in default)")
	c.fs.DurationVar(&m.iceFailedTimeout, "ice-failed-timeout", 0, "how long a vanished participant keeps its media resources (0 = built-in default)")
	c.fs.IntVar(&m.maxConnections, "max-connections-per-participant", signaling.DefaultMaxConnectionsPerParticipant, "simultaneous signalling connections of one participant (tabs, devices)")
}

func portAddr(port int) string {
	if port < 0 {
		return ""
	}
	return net.JoinHostPort("", strconv.Itoa(port))
}

// signalingConfig turns the flags into the signalling server's config.
func (m *mediaConfig) signalingConfig() signaling.Config {
	cfg := signaling.Config{
		MediaUDPAddr:      portAddr(m.udpPort),
		MediaTCPAddr:      portAddr(m.tcpPort),
		NATIP:             m.natIP,
		PublicHost:        m.publicHost,
		TURNUDPAddr:       portAddr(m.turnUDPPort),
		TURNTCPAddr:       portAddr(m.turnTCPPort),
		TURNTLSCertFile:   m.turnTLSCert,
		TURNTLSKeyFile:    m.turnTLSKey,
		TURNRelayIP:       m.turnRelayIP,
		TURNCredentialTTL: m.turnTTL,
		OriginPatterns:    m.origins,
		SubscriberBitrate: uint64(max(m.subscriberBitrate, 0)),
		ICEFailedTimeout:  m.iceFailedTimeout,

		MaxConnectionsPerParticipant: m.maxConnections,
	}
	if m.tcpPort < 0 {
		cfg.MediaTCPAddr = "off"
	}
	if m.turnTLSCert != "" {
		cfg.TURNTLSAddr = portAddr(m.turnTLSPort)
	}
	if m.turnSecret != "" {
		cfg.TURNSecret = []byte(m.turnSecret)
	}
	return cfg
}

// sessionHooks is the session layer as the signalling server sees it:
// authentication, the permission policy and the room's hooks.
type sessionHooks struct {
	svc       *sessions.Service
	recording *recording.Controller
	acts      *acts.Service
	// failures counts failed joins per client address, with the REST
	// API's failed authentications.
	failures *api.FailureLimiter
	clients  api.ClientAddrs
}

var (
	_ signaling.Authenticator = sessionHooks{}
	_ signaling.Policy        = sessionHooks{}
	_ signaling.Hooks         = sessionHooks{}
)

// Authenticate checks a join's invitation token or staff join ticket; its
// failures spend the client address's budget of failed authentications.
func (h sessionHooks) Authenticate(ctx context.Context, sessionID uuid.UUID, token string) (signaling.Identity, error) {
	addr := "unknown"
	if r := signaling.UpgradeRequest(ctx); r != nil {
		addr = h.clients.Of(r)
	}
	var id signaling.Identity
	err := h.failures.Guard(addr, "failed joins", func() error {
		var err error
		id, err = h.join(ctx, sessionID, token)
		return err
	})
	return id, err
}

func (h sessionHooks) join(ctx context.Context, sessionID uuid.UUID, token string) (signaling.Identity, error) {
	if sessions.TokenKind(token) == "join_ticket" {
		p, credential, err := h.svc.JoinTicket(ctx, sessionID, token)
		if err != nil {
			return signaling.Identity{}, err
		}
		return signaling.Identity{SessionID: sessionID, ParticipantID: p.ID, Name: p.Name, Role: string(p.Role), Credential: credential}, nil
	}
	p, err := h.svc.JoinToken(ctx, sessionID, token)
	if err != nil {
		return signaling.Identity{}, err
	}
	return signaling.Identity{SessionID: sessionID, ParticipantID: p.ID, Name: p.Name, Role: string(p.Role)}, nil
}

func (h sessionHooks) MayPublish(sessionID, participantID uuid.UUID, src signaling.Source) bool {
	return h.svc.MayPublish(sessionID, participantID, string(src))
}

func (h sessionHooks) MayForward(sessionID, sub, pub uuid.UUID, src signaling.Source) bool {
	return h.svc.MayForward(sessionID, sub, pub, string(src))
}

func (h sessionHooks) Connected(ctx context.Context, id signaling.Identity) (json.RawMessage, error) {
	w, err := h.svc.Connected(ctx, id.SessionID, id.ParticipantID)
	if err != nil {
		return nil, err
	}
	// A participant who joins while recording runs is told at once.
	welcome := struct {
		sessions.Welcome
		Recording recording.State `json:"recording"`
		Act       *acts.Act       `json:"act,omitempty"`
	}{Welcome: w, Recording: h.recording.State(id.SessionID)}
	if w.Session.Kind == access.Notarisation {
		if act, err := h.acts.Get(ctx, id.SessionID); err == nil {
			welcome.Act = &act
		}
	}
	return json.Marshal(welcome)
}

func (h sessionHooks) Disconnected(ctx context.Context, id signaling.Identity) {
	h.svc.Disconnected(ctx, id.SessionID, id.ParticipantID)
}

func (h sessionHooks) Message(ctx context.Context, from signaling.Identity, typ string, payload json.RawMessage) (json.RawMessage, []uuid.UUID, error) {
	out, to, err := h.svc.RoomMessage(ctx, from.SessionID, from.ParticipantID, typ, payload)
	if err != nil {
		return nil, nil, err
	}
	return out, to, nil
}

// recordingPolicy is the session layer as the recorder sees it.
type recordingPolicy struct{ svc *sessions.Service }

func (p recordingPolicy) MayRecord(sessionID, participantID uuid.UUID, source string) bool {
	return p.svc.MayRecord(sessionID, participantID, source)
}

// notifier adapts the signalling server's Notify for the HTTP floor.
func notifier(sig *signaling.Server) func(uuid.UUID, string, any) {
	return func(sessionID uuid.UUID, typ string, payload any) {
		b, err := json.Marshal(payload)
		if err != nil {
			return
		}
		sig.Notify(sessionID, nil, typ, b)
	}
}
