// Package protocol defines the JSON messages exchanged on Chamber's signalling
// WebSocket (GET /api/v1/sessions/{id}/signal). Both the server (package
// signaling) and the Go client (package internal/client) use these types, so
// the wire format is written down once. docs/signaling.md describes every
// message with an example.
//
// Every frame is one JSON object, an Envelope: {"type": "...", "id": "...", "data": {...}}.
package protocol

import (
	"encoding/json"
	"fmt"
)

// Version is the protocol version this package speaks. A client states the
// version it speaks in its join message; the server refuses any other.
const Version = 1

// Limits every conforming peer can rely on.
const (
	MaxMessageSize = 64 << 10 // bytes in one WebSocket message
	MaxSDPSize     = 48 << 10 // bytes in one SDP
	MaxCandidate   = 1 << 10  // bytes in one ICE candidate line
)

// Message types sent by the client.
const (
	TypeJoin      = "join"      // first message: Join
	TypeOffer     = "offer"     // SessionDescription on the publish PC (client → server) or subscribe PC (server → client)
	TypeAnswer    = "answer"    // SessionDescription answering an offer
	TypeCandidate = "candidate" // Candidate, both directions
	TypeQuality   = "quality"   // Quality: per-track layer preference or pause
	TypeLeave     = "leave"     // no data: the client is leaving
	TypePing      = "ping"      // any data, echoed in pong
	TypeChat      = "chat"      // room message owned by the session layer
	TypePresent   = "present"   // room message owned by the session layer
)

// Message types sent by the server.
const (
	TypeJoined           = "joined"            // Joined
	TypeWelcome          = "welcome"           // the session layer's welcome again, changed while the connection joined (as joined.session)
	TypeTrackPublished   = "track_published"   // TrackEvent
	TypeTrackUnpublished = "track_unpublished" // TrackEvent
	TypePeerJoined       = "peer_joined"       // PeerEvent: a signalling connection joined the room
	TypePeerLeft         = "peer_left"         // PeerEvent
	TypeActiveSpeaker    = "active_speaker"    // ActiveSpeaker
	TypeLayer            = "layer"             // Layer: the simulcast layer a subscriber now receives
	TypeError            = "error"             // Error
	TypePong             = "pong"              // echo of ping data
	TypeBye              = "bye"               // Bye: the server is closing the connection
	TypeRedirect         = "redirect"          // Redirect: join again at another URL (answers join, instead of joined)
)

// Message types between nodes only: the relay connection of an edge node
// to a room's home (docs/operations.md, "Cascade"). A client never
// receives them.
const (
	// TypeRelayDisconnect: the home ends a participant's connections
	// (RelayDisconnect); the edge ends those it serves.
	TypeRelayDisconnect = "relay_disconnect"
	// TypeRelayEvent: a session event at the home (RelayEvent), for the
	// edge to deliver to its observers as its own Audience decides, once
	// it has re-read the room's participants.
	TypeRelayEvent = "relay_event"
)

// Peer connection names. Each participant has two PeerConnections: "publish"
// carries its own media to the server (the client offers), "subscribe" carries
// everyone else's media to it (the server offers).
const (
	PCPublish   = "publish"
	PCSubscribe = "subscribe"
)

// Error codes carried in Error.Code.
const (
	CodeBadRequest         = "bad_request"         // malformed JSON or missing fields
	CodeInvalid            = "invalid"             // a field's value is wrong
	CodeUnknownType        = "unknown_type"        // no such message type
	CodeUnsupportedVersion = "unsupported_version" // join.version is not Version
	CodeUnauthenticated    = "unauthenticated"     // missing or wrong token
	CodeTokenExpired       = "token_expired"       // the link has expired
	CodeTokenRevoked       = "token_revoked"       // the link was revoked
	CodeForbidden          = "forbidden"           // the policy refuses the action
	CodeTooLarge           = "too_large"           // message or SDP over the limit
	CodeRateLimited        = "rate_limited"        // too many messages; this one was dropped
	CodeBadSDP             = "bad_sdp"             // SDP rejected
	CodeBadCandidate       = "bad_candidate"       // ICE candidate rejected
	CodeNotFound           = "not_found"           // unknown track or peer
	CodeConflict           = "conflict"            // the action is not possible in the current state
	CodeUnavailable        = "unavailable"         // a dependency is down: retry the join with back-off
	CodeICEFailed          = "ice_failed"          // a PeerConnection failed; the server is closing
	CodeInternal           = "internal"            // a server fault; details are in the server log
)

// Envelope is one frame on the WebSocket.
type Envelope struct {
	Type string `json:"type"`
	// ID is an optional client-chosen correlation string; the server echoes it
	// in replies (answer, error, pong) to that message.
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Encode builds an envelope around data, which must marshal to a JSON object
// (or be nil, or a json.RawMessage).
func Encode(typ, id string, data any) ([]byte, error) {
	env := Envelope{Type: typ, ID: id}
	switch d := data.(type) {
	case nil:
	case json.RawMessage:
		env.Data = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("protocol: encode %s: %w", typ, err)
		}
		env.Data = b
	}
	return json.Marshal(env)
}

// Join is the first client message.
type Join struct {
	Version int    `json:"version"`
	Token   string `json:"token"`
	// Redirect says the client follows a redirect message: an observer
	// may then be placed on another node (a cascade edge). Clients that
	// do not set it are always served by the node they reached.
	Redirect bool `json:"redirect,omitempty"`
}

