package sessions

// The events the session layer pushes to a session's connections
// (Notifier.Notify) and the room messages it owns (RoomMessage). Who
// receives each, and in which form, is decided in one place, the
// signalling server's Audience (cmd/chamber plugs in the rules of
// policy.go); docs/signaling.md lists every event with its payload and its
// audience.
const (
	// EventParticipantAdded carries a Participant: an invitation was
	// issued, or someone joined by a public link.
	EventParticipantAdded = "participant_added"
	// EventParticipantUpdated carries a Participant: connected or left,
	// admitted, moved, muted, interpreter link changed.
	EventParticipantUpdated = "participant_updated"
	// EventParticipantRemoved carries {"participant_id", "reason"}.
	EventParticipantRemoved = "participant_removed"
	// EventSessionUpdated carries a Session: the presiding role's first
	// join opened it.
	EventSessionUpdated = "session_updated"
	// EventSessionClosed carries a Session; every connection then ends.
	EventSessionClosed = "session_closed"
	// EventConsultationOpened carries a Consultation.
	EventConsultationOpened = "consultation_opened"
	// EventConsultationClosed carries {"consultation_id"}.
	EventConsultationClosed = "consultation_closed"
	// EventParticipantsKnown carries KnownParticipants: sent to a
	// participant whose space changed, the whole list of whom they may
	// know of now, replacing the one they had.
	EventParticipantsKnown = "participants"

	// MessageChat is the chat room message: {"from", "name", "role",
	// "text", "at", "space"}, delivered within the sender's space.
	MessageChat = "chat"
	// MessagePresent is the presenting room message: {"document_id",
	// "page", "by"}, delivered to the main room.
	MessagePresent = "present"
	// MessageStatus is a participant's status room message: {"participant_id",
	// "hand", "mic_off", "space"}, delivered within the sender's space.
	MessageStatus = "status"
)
