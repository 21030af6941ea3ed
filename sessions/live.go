package sessions

import (
	"encoding/json"
	"sync"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
)

// liveState mirrors, in memory, what the media server asks about on every
// forwarding decision: each participant's role, space and mutes, and who is
// connected. It is written through after each committed change, so the
// policy never waits on the database. One Chamber process owns a session's
// room; this cache is that process's view.
type liveState struct {
	mu       sync.RWMutex
	sessions map[uuid.UUID]*liveSession
}

type liveSession struct {
	kind         access.Kind
	participants map[uuid.UUID]*liveParticipant
	// presenting is the last "present" message of the main room, so that
	// someone who joins mid-presentation sees the page being shown.
	presenting    json.RawMessage
	presentingDoc uuid.UUID // the document of presenting (uuid.Nil: none)
}

type liveParticipant struct {
	name       string
	role       access.Role
	space      string
	audioMuted bool
	videoMuted bool
	interprets uuid.UUID
	whisper    bool
	revoked    bool
	conns      int
	// status is what the participant's client says of itself (a raised
	// hand, a microphone turned off), kept for those who join later.
	status Status
}

// loaded reports whether a session's participants are in memory.
func (l *liveState) loaded(id uuid.UUID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.sessions[id] != nil
}

// load installs a session's state read from the database, unless another
// load got there first. Every writer loads before it commits and upserts
// after, so the first load plus later upserts is never stale, while a slow
// load that read the database before someone's commit is discarded here.
func (l *liveState) load(id uuid.UUID, kind access.Kind, ps []Participant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[id] != nil {
		return
	}
	ls := &liveSession{kind: kind, participants: make(map[uuid.UUID]*liveParticipant, len(ps))}
	for _, p := range ps {
		ls.participants[p.ID] = toLive(p)
	}
	l.sessions[id] = ls
}

func toLive(p Participant) *liveParticipant {
	lp := &liveParticipant{
		name: p.Name, role: p.Role, space: p.Space, audioMuted: p.AudioMuted, videoMuted: p.VideoMuted,
		whisper: p.Whisper, revoked: p.Revoked,
	}
	if p.Interprets != nil {
		lp.interprets = *p.Interprets
	}
	return lp
}

// upsert records a participant's new state if its session is loaded.
func (l *liveState) upsert(p Participant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.sessions[p.SessionID]
	if ls == nil {
		return
	}
	lp := toLive(p)
	if old := ls.participants[p.ID]; old != nil {
		lp.conns = old.conns
		lp.status = old.status
		if lp.space != old.space {
			lp.status.Hand = false // a raised hand is for the room it was raised in
		}
	}
	ls.participants[p.ID] = lp
}

// connect counts a new connection of p, just read from the database, and
// reports whether it is the first. A participant this node has not heard
// of yet is added as read: with several nodes, one invited through
// another node can join the home before the home has refreshed (the
// cascade test's observer, invited on the edge, joined the home first and
// was never counted: no participant.joined, and the close did not end its
// connection). Only an absent participant is added; one already known
// keeps what writers and refreshes put there, which is never older.
func (l *liveState) connect(sessionID uuid.UUID, p Participant) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.sessions[sessionID]
	if ls == nil {
		return false
	}
	lp := ls.participants[p.ID]
	if lp == nil {
		lp = toLive(p)
		ls.participants[p.ID] = lp
	}
	lp.conns++
	return lp.conns == 1
}

// disconnect counts a closed connection and reports whether it was the last.
func (l *liveState) disconnect(sessionID, pid uuid.UUID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.sessions[sessionID]; ls != nil {
		if lp := ls.participants[pid]; lp != nil && lp.conns > 0 {
			lp.conns--
			return lp.conns == 0
		}
	}
	return false
}

