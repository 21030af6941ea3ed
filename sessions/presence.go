package sessions

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// This file is the session layer as the signalling server sees it: who a
// connection belongs to, what happens when they arrive and leave, and the
// room messages (chat, presenting a document) the session layer owns.

// JoinToken authenticates the first signalling message: an invitation token
// for this very session, not expired, not revoked, session not closed.
func (s *Service) JoinToken(ctx context.Context, sessionID uuid.UUID, token string) (Participant, error) {
	p, err := s.authenticateInvitation(ctx, token)
	if err != nil {
		return Participant{}, err
	}
	if p.SessionID != sessionID {
		return Participant{}, fmt.Errorf("token is for another session: %w", fault.Unauthenticated)
	}
	sess, err := s.Get(ctx, sessionID)
	if err != nil {
		return Participant{}, err
	}
	if err := requireNotClosed(sess); err != nil {
		return Participant{}, err
	}
	return p, nil
}

// Welcome is what a participant learns on joining, embedded in the
// signalling "joined" message.
type Welcome struct {
	Session Session     `json:"session"`
	You     Participant `json:"you"`
	// Participants are the others as the participant may know them (see
	// Sight): whole records, the on-stage view, or not at all.
	Participants []json.RawMessage `json:"participants,omitempty"`
	Permissions  []string          `json:"permissions"`
	// Presenting is the page being shown in the main room, if any, for
	// someone in the main room.
	Presenting json.RawMessage `json:"presenting,omitempty"`
	// Statuses are the raised hands and microphones turned off of the
	// people in the joiner's space (status room messages sent before).
	Statuses map[uuid.UUID]Status `json:"statuses,omitempty"`
}

// Status is what a participant's client says of itself to its space: a
// raised hand (asking to speak) and whether its microphone is off. The
// server enforces nothing by it; mutes that hold are the moderator's.
type Status struct {
	Hand   bool `json:"hand"`
	MicOff bool `json:"mic_off"`
}

// Connected records a participant's connection: the first connection is
// journalled as a join, and the presiding role's first join opens the
// session.
func (s *Service) Connected(ctx context.Context, sessionID, participantID uuid.UUID) (Welcome, error) {
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return Welcome{}, err
	}
	p, err := s.participant(ctx, sessionID, participantID)
	if err != nil {
		return Welcome{}, err
	}
	if p.Revoked {
		return Welcome{}, fault.Revoked
	}
	first := s.live.connect(sessionID, p)
	opened := false
	if first {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			sess, err := s.get(ctx, tx, sessionID)
			if err != nil {
				return err
			}
			if err := requireNotClosed(sess); err != nil {
				return err
			}
			if _, err := s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: "participant:" + participantID.String(),
				Action: "participant.joined", Details: map[string]any{"participant_id": participantID, "name": p.Name, "role": p.Role, "space": p.Space}}); err != nil {
				return err
			}
			if sess.State == Scheduled && p.Role.Presides() {
				if _, err := tx.ExecContext(ctx, `UPDATE sessions SET state = $1, opened_at = $2 WHERE id = $3`,
					string(Open), database.Micros(s.now()), sessionID.String()); err != nil {
					return err
				}
				opened = true
				_, err = s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sessionID, Actor: "participant:" + participantID.String(), Action: "session.opened"})
				return err
			}
			return nil
		})
		if err != nil {
			s.live.disconnect(sessionID, participantID)
			return Welcome{}, err
		}
	}
	w, err := s.welcome(ctx, p)
	if err != nil {
		return Welcome{}, err
	}
	n := s.notify()
	if opened {
		n.Notify(sessionID, nil, EventSessionUpdated, mustJSON(w.Session))
	}
	if first {
		n.Notify(sessionID, nil, EventParticipantUpdated, mustJSON(w.You))
	}
	return w, nil
}

// Welcome is what Connected welcomes a connected participant with, read
// again without its side effects: the signalling server compares it with
// the welcome it sent, to catch up with a change made while the
// connection was joining its room, before events reached it.
func (s *Service) Welcome(ctx context.Context, sessionID, participantID uuid.UUID) (Welcome, error) {
	p, err := s.participant(ctx, sessionID, participantID)
	if err != nil {
		return Welcome{}, err
	}
	return s.welcome(ctx, p)
}

