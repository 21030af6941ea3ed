// Package signaling is Chamber's WebSocket signalling server: it
// authenticates participants, relays SDP and ICE candidates between them and
// the SFU (package signaling/sfu), announces tracks and peers, and hands the
// room messages it does not own (chat, present, …) to the session layer
// through Hooks. docs/signaling.md is the protocol reference.
package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// Identity is who a signalling connection belongs to.
type Identity struct {
	SessionID     uuid.UUID
	ParticipantID uuid.UUID
	Name          string
	Role          string // e.g. "judge", "party", "observer"
	// ExpiresAt is when the credential behind the connection expires; the
	// server then closes the connection with bye token_expired. Zero
	// means never.
	ExpiresAt time.Time
	// Credential names what authenticated the connection (e.g. a staff
	// member's browser sign-in), so that DisconnectCredential can close it
	// alone when that credential ends; "" for none.
	Credential string
}

// Source says what a track carries.
type Source = sfu.Source

// Track sources.
const (
	SourceCamera     = sfu.SourceCamera
	SourceMicrophone = sfu.SourceMicrophone
	SourceScreen     = sfu.SourceScreen
)

// Authenticator checks the token carried by the first (join) message.
// UpgradeRequest(ctx) is the WebSocket's upgrade request, for the client
// address a failure limiter counts against.
type Authenticator interface {
	Authenticate(ctx context.Context, sessionID uuid.UUID, token string) (Identity, error)
}

type upgradeKey struct{}

// UpgradeRequest returns the HTTP request that opened the WebSocket whose
// join is being authenticated (nil outside Authenticate). Only its
// RemoteAddr and headers may be read.
func UpgradeRequest(ctx context.Context) *http.Request {
	r, _ := ctx.Value(upgradeKey{}).(*http.Request)
	return r
}

// MediaPermissions is the permission hook: who may publish, who receives whom.
// It is consulted when a track is published, when a peer joins, and whenever
// the session layer calls Server.Notify (state changed) — never per packet.
type MediaPermissions interface {
	MayPublish(sessionID, participantID uuid.UUID, src Source) bool
	MayForward(sessionID, subscriber, publisher uuid.UUID, src Source) bool
}

// Hooks lets the session layer follow connections and own room messages.
type Hooks interface {
	// Connected is called after authentication, before "joined" is sent. An error refuses the join
	// (sent as an error message, then close). welcome is embedded verbatim in "joined" as "session".
	Connected(ctx context.Context, id Identity) (welcome json.RawMessage, err error)
	Disconnected(ctx context.Context, id Identity)
	// Message handles room-level messages the session layer owns: "chat" and "present"
	// (and any future ones). It checks permission and journals. A non-nil error is sent to the
	// sender as an error message; otherwise the server sends the returned message (nil = nothing)
	// as an event of the same type to the session's connections, as the Audience lets it.
	Message(ctx context.Context, from Identity, typ string, payload json.RawMessage) (out json.RawMessage, err error)
}

// WelcomeReader is implemented by Hooks that can say, without the side
// effects of Connected, what Connected would welcome a participant with
// now. The welcome is read before a connection joins its room and events
// reach it only after: a change in between (the participant admitted as
// they join) would be missed until the next event about them. With a
// WelcomeReader, the server reads the welcome again once the connection
// is in its room and sends it ("welcome") if it changed.
type WelcomeReader interface {
	Welcome(ctx context.Context, id Identity) (json.RawMessage, error)
}

// Event is a message about something that happened, on its way to one
// connection: a session event (Server.Notify), a room message (Hooks.Message),
// or one of the server's own announcements — a peer joined or left
// (peer_joined, peer_left and each entry of joined.peers), a track is
// published or unpublished, the active speaker changed.
type Event struct {
	Type string
	Data json.RawMessage
	// Subject is the participant the server's own announcements are about
	// (the peer, the track's publisher, the speaker). It is uuid.Nil for
	// session events and room messages, whose data say whom they concern.
	Subject uuid.UUID
}

// Audience decides what each connection learns. Every event bound for a
// connection passes through Filter, the one place that decides delivery:
// it returns the data to send — the event's own, or a redacted copy — and
// whether to send it at all. What is not an event is not filtered: the
// replies to the connection's own messages (joined, answer, pong, error),
// its media negotiation (offer, candidate, layer) and bye.
//
// Filter runs on the server's hot paths, some under the server's lock and
// the media room's: it must be quick, must not block, and must not call the
// Server.
type Audience interface {
	Filter(sessionID, receiver uuid.UUID, ev Event) (data json.RawMessage, deliver bool)
}

// Recorder is the recording hook (package recording implements it).
// MayRecord is consulted like MediaPermissions; while it is true for a track, a tap
// opened with OpenTap receives every RTP packet of that track (see sfu.Tap:
// a slow tap never blocks forwarding).
type Recorder interface {
	MayRecord(sessionID, participantID uuid.UUID, src Source) bool
	OpenTap(sessionID uuid.UUID, info sfu.TrackInfo) (sfu.Tap, error)
}

// SpeakerRecorder may be implemented by a Recorder that keeps who spoke
// when (see sfu.SpeakerRecorder); it must not block.
type SpeakerRecorder interface {
	ActiveSpeaker(sessionID, participantID uuid.UUID, trackID string)
}

