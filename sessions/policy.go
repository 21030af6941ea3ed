package sessions

import (
	"encoding/json"

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
		// Nobody publishes from the waiting room: its media would reach
		// nobody (MayForward) and only cost the server; a client
		// publishes once admitted. Tracks published before being sent
		// back to wait stay, unforwarded, until the participant returns.
		ok = p != nil && !p.revoked && p.space != SpaceWaiting && access.Allowed(p.role, access.Publish) && validSource(source)
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
		ps, pp := ls.member(sub), ls.participants[pub]
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

// Gallery is who a node relaying a room to its public gallery (a cascade
// edge node, docs/operations.md) is to the policy: an observer in the main
// room. It receives, and learns, exactly what an observer there would; it
// is never stored, listed or journalled, and never publishes.
var Gallery = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:chamber:gallery"))

// galleryMember is Gallery's standing in every room.
var galleryMember = &liveParticipant{role: access.Observer, space: SpaceMain, conns: 1}

// member is a receiver of the policy: a participant of the session, or
// Gallery; nil for anyone else.
func (ls *liveSession) member(id uuid.UUID) *liveParticipant {
	if p := ls.participants[id]; p != nil {
		return p
	}
	if id == Gallery {
		return galleryMember
	}
	return nil
}

// Sight is how much one participant may know of another.
type Sight int

// What a participant may know of another, from nothing to everything.
const (
	// Unseen: nothing, not even that they take part.
	Unseen Sight = iota
	// OnStage: who they are — id, name and role (StageView) — because
	// they are on stage: in the main room, connected, and publishing (or
	// free to), so their face and voice reach everyone there anyway.
	OnStage
	// Seen: their whole record, as GET …/participants shows it.
	Seen
)

// presence is what the visibility rules look at of a participant: the
// live state's view (liveParticipant) or a stored record's (Participant).
type presence struct {
	role      access.Role
	space     string
	revoked   bool
	connected bool
}

func (lp *liveParticipant) presence() *presence {
	if lp == nil {
		return nil
	}
	return &presence{role: lp.role, space: lp.space, revoked: lp.revoked, connected: lp.conns > 0}
}

func (p Participant) presence() *presence {
	return &presence{role: p.Role, space: p.Space, revoked: p.Revoked, connected: p.Connected}
}

// onStage reports whether p is on stage: seen and heard by everyone in
// the main room.
func (p *presence) onStage() bool {
	return p != nil && !p.revoked && p.connected && p.space == SpaceMain && access.Allowed(p.role, access.Publish)
}

// sees is the one rule of what a receiver may know of a subject (nil: not
// in the session); self says they are the same participant.
//   - A removed participant learns nothing more.
//   - Everyone knows themselves.
//   - Nobody in the waiting room knows anyone else: a sequestered witness
//     learns neither who is in the room nor who else waits.
//   - The roles that may see participants know everyone.
//   - Anyone else in the main room — an observer — knows who is on stage,
//     and no more of them than their tile shows: never who else watches,
//     waits, or consults, nor anyone's mutes, links or invitation.
func sees(receiver, subject *presence, self bool) Sight {
	switch {
	case receiver == nil || receiver.revoked:
		return Unseen
	case self:
		return Seen
	case receiver.space == SpaceWaiting:
		return Unseen
	case access.Allowed(receiver.role, access.SeeParticipant):
		return Seen
	case receiver.space == SpaceMain && subject.onStage():
		return OnStage
	}
	return Unseen
}

// Sees returns how much receiver may know of subject now.
func (s *Service) Sees(sessionID, receiver, subject uuid.UUID) Sight {
	sight := Unseen
	s.live.view(sessionID, func(ls *liveSession) {
		sight = sees(ls.member(receiver).presence(), ls.participants[subject].presence(), receiver == subject)
	})
	return sight
}

// SeesRoster reports whether receiver may follow the room's roster now:
// who is invited, who is where, who consults with whom.
func (s *Service) SeesRoster(sessionID, receiver uuid.UUID) bool {
	ok := false
	s.live.view(sessionID, func(ls *liveSession) {
		r := ls.member(receiver)
		ok = r != nil && !r.revoked && r.space != SpaceWaiting && access.Allowed(r.role, access.SeeParticipant)
	})
	return ok
}

// Standing is where a participant is in a session's room now.
type Standing struct {
	Role  access.Role
	Space string
}

// StandingOf returns a participant's standing; false for someone not, or
// no longer, in the session.
func (s *Service) StandingOf(sessionID, id uuid.UUID) (Standing, bool) {
	var (
		st Standing
		ok bool
	)
	s.live.view(sessionID, func(ls *liveSession) {
		if p := ls.member(id); p != nil && !p.revoked {
			st, ok = Standing{Role: p.role, Space: p.space}, true
		}
	})
	return st, ok
}

// Hears reports whether listener hears speaker now (or is them): only then
// may they learn that speaker is the active speaker.
func (s *Service) Hears(sessionID, listener, speaker uuid.UUID) bool {
	if listener == speaker {
		_, ok := s.StandingOf(sessionID, listener)
		return ok
	}
	return s.MayForward(sessionID, listener, speaker, SourceMicrophone)
}

// StageView is what an observer knows of someone on stage.
type StageView struct {
	ID        uuid.UUID   `json:"id"`
	Name      string      `json:"name"`
	Role      access.Role `json:"role"`
	Space     string      `json:"space"`
	Connected bool        `json:"connected"`
}

// viewOf is p as a receiver with that sight knows them; false: not at all.
func viewOf(p Participant, sight Sight) (json.RawMessage, bool) {
	switch sight {
	case Seen:
		return mustJSON(p), true
	case OnStage:
		return mustJSON(StageView{ID: p.ID, Name: p.Name, Role: p.Role, Space: p.Space, Connected: p.Connected}), true
	}
	return nil, false
}

// ParticipantFor is what receiver may learn of a participant record, the
// data of participant_added and participant_updated: all of it, the stage
// view, or nothing.
func (s *Service) ParticipantFor(sessionID, receiver uuid.UUID, data json.RawMessage) (json.RawMessage, bool) {
	var p Participant
	if err := json.Unmarshal(data, &p); err != nil || p.ID == uuid.Nil {
		return nil, false
	}
	if sight := s.Sees(sessionID, receiver, p.ID); sight != Seen {
		return viewOf(p, sight)
	}
	return data, true
}

// knownTo lists the participants of all that receiver may know of now, as
// they may know them: the welcome's list.
func (s *Service) knownTo(sessionID, receiver uuid.UUID, all []Participant) []json.RawMessage {
	var out []json.RawMessage
	s.live.view(sessionID, func(ls *liveSession) {
		r := ls.participants[receiver].presence()
		for _, p := range all {
			if v, ok := viewOf(p, sees(r, ls.participants[p.ID].presence(), p.ID == receiver)); ok {
				out = append(out, v)
			}
		}
	})
	return out
}
