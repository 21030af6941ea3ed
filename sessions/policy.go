package sessions

import (
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
)

// Media sources, as the signalling layer names them.
const (
	SourceCamera     = "camera"
	SourceMicrophone = "microphone"
	SourceScreen     = "screen"
)

// MayPublish reports whether a participant may publish a track of source.
// Observers never publish; a removed participant publishes nothing.
func (s *Service) MayPublish(sessionID, participantID uuid.UUID, source string) bool {
	ok := false
	s.live.view(sessionID, func(ls *liveSession) {
		p := ls.participants[participantID]
		ok = p != nil && !p.revoked && access.Allowed(p.role, access.Publish) && validSource(source)
	})
	return ok
}

func validSource(s string) bool {
	return s == SourceCamera || s == SourceMicrophone || s == SourceScreen
}

// MayForward reports whether media of source from pub reaches sub. This is
// where the room's rules live:
//   - nobody in the waiting room sees or hears anyone, nor is seen or
//     heard (witness sequestration);
//   - media stays within a space: the main room, or one consultation room,
//     whose media reaches nobody outside it;
//   - a server-enforced mute stops a participant's audio (microphone) or
//     video (camera and screen) whatever their client does — in the main
//     room, where it was set: a consultation room is private, and counsel
//     must hear the party they consult (the mute holds again on return);
//   - an interpreter in whisper mode is heard only by the participant they
//     interpret for, while staying visible to everyone in the space.
func (s *Service) MayForward(sessionID, sub, pub uuid.UUID, source string) bool {
	if sub == pub {
		return false
	}
	ok := false
	s.live.view(sessionID, func(ls *liveSession) {
		ps, pp := ls.participants[sub], ls.participants[pub]
		if ps == nil || pp == nil || ps.revoked || pp.revoked {
			return
		}
		if ps.space == SpaceWaiting || pp.space == SpaceWaiting || ps.space != pp.space {
			return
		}
		if !access.Allowed(pp.role, access.Publish) {
			return
		}
		enforced := pp.space == SpaceMain
		switch source {
		case SourceMicrophone:
			if enforced && pp.audioMuted {
				return
			}
			if pp.role == access.Interpreter && pp.whisper && pp.interprets != sub {
				return
			}
		case SourceCamera, SourceScreen:
			if enforced && pp.videoMuted {
				return
			}
		default:
			return
		}
		ok = true
	})
	return ok
}

// MayRecord reports whether a participant's media belongs in the session
// recording: only the main room is recorded — never the waiting room, a
// consultation room, or an interpreter's whisper.
func (s *Service) MayRecord(sessionID, pub uuid.UUID, source string) bool {
	ok := false
	s.live.view(sessionID, func(ls *liveSession) {
		p := ls.participants[pub]
		if p == nil || p.revoked || p.space != SpaceMain || !access.Allowed(p.role, access.Publish) {
			return
		}
		switch source {
		case SourceMicrophone:
			ok = !p.audioMuted && !(p.role == access.Interpreter && p.whisper)
		case SourceCamera, SourceScreen:
			ok = !p.videoMuted
		}
	})
	return ok
}