// participant is what the live state knows of a participant, for when the
// database cannot be asked (someone leaving during an outage).
func (l *liveState) participant(sessionID, pid uuid.UUID) (Participant, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ls := l.sessions[sessionID]
	if ls == nil || ls.participants[pid] == nil {
		return Participant{}, false
	}
	lp := ls.participants[pid]
	p := Participant{ID: pid, SessionID: sessionID, Name: lp.name, Role: lp.role, Space: lp.space, Connected: lp.conns > 0,
		AudioMuted: lp.audioMuted, VideoMuted: lp.videoMuted, Whisper: lp.whisper, Revoked: lp.revoked}
	if lp.interprets != uuid.Nil {
		p.Interprets = &lp.interprets
	}
	return p, true
}

func (l *liveState) isConnected(sessionID, pid uuid.UUID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if ls := l.sessions[sessionID]; ls != nil {
		if lp := ls.participants[pid]; lp != nil {
			return lp.conns > 0
		}
	}
	return false
}

func (l *liveState) connectedIn(sessionID uuid.UUID) []uuid.UUID {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []uuid.UUID
	if ls := l.sessions[sessionID]; ls != nil {
		for id, lp := range ls.participants {
			if lp.conns > 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

// inSpace lists the participants currently in a space.
func (l *liveState) inSpace(sessionID uuid.UUID, space string) []uuid.UUID {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []uuid.UUID
	if ls := l.sessions[sessionID]; ls != nil {
		for id, lp := range ls.participants {
			if lp.space == space && !lp.revoked {
				out = append(out, id)
			}
		}
	}
	return out
}

func (l *liveState) forget(sessionID uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sessions, sessionID)
}

// setPresenting remembers the main room's presentation of doc (nil, uuid.Nil: none).
func (l *liveState) setPresenting(sessionID uuid.UUID, msg json.RawMessage, doc uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.sessions[sessionID]; ls != nil {
		ls.presenting = msg
		ls.presentingDoc = doc
	}
}

// presentedTo reports whether doc is being presented in the main room and
// pid is there to see it.
func (l *liveState) presentedTo(sessionID, pid, doc uuid.UUID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ls := l.sessions[sessionID]
	if ls == nil || doc == uuid.Nil || ls.presentingDoc != doc {
		return false
	}
	lp := ls.participants[pid]
	return lp != nil && !lp.revoked && lp.space == SpaceMain
}

func (l *liveState) presentingIn(sessionID uuid.UUID) json.RawMessage {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if ls := l.sessions[sessionID]; ls != nil {
		return ls.presenting
	}
	return nil
}

// setStatus records a participant's status; it reports whether the hand
// changed, and the participant's space.
func (l *liveState) setStatus(sessionID, pid uuid.UUID, st Status) (handChanged bool, space string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.sessions[sessionID]
	if ls == nil {
		return false, "", false
	}
	lp := ls.participants[pid]
	if lp == nil {
		return false, "", false
	}
	handChanged = lp.status.Hand != st.Hand
	lp.status = st
	return handChanged, lp.space, true
}

// statusesIn returns the statuses of the connected participants of a space
// that say anything (a raised hand or a microphone off).
func (l *liveState) statusesIn(sessionID uuid.UUID, space string) map[uuid.UUID]Status {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := map[uuid.UUID]Status{}
	if ls := l.sessions[sessionID]; ls != nil {
		for id, lp := range ls.participants {
			if lp.space == space && lp.conns > 0 && !lp.revoked && (lp.status.Hand || lp.status.MicOff) {
				out[id] = lp.status
			}
		}
	}
	return out
}

// view runs f with a session's participants under the read lock.
func (l *liveState) view(sessionID uuid.UUID, f func(ls *liveSession)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if ls := l.sessions[sessionID]; ls != nil {
		f(ls)
	}
}

// refresh replaces a session's participants with ps, as upsert does for
// each, and returns those whose space changed.
func (l *liveState) refresh(sessionID uuid.UUID, ps []Participant) []Participant {
	var moved []Participant
	for _, p := range ps {
		l.mu.RLock()
		var before string
		known := false
		if ls := l.sessions[sessionID]; ls != nil {
			if old := ls.participants[p.ID]; old != nil {
				before, known = old.space, true
			}
		}
		l.mu.RUnlock()
		l.upsert(p)
		if known && before != p.Space {
			moved = append(moved, p)
		}
	}
	return moved
}