// Errors from hooks are fault errors (package fault): their kind chooses
// the error code sent to the client, and their message is sent with it. A
// hook may also return a *protocol.Error to choose code and message freely.
var (
	ErrClosed = errors.New("signaling: server closed")  // the server is not running
	ErrConfig = errors.New("signaling: invalid config") // New refused the configuration
)

// unknownType is the error for a message type nobody handles.
func unknownType(typ string) error {
	return &fault.Error{Kind: fault.BadRequest, Code: protocol.CodeUnknownType, Message: fmt.Sprintf("unknown message type %q", typ)}
}

// errorFor maps an error to the message sent to the client. Errors from
// the session layer and the SFU carry their own text; anything else is an
// internal error whose details stay in the log.
func errorFor(err error) (code, message string, internal bool) {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code, pe.Message, false
	case errors.Is(err, sfu.ErrForbidden):
		return protocol.CodeForbidden, trimPrefix(err), false
	case errors.Is(err, sfu.ErrBadRequest):
		return protocol.CodeBadRequest, trimPrefix(err), false
	case errors.Is(err, sfu.ErrNotFound):
		return protocol.CodeNotFound, trimPrefix(err), false
	case errors.Is(err, sfu.ErrState), errors.Is(err, sfu.ErrClosed):
		return protocol.CodeConflict, trimPrefix(err), false
	case errors.Is(err, sfu.ErrBadSDP):
		return protocol.CodeBadSDP, trimPrefix(err), false
	case errors.Is(err, sfu.ErrBadCandidate):
		return protocol.CodeBadCandidate, trimPrefix(err), false
	case errors.Is(err, sfu.ErrTooLarge):
		return protocol.CodeTooLarge, trimPrefix(err), false
	}
	if fault.KindOf(err) == fault.Internal {
		return protocol.CodeInternal, "internal error", true
	}
	code, message, _ = fault.Describe(err)
	return code, message, false
}

func trimPrefix(err error) string {
	s := err.Error()
	for _, p := range []string{"signaling: ", "sfu: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// openAudience tells everyone everything: the server without a session layer.
type openAudience struct{}

func (openAudience) Filter(_, _ uuid.UUID, ev Event) (json.RawMessage, bool) { return ev.Data, true }

type openPolicy struct{}

func (openPolicy) MayPublish(uuid.UUID, uuid.UUID, Source) bool            { return true }
func (openPolicy) MayForward(uuid.UUID, uuid.UUID, uuid.UUID, Source) bool { return true }

// defaultHooks accepts everyone and broadcasts chat to the whole session.
type defaultHooks struct{}

func (defaultHooks) Connected(context.Context, Identity) (json.RawMessage, error) { return nil, nil }
func (defaultHooks) Disconnected(context.Context, Identity)                       {}

// MaxChatText is the longest chat text the default hooks accept, in bytes.
const MaxChatText = 4096

func (defaultHooks) Message(_ context.Context, from Identity, typ string, payload json.RawMessage) (json.RawMessage, error) {
	if typ != protocol.TypeChat {
		return nil, unknownType(typ)
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(payload, &in); err != nil || in.Text == "" {
		return nil, fault.Invalidf("text", "chat needs a non-empty text")
	}
	if len(in.Text) > MaxChatText || !utf8.ValidString(in.Text) {
		return nil, fault.Invalidf("text", "chat text must be valid UTF-8 of at most %d bytes", MaxChatText)
	}
	return json.Marshal(struct {
		From string `json:"from"`
		Name string `json:"name,omitempty"`
		Text string `json:"text"`
	}{from.ParticipantID.String(), from.Name, in.Text})
}

// policyAdapter binds the session-wide MediaPermissions to one room.
type policyAdapter struct {
	session uuid.UUID
	p       MediaPermissions
}

func (a policyAdapter) MayPublish(participant uuid.UUID, src sfu.Source) bool {
	return a.p.MayPublish(a.session, participant, src)
}

func (a policyAdapter) MayForward(sub, pub uuid.UUID, src sfu.Source) bool {
	return a.p.MayForward(a.session, sub, pub, src)
}

type recorderAdapter struct {
	session uuid.UUID
	r       Recorder
}

func (a recorderAdapter) MayRecord(participant uuid.UUID, src sfu.Source) bool {
	return a.r.MayRecord(a.session, participant, src)
}

func (a recorderAdapter) OpenTap(info sfu.TrackInfo) (sfu.Tap, error) {
	return a.r.OpenTap(a.session, info)
}

func (a recorderAdapter) ActiveSpeaker(participant uuid.UUID, trackID string) {
	if sr, ok := a.r.(SpeakerRecorder); ok {
		sr.ActiveSpeaker(a.session, participant, trackID)
	}
}

// authFailure is what a client is told when its join is not authenticated.
// Only expiry, revocation and an outage are told apart: an outage is
// retryable ("unavailable"), and every other failure reads the same so that
// tokens cannot be probed.
func authFailure(err error) (code, message string) {
	switch fault.KindOf(err) {
	case fault.Expired:
		return protocol.CodeTokenExpired, fault.Expired.Error()
	case fault.Revoked:
		return protocol.CodeTokenRevoked, fault.Revoked.Error()
	case fault.Unavailable, fault.Internal:
		return protocol.CodeUnavailable, "the server cannot check your link right now; retrying"
	case fault.RateLimited:
		return protocol.CodeRateLimited, "too many failed joins from this address; retry later"
	}
	return protocol.CodeUnauthenticated, "invalid token for this session"
}