// Redirect answers a join the server hands to another node: the client
// closes this connection and joins again, with the same token, at URL. It
// follows at most a few in a row.
type Redirect struct {
	URL string `json:"url"`
	// Path is URL's path and query, for a client that must stay on its
	// own origin (the browser, whose Content-Security-Policy allows
	// WebSockets to its origin only): joined there, whichever node answers
	// passes the connection on to the node URL names.
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason,omitempty"` // "gallery": the room's public gallery is served there
}

// RelayEvent is the data of relay_event: a session event as the home's
// session layer made it (Server.Notify), unfiltered — the edge node is one
// of the cluster's own, and filters for each observer.
type RelayEvent struct {
	To   []string        `json:"to,omitempty"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// RelayDisconnect is the data of relay_disconnect.
type RelayDisconnect struct {
	ParticipantID string `json:"participant_id"`
	Code          string `json:"code"`
}

// Participant describes who a connection belongs to.
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Role string `json:"role,omitempty"`
}

// ICEServer is a STUN or TURN server the client should use, in the shape of
// the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Joined answers a successful join.
type Joined struct {
	Version      int         `json:"version"`
	ConnectionID string      `json:"connection_id"`
	Participant  Participant `json:"participant"`
	// Session is the session layer's welcome object, embedded verbatim.
	Session    json.RawMessage `json:"session,omitempty"`
	ICEServers []ICEServer     `json:"ice_servers"`
	// Peers lists the other connections already in the room. The tracks this
	// connection will receive follow as track_published messages.
	Peers  []PeerEvent `json:"peers"`
	Limits Limits      `json:"limits"`
}

// Limits tells the client the server's limits.
type Limits struct {
	MaxMessageSize int     `json:"max_message_size"`
	MaxSDPSize     int     `json:"max_sdp_size"`
	MessagesPerSec float64 `json:"messages_per_second"`
	MessageBurst   int     `json:"message_burst"`
}

// MediaLine ties an m-line (by mid) of an SDP to a track. In a publish offer
// the client sets Mid and Source; in a subscribe offer the server sets every field.
type MediaLine struct {
	Mid           string `json:"mid"`
	Source        string `json:"source,omitempty"`
	TrackID       string `json:"track_id,omitempty"`
	ParticipantID string `json:"participant_id,omitempty"`
	Kind          string `json:"kind,omitempty"`
	// RID, in a subscribe offer to an edge node's relay only, names the
	// simulcast layer of TrackID (one of its Track.Layers) the m-line
	// carries: the relay receives each layer of a track on an m-line of
	// its own, all with the track's TrackID.
	RID string `json:"rid,omitempty"`
}

// SessionDescription is an offer or an answer for one of the two PeerConnections.
type SessionDescription struct {
	PC     string      `json:"pc"`
	SDP    string      `json:"sdp"`
	Tracks []MediaLine `json:"tracks,omitempty"`
}

// Candidate is one trickled ICE candidate (the browser's RTCIceCandidateInit).
// An empty Candidate string means the end of candidates.
type Candidate struct {
	PC               string  `json:"pc"`
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Track describes a published track.
type Track struct {
	ID            string   `json:"id"`
	ParticipantID string   `json:"participant_id"`
	ConnectionID  string   `json:"connection_id"`
	Source        string   `json:"source"`
	Kind          string   `json:"kind"`
	Codec         string   `json:"codec"`
	Layers        []string `json:"layers,omitempty"` // simulcast RIDs, lowest first
}

// TrackEvent is the data of track_published and track_unpublished.
type TrackEvent struct {
	Track Track `json:"track"`
}

// PeerEvent is the data of peer_joined and peer_left.
type PeerEvent struct {
	ConnectionID string      `json:"connection_id"`
	Participant  Participant `json:"participant"`
}

// Quality states a subscriber's preference for one received video track.
type Quality struct {
	TrackID string `json:"track_id"`
	// MaxLayer caps the simulcast layer (0 = lowest); nil means no cap.
	MaxLayer *int `json:"max_layer,omitempty"`
	// Paused stops the track entirely until a later quality message unpauses it.
	Paused bool `json:"paused,omitempty"`
}

// Layer tells a subscriber which simulcast layer it now receives of a track.
type Layer struct {
	TrackID string `json:"track_id"`
	Layer   int    `json:"layer"` // -1 while paused
	RID     string `json:"rid,omitempty"`
}

// ActiveSpeaker names the participant currently speaking loudest.
type ActiveSpeaker struct {
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	TrackID       string `json:"track_id"`
	Level         int    `json:"level"` // 0 (silence) … 127 (loudest), smoothed
}

// Error reports a failed message. Ref names the type of the offending message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

// Error implements error so a client can return a server error as a Go error.
func (e *Error) Error() string { return "signaling: " + e.Code + ": " + e.Message }

// Bye precedes the server closing the connection. Code says why, and
// whether the client may come back: only after ByeShutdown and ByeMoved
// does it reconnect; the others are final.
type Bye struct {
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"` // for people; may change
}

// Bye codes. The session layer passes its own reasons (removed,
// token_revoked, session_closed) through Disconnect; they are these codes.
const (
	ByeLeft          = "left"           // the client sent leave
	ByeRemoved       = "removed"        // the presiding role removed the participant
	ByeRevoked       = "token_revoked"  // the invitation was revoked
	ByeExpired       = "token_expired"  // the invitation expired while connected
	ByeSessionClosed = "session_closed" // the session was closed
	ByeShutdown      = "shutdown"       // the server is stopping; reconnect
	// ByeMoved: this node is no longer the room's home (it drains, or
	// lost the room's lease); reconnect now to the same URL, which
	// reaches the new home.
	ByeMoved = "moved"
)
