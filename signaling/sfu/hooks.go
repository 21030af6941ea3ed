package sfu

import (
	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Source says what a track carries.
type Source string

// Track sources.
const (
	SourceCamera     Source = "camera"
	SourceMicrophone Source = "microphone"
	SourceScreen     Source = "screen"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool {
	return s == SourceCamera || s == SourceMicrophone || s == SourceScreen
}

// Permissions decides, per room, who may publish and who receives whom. It is
// consulted when a track is published, when a peer joins and when
// Room.Reconcile is called, never per packet. Implementations must be quick
// and must not call back into the Room.
type Permissions interface {
	MayPublish(participant uuid.UUID, src Source) bool
	MayForward(subscriber, publisher uuid.UUID, src Source) bool
}

// openPolicy lets everyone publish and receive everyone.
type openPolicy struct{}

func (openPolicy) MayPublish(uuid.UUID, Source) bool            { return true }
func (openPolicy) MayForward(uuid.UUID, uuid.UUID, Source) bool { return true }

// TrackInfo describes a published track to a Tapper.
type TrackInfo struct {
	TrackID         string
	ParticipantID   uuid.UUID
	ParticipantName string
	ConnectionID    uuid.UUID
	// StreamID is the media stream the track belongs to as subscribers see
	// it (msid): all tracks of one publisher connection share it, the
	// screen included; a recorder wanting the screen in a file of its own
	// splits by Source.
	StreamID string
	Source   Source
	Kind     webrtc.RTPCodecType
	Codec    webrtc.RTPCodecParameters
	// RID is the simulcast layer the tap receives ("" without simulcast).
	// A tap always receives the highest layer the publisher sends.
	RID string
	// RequestKeyframe asks the publisher for a keyframe of that layer
	// (rate-limited like subscribers' requests, never blocks); nil for
	// audio. A recorder calls it after loss; the SFU also asks for one
	// when the tap opens, so that a file starts playable.
	RequestKeyframe func()
}

// Tap receives every RTP packet of one track, in the order the SFU received
// them (repairs by retransmission included, duplicates removed), with the
// publisher's SSRC, sequence numbers and timestamps. WriteRTP is called from
// the tap's own goroutine, never from the forwarding path: packets are queued
// for it (up to TapQueue packets) and dropped when the queue is full, so a
// slow tap never delays forwarding. The packet and its payload are only valid
// during the call.
type Tap interface {
	WriteRTP(p *rtp.Packet) error
	// Close is called once, after the last WriteRTP, when the track ends or
	// recording stops for it.
	Close() error
}

// TapLossReporter may be implemented by a Tap that wants to know about
// packets dropped because it was too slow (so a recording can mark the gap).
type TapLossReporter interface {
	TapLost(packets int)
}

// SenderReport is what a publisher's RTCP sender report (RFC 3550 §6.4.1)
// says about the stream a tap receives: RTPTime and NTPTime are the same
// instant, read from the stream's RTP clock and from the publisher's wall
// clock (64-bit NTP format). All of one publisher's streams share that
// wall clock, so a recorder maps each track's RTP timestamps through its
// latest report and puts a person's audio and video on one timeline.
type SenderReport struct {
	SSRC    uint32
	NTPTime uint64
	RTPTime uint32
}

// TapSenderReporter may be implemented by a Tap that wants the publisher's
// sender reports for the stream it receives. A report is delivered on the
// tap's goroutine, in order with the packets: before the first packet
// that follows its arrival. When a tap opens, the stream's latest report
// (if one came) is delivered before its first packet, so a recording that
// starts mid-stream need not wait for the next one (browsers send audio
// reports only every few seconds).
type TapSenderReporter interface {
	SenderReport(sr SenderReport)
}

// TapQueue is how many packets may wait for a slow tap before packets are dropped.
const TapQueue = 1024

// Tapper attaches taps to tracks. MayRecord is consulted like Permissions: when a
// track is published and on Room.Reconcile. When it turns true for a track,
// OpenTap is called (from a goroutine of its own) and the returned Tap starts
// receiving packets; when it turns false, or the track ends, the tap is closed.
type Tapper interface {
	MayRecord(participant uuid.UUID, src Source) bool
	OpenTap(info TrackInfo) (Tap, error)
}

// SpeakerRecorder may be implemented by a Tapper that keeps who spoke
// when: it is told each change of the room's active speaker (the same
// change the room is sent as active_speaker), naming the speaker's audio
// track so that a recorder can tell a speaker it records from one it does
// not. It is called from the room's speaker detector and must not block.
type SpeakerRecorder interface {
	ActiveSpeaker(participant uuid.UUID, trackID string)
}
