package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
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
	allowPrivateCandidates   autoBool
	maxConnections           int
}

// autoBool is a boolean flag whose default is decided from other flags
// when it is not given.
type autoBool struct {
	set, value bool
}

func (b *autoBool) String() string {
	if !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.value)
}

func (b *autoBool) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	b.set, b.value = true, x
	return nil
}

// IsBoolFlag lets "--allow-private-candidates" stand for "=true".
func (b *autoBool) IsBoolFlag() bool { return true }

// privateDeployment reports whether the public URL names this host or a
// private network (loopback, RFC 1918, ULA, link-local, "localhost"):
// participants then reach the server from private addresses.
func privateDeployment(publicURL string) bool {
	u, err := url.Parse(publicURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

type stringList []string

func (s *stringList) String() string { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func (m *mediaConfig) register(c *command) {
	c.fs.IntVar(&m.udpPort, "media-udp-port", sfu.DefaultUDPPort, "UDP port for all media (ICE UDP mux); 0 = any free port")
	c.fs.IntVar(&m.tcpPort, "media-tcp-port", sfu.DefaultTCPPort, "ICE-TCP port; 0 = any free port, -1 = off")
	c.fs.Var(&m.allowPrivateCandidates, "allow-private-candidates", "let the SFU check participants' loopback, private, link-local and CGNAT candidates (auto: when --public-url names localhost or a private address)")
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

// signalingConfig turns the flags into the signalling server's config;
// publicURL decides what "auto" flags mean.
func (m *mediaConfig) signalingConfig(publicURL string) signaling.Config {
	allowPrivate := m.allowPrivateCandidates.value
	if !m.allowPrivateCandidates.set {
		allowPrivate = privateDeployment(publicURL)
	}
	cfg := signaling.Config{
		AllowPrivateCandidates: &allowPrivate,
		MediaUDPAddr:           portAddr(m.udpPort),
		MediaTCPAddr:           portAddr(m.tcpPort),
		NATIP:                  m.natIP,
		PublicHost:             m.publicHost,
		TURNUDPAddr:            portAddr(m.turnUDPPort),
		TURNTCPAddr:            portAddr(m.turnTCPPort),
		TURNTLSCertFile:        m.turnTLSCert,
		TURNTLSKeyFile:         m.turnTLSKey,
		TURNRelayIP:            m.turnRelayIP,
		TURNCredentialTTL:      m.turnTTL,
		OriginPatterns:         m.origins,
		SubscriberBitrate:      uint64(max(m.subscriberBitrate, 0)),
		ICEFailedTimeout:       m.iceFailedTimeout,

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
// authentication, the permission policy, the room's hooks and the audience
// of every event.
type sessionHooks struct {
	svc       *sessions.Service
	recording *recording.Controller
	acts      *acts.Service
	log       *slog.Logger
	// failures counts failed joins per client address, with the REST
	// API's failed authentications.
	failures *api.FailureLimiter
	clients  api.ClientAddrs
}

var (
	_ signaling.Authenticator    = sessionHooks{}
	_ signaling.MediaPermissions = sessionHooks{}
	_ signaling.Hooks            = sessionHooks{}
	_ signaling.Audience         = sessionHooks{}
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
	return signaling.Identity{SessionID: sessionID, ParticipantID: p.ID, Name: p.Name, Role: string(p.Role), ExpiresAt: p.ExpiresAt}, nil
}

// Filter is the one place that decides who learns what in a session: every
// event bound for a connection passes here (signaling.Audience), and each
// kind of event has its audience below, in the terms of the session
// layer's visibility rules (sessions/policy.go) and the act's
// (acts.MaySeeCheck). docs/signaling.md lists the same table. An event no
// case names reaches nobody.
func (h sessionHooks) Filter(sid, receiver uuid.UUID, ev signaling.Event) (json.RawMessage, bool) {
	svc := h.svc
	switch ev.Type {
	// Tracks: the media policy (MayForward) chose what this receiver gets,
	// and the announcements follow it.
	case protocol.TypeTrackPublished, protocol.TypeTrackUnpublished:
		return ev.Data, true
	// Who is speaking: only to those who hear them.
	case protocol.TypeActiveSpeaker:
		return ev.Data, svc.Hears(sid, receiver, ev.Subject)
	// Who is connected: to those who may know of them.
	case protocol.TypePeerJoined, protocol.TypePeerLeft:
		return ev.Data, svc.Sees(sid, receiver, ev.Subject) != sessions.Unseen
	// A participant's record: whole, as the stage view, or not at all.
	case sessions.EventParticipantAdded, sessions.EventParticipantUpdated:
		return svc.ParticipantFor(sid, receiver, ev.Data)
	// The list of whom someone may know of, made for them alone.
	case sessions.EventParticipantsKnown:
		var k struct {
			For uuid.UUID `json:"for"`
		}
		return ev.Data, json.Unmarshal(ev.Data, &k) == nil && k.For == receiver
	// Removals and consultations: to those who follow the roster.
	case sessions.EventParticipantRemoved, sessions.EventConsultationOpened, sessions.EventConsultationClosed:
		return ev.Data, svc.SeesRoster(sid, receiver)
	// Chat and raised hands stay in their space; a consultation's are as
	// private as its media.
	case sessions.MessageChat, sessions.MessageStatus:
		var m struct {
			Space string `json:"space"`
		}
		return ev.Data, json.Unmarshal(ev.Data, &m) == nil && h.inSpace(sid, receiver, m.Space)
	// The presented page is the main room's.
	case sessions.MessagePresent:
		return ev.Data, h.inSpace(sid, receiver, sessions.SpaceMain)
	// The session, its recording and the act's state name nobody.
	case sessions.EventSessionUpdated, sessions.EventSessionClosed, recording.EventRecording, acts.EventActUpdated:
		return ev.Data, true
	// A principal's passport data: the notary, the officer, the principal.
	case acts.EventIdentityCheck:
		var c struct {
			ParticipantID uuid.UUID `json:"participant_id"`
		}
		st, ok := svc.StandingOf(sid, receiver)
		return ev.Data, ok && json.Unmarshal(ev.Data, &c) == nil && acts.MaySeeCheck(st.Role, receiver, c.ParticipantID)
	// Documents: to those who may see documents, outside the waiting room.
	case documents.EventChanged:
		st, ok := svc.StandingOf(sid, receiver)
		return ev.Data, ok && st.Space != sessions.SpaceWaiting && access.Allowed(st.Role, access.SeeDocuments)
	}
	h.log.Warn("an event without an audience reaches nobody", "type", ev.Type)
	return nil, false
}

// inSpace reports whether receiver is in space now.
func (h sessionHooks) inSpace(sid, receiver uuid.UUID, space string) bool {
	st, ok := h.svc.StandingOf(sid, receiver)
	return ok && space != "" && st.Space == space
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
	return h.welcome(ctx, id, w)
}

// Welcome is signaling.WelcomeReader: the welcome as Connected would send
// it now.
func (h sessionHooks) Welcome(ctx context.Context, id signaling.Identity) (json.RawMessage, error) {
	w, err := h.svc.Welcome(ctx, id.SessionID, id.ParticipantID)
	if err != nil {
		return nil, err
	}
	return h.welcome(ctx, id, w)
}

func (h sessionHooks) welcome(ctx context.Context, id signaling.Identity, w sessions.Welcome) (json.RawMessage, error) {
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

func (h sessionHooks) Message(ctx context.Context, from signaling.Identity, typ string, payload json.RawMessage) (json.RawMessage, error) {
	return h.svc.RoomMessage(ctx, from.SessionID, from.ParticipantID, typ, payload)
}

// recordingScope is the session layer as the recorder sees it.
type recordingScope struct{ svc *sessions.Service }

func (p recordingScope) MayRecord(sessionID, participantID uuid.UUID, source string) bool {
	return p.svc.MayRecord(sessionID, participantID, source)
}

// principalsOf lists a session's principals who have not been removed, as
// the act service needs them: the session layer owns participants.
func principalsOf(svc *sessions.Service) func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
	return func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
		ps, err := svc.ParticipantsOf(ctx, sid)
		if err != nil {
			return nil, err
		}
		var out []acts.Principal
		for _, p := range ps {
			if p.Role == access.Principal && !p.Revoked {
				out = append(out, acts.Principal{ID: p.ID, Name: p.Name})
			}
		}
		return out, nil
	}
}