// welcome reads the session and the participants as p, connected, may
// know them.
func (s *Service) welcome(ctx context.Context, p Participant) (Welcome, error) {
	sess, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return Welcome{}, err
	}
	p.Connected = true
	w := Welcome{Session: sess, You: p, Permissions: permissions(p.Role), Statuses: s.live.statusesIn(p.SessionID, p.Space)}
	if p.Space == SpaceMain {
		w.Presenting = s.live.presentingIn(p.SessionID)
	}
	all, err := s.participants(ctx, p.SessionID)
	if err != nil {
		return Welcome{}, err
	}
	w.Participants = s.knownTo(p.SessionID, p.ID, all)
	return w, nil
}

func permissions(r access.Role) []string {
	var out []string
	for _, a := range access.Actions {
		if access.Allowed(r, a) {
			out = append(out, string(a))
		}
	}
	return out
}

// Disconnected records that a connection ended; the last one is
// journalled as leaving — unless the session has closed meanwhile: its
// session.closed entry names whom the close disconnected, and nothing is
// journalled after it.
func (s *Service) Disconnected(ctx context.Context, sessionID, participantID uuid.UUID) {
	if !s.live.disconnect(sessionID, participantID) {
		return
	}
	p, err := s.participant(ctx, sessionID, participantID)
	if err != nil {
		// The database may be down; whoever left has still left.
		live, ok := s.live.participant(sessionID, participantID)
		if !ok {
			s.log.Warn("disconnect of unknown participant", "session", sessionID, "participant", participantID, "err", err)
			return
		}
		p = live
	}
	rec := journal.Record{SessionID: sessionID, Actor: "participant:" + participantID.String(),
		Action: "participant.left", Details: map[string]any{"participant_id": participantID, "name": p.Name}}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.record(ctx, tx, rec)
		return err
	})
	switch {
	case errors.Is(err, fault.Conflict):
		return
	case errors.Is(err, fault.Unavailable):
		// Appended later, with the time it happened, when the database
		// can take it again.
		if err := s.journal.AppendEventually(ctx, rec); err != nil {
			s.log.Error("journal participant.left", "session", sessionID, "err", err)
		}
	case err != nil:
		s.log.Error("journal participant.left", "session", sessionID, "err", err)
	}
	s.notify().Notify(sessionID, nil, EventParticipantUpdated, mustJSON(p))
}

// maxChat bounds a chat message, in characters.
const maxChat = 2000

// RoomMessage handles the room messages the session layer owns, from a
// connected participant. It returns the message to deliver — the
// signalling server's Audience decides who receives it (chat within the
// sender's space, presenting within the main room) — or an error for the
// sender. A closed session takes no more messages (fault.Conflict).
func (s *Service) RoomMessage(ctx context.Context, sessionID, from uuid.UUID, typ string, payload json.RawMessage) (json.RawMessage, error) {
	p, err := s.participant(ctx, sessionID, from)
	if err != nil {
		return nil, err
	}
	if p.Revoked {
		return nil, fault.Revoked
	}
	switch typ {
	case MessageChat:
		return s.chat(ctx, p, payload)
	case MessagePresent:
		return s.present(ctx, p, payload)
	case MessageStatus:
		return s.status(ctx, p, payload)
	}
	// The code is signalling's own for a message type nobody handles.
	return nil, &fault.Error{Kind: fault.BadRequest, Code: "unknown_type", Message: fmt.Sprintf("unknown room message %q", typ)}
}

func (s *Service) chat(ctx context.Context, p Participant, payload json.RawMessage) (json.RawMessage, error) {
	if err := access.Check(p.Role, access.Chat); err != nil {
		return nil, err
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, invalid("text", "chat needs {\"text\": \"…\"}")
	}
	text := strings.TrimSpace(in.Text)
	if text == "" || utf8.RuneCountInString(text) > maxChat || !utf8.ValidString(text) {
		return nil, invalid("text", "a chat message is 1 to %d characters", maxChat)
	}
	if p.Space == SpaceWaiting {
		return nil, conflict("you are in the waiting room; chat opens when you are admitted")
	}
	var e journal.Entry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = s.record(ctx, tx, chatRecord(p, text))
		return err
	})
	if err != nil {
		return nil, err
	}
	return mustJSON(map[string]any{"from": p.ID, "name": p.Name, "role": p.Role, "text": text, "at": e.At.Format(time.RFC3339Nano), "space": p.Space}), nil
}

