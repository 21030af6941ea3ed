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

// Policy is the permission hook: who may publish, who receives whom.
// It is consulted when a track is published, when a peer joins, and whenever
// the session layer calls Server.Notify (state changed) — never per packet.
type Policy interface {
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
	// sender as an error message; otherwise the server broadcasts the returned message
	// (nil = broadcast nothing) to the peers listed in to (nil = everyone in the session).
	Message(ctx context.Context, from Identity, typ string, payload json.RawMessage) (out json.RawMessage, to []uuid.UUID, err error)
}

// Recorder is the recording hook (package recording implements it).
// MayRecord is consulted like Policy; while it is true for a track, a tap
// opened with OpenTap receives every RTP packet of that track (see sfu.Tap:
// a slow tap never blocks forwarding).
type Recorder interface {
	MayRecord(sessionID, participantID uuid.UUID, src Source) bool
	OpenTap(sessionID uuid.UUID, info sfu.TrackInfo) (sfu.Tap, error)
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

type openPolicy struct{}

func (openPolicy) MayPublish(uuid.UUID, uuid.UUID, Source) bool            { return true }
func (openPolicy) MayForward(uuid.UUID, uuid.UUID, uuid.UUID, Source) bool { return true }

// defaultHooks accepts everyone and broadcasts chat to the whole session.
type defaultHooks struct{}

func (defaultHooks) Connected(context.Context, Identity) (json.RawMessage, error) { return nil, nil }
func (defaultHooks) Disconnected(context.Context, Identity)                       {}

// MaxChatText is the longest chat text the default hooks accept, in bytes.
const MaxChatText = 4096

func (defaultHooks) Message(_ context.Context, from Identity, typ string, payload json.RawMessage) (json.RawMessage, []uuid.UUID, error) {
	if typ != protocol.TypeChat {
		return nil, nil, unknownType(typ)
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(payload, &in); err != nil || in.Text == "" {
		return nil, nil, fault.Invalidf("text", "chat needs a non-empty text")
	}
	if len(in.Text) > MaxChatText || !utf8.ValidString(in.Text) {
		return nil, nil, fault.Invalidf("text", "chat text must be valid UTF-8 of at most %d bytes", MaxChatText)
	}
	out, err := json.Marshal(struct {
		From string `json:"from"`
		Name string `json:"name,omitempty"`
		Text string `json:"text"`
	}{from.ParticipantID.String(), from.Name, in.Text})
	return out, nil, err
}

// policyAdapter binds a session-wide Policy to one room.
type policyAdapter struct {
	session uuid.UUID
	p       Policy
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