// chatRecord is how a chat message is journalled. The main room's chat is
// part of the record, text and all. A consultation room's is privileged —
// counsel and client — and the court must not read it: the journal (which
// the presiding role, the clerk and the admin read, and bundles export)
// keeps only that a message was sent there, and by whom.
func chatRecord(p Participant, text string) journal.Record {
	rec := journal.Record{SessionID: p.SessionID, Actor: "participant:" + p.ID.String(), Action: "chat.message",
		Details: map[string]any{"participant_id": p.ID, "name": p.Name, "space": p.Space, "text": text}}
	if p.Space != SpaceMain {
		rec.Action = "chat.consultation"
		rec.Details = map[string]any{"participant_id": p.ID, "name": p.Name, "consultation_id": p.Space}
	}
	return rec
}

func (s *Service) present(ctx context.Context, p Participant, payload json.RawMessage) (json.RawMessage, error) {
	if err := access.Check(p.Role, access.Present); err != nil {
		return nil, err
	}
	var in struct {
		DocumentID *uuid.UUID `json:"document_id"`
		Page       int        `json:"page"`
	}
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, invalid("document_id", "present needs {\"document_id\": \"…\", \"page\": n} or {\"document_id\": null} to stop")
	}
	if in.DocumentID != nil && (in.Page < 1 || in.Page > 100000) {
		return nil, invalid("page", "page must be 1 or more")
	}
	details := map[string]any{"document_id": in.DocumentID, "page": in.Page}
	shown := map[string]any{"document_id": in.DocumentID, "page": in.Page, "by": p.ID}
	out := mustJSON(shown)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if in.DocumentID == nil {
			if err := s.savePresenting(ctx, tx, p.SessionID, nil, uuid.Nil); err != nil {
				return err
			}
		} else if err := s.savePresenting(ctx, tx, p.SessionID, out, *in.DocumentID); err != nil {
			return err
		}
		_, err := s.record(ctx, tx, journal.Record{SessionID: p.SessionID, Actor: "participant:" + p.ID.String(), Action: "document.presented", Details: details})
		return err
	})
	if err != nil {
		return nil, err
	}
	if in.DocumentID == nil {
		s.live.setPresenting(p.SessionID, nil, uuid.Nil)
	} else {
		s.live.setPresenting(p.SessionID, out, *in.DocumentID)
	}
	return out, nil
}

// PresentedTo reports whether document docID is being presented in the
// main room of sessionID right now and participant pid is in the main room
// to see it. Presenting a document is permission for everyone in the main
// room to see it while it is shown, and for nothing more: the document
// routes ask this, in one place (api), when the caller's role alone would
// not show them the document.
func (s *Service) PresentedTo(sessionID, pid, docID uuid.UUID) bool {
	return s.live.presentedTo(sessionID, pid, docID)
}

// status relays a participant's raised hand and microphone state to the
// people of their space. Raising and lowering a hand is journalled: asking
// to speak is part of what happened in a hearing; the microphone is not
// (the server's own mutes are journalled where they are set).
func (s *Service) status(ctx context.Context, p Participant, payload json.RawMessage) (json.RawMessage, error) {
	if err := access.Check(p.Role, access.Publish); err != nil {
		return nil, err
	}
	var in Status
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, invalid("hand", "status needs {\"hand\": true|false, \"mic_off\": true|false}")
	}
	if p.Space == SpaceWaiting {
		return nil, conflict("you are in the waiting room")
	}
	handChanged, space, ok := s.live.setStatus(p.SessionID, p.ID, in)
	if !ok {
		return nil, fault.Unavailable
	}
	if handChanged {
		action := "participant.hand_lowered"
		if in.Hand {
			action = "participant.hand_raised"
		}
		err := s.tx(ctx, func(tx *sql.Tx) error {
			_, err := s.record(ctx, tx, journal.Record{SessionID: p.SessionID, Actor: "participant:" + p.ID.String(), Action: action,
				Details: map[string]any{"participant_id": p.ID, "name": p.Name, "space": space}})
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	// Delivered within the sender's space, like chat (the audience filter
	// reads "space").
	return mustJSON(map[string]any{"participant_id": p.ID, "hand": in.Hand, "mic_off": in.MicOff, "space": space}), nil
}
