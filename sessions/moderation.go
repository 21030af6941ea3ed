package sessions

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// change applies one moderation change to a participant: authorise, load
// inside the transaction, mutate, store, journal — then update the live
// state and tell everyone. mutate returns the journal details.
func (s *Service) change(ctx context.Context, p Principal, sessionID, participantID uuid.UUID,
	a access.Action, journalAction string, mutate func(tx *sql.Tx, sess Session, t *Participant) (any, error)) (Participant, error) {
	if _, _, err := s.Authorize(ctx, p, sessionID, a); err != nil {
		return Participant{}, err
	}
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return Participant{}, err
	}
	var (
		target Participant
		before string // the target's space before the change
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sess, err := s.get(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if err := requireNotClosed(sess); err != nil {
			return err
		}
		if target, err = s.participantTx(ctx, tx, sessionID, participantID); err != nil {
			return err
		}
		if target.Revoked {
			return conflict("participant %s has been removed", participantID)
		}
		before = target.Space
		details, err := mutate(tx, sess, &target)
		if err != nil {
			return err
		}
		var interprets sql.NullString
		if target.Interprets != nil {
			interprets = sql.NullString{String: target.Interprets.String(), Valid: true}
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE participants SET space = $1, audio_muted = $2, video_muted = $3, interprets = $4, whisper = $5 WHERE id = $6`,
			target.Space, target.AudioMuted, target.VideoMuted, interprets, target.Whisper, participantID.String()); err != nil {
			return fmt.Errorf("sessions: update participant: %w", err)
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: journalAction, Details: details})
		return err
	})
	if err != nil {
		return Participant{}, err
	}
	s.live.upsert(target)
	s.notify().Notify(sessionID, nil, EventParticipantUpdated, mustJSON(target))
	if target.Space != before {
		s.tellKnown(ctx, sessionID, target.ID)
		s.catchUp(sessionID, target)
	}
	return target, nil
}

// tellKnown sends each listed participant, whose space just changed, the
// participants they may know of now (EventParticipantsKnown): admitted
// from the waiting room, they learn who is in the room; sent back to it,
// they forget everyone.
func (s *Service) tellKnown(ctx context.Context, sessionID uuid.UUID, ids ...uuid.UUID) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id uuid.UUID) bool { return !s.live.isConnected(sessionID, id) })
	if len(ids) == 0 {
		return // nobody to tell
	}
	all, err := s.participants(ctx, sessionID)
	if err != nil {
		s.log.Error("listing participants for a moved participant", "session", sessionID, "err", err)
		return
	}
	n := s.notify()
	for _, id := range ids {
		n.Notify(sessionID, []uuid.UUID{id}, EventParticipantsKnown,
			mustJSON(KnownParticipants{For: id, Participants: s.knownTo(sessionID, id, all)}))
	}
}

// KnownParticipants is the data of EventParticipantsKnown: the whole list
// of the participants For may know of, as they may know them.
type KnownParticipants struct {
	For          uuid.UUID         `json:"for"`
	Participants []json.RawMessage `json:"participants"`
}

// catchUp shows someone who has just entered the main room (admitted,
// moved, back from a consultation) the page being presented there: the
// presentation's messages went to the main room while they were elsewhere.
func (s *Service) catchUp(sessionID uuid.UUID, p Participant) {
	if p.Space != SpaceMain {
		return
	}
	if msg := s.live.presentingIn(sessionID); msg != nil {
		s.notify().Notify(sessionID, []uuid.UUID{p.ID}, MessagePresent, msg)
	}
}

// Admit moves a participant from the waiting room into the main room.
func (s *Service) Admit(ctx context.Context, p Principal, sessionID, participantID uuid.UUID) (Participant, error) {
	return s.change(ctx, p, sessionID, participantID, access.Admit, "participant.admitted",
		func(_ *sql.Tx, _ Session, t *Participant) (any, error) {
			if t.Space != SpaceWaiting {
				return nil, conflict("participant %s is not in the waiting room (space %q)", t.ID, t.Space)
			}
			t.Space = SpaceMain
			return map[string]any{"participant_id": t.ID, "name": t.Name, "role": t.Role}, nil
		})
}

// Move puts a participant in a space: main, waiting, or an open
// consultation room of the same session.
func (s *Service) Move(ctx context.Context, p Principal, sessionID, participantID uuid.UUID, space string) (Participant, error) {
	return s.change(ctx, p, sessionID, participantID, access.Move, "participant.moved",
		func(tx *sql.Tx, _ Session, t *Participant) (any, error) {
			if err := s.checkSpace(ctx, tx, sessionID, space); err != nil {
				return nil, err
			}
			from := t.Space
			t.Space = space
			return map[string]any{"participant_id": t.ID, "name": t.Name, "from": from, "to": space}, nil
		})
}

func (s *Service) checkSpace(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, space string) error {
	if space == SpaceMain || space == SpaceWaiting {
		return nil
	}
	id, err := uuid.Parse(space)
	if err != nil {
		return invalid("space", "must be %q, %q or a consultation room id", SpaceMain, SpaceWaiting)
	}
	var closed sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT closed_at FROM consultations WHERE id = $1 AND session_id = $2`, id.String(), sessionID.String()).Scan(&closed)
	if err == sql.ErrNoRows {
		return invalid("space", "no consultation room %s in this session", id)
	}
	if err != nil {
		return fmt.Errorf("sessions: consultation: %w", err)
	}
	if closed.Valid {
		return conflict("consultation room %s is closed", id)
	}
	return nil
}

// MuteRequest sets the server-enforced mutes; a nil field is unchanged.
type MuteRequest struct {
	Audio *bool `json:"audio,omitempty"`
	Video *bool `json:"video,omitempty"`
}

// Mute sets or lifts a participant's server-enforced mutes.
func (s *Service) Mute(ctx context.Context, p Principal, sessionID, participantID uuid.UUID, m MuteRequest) (Participant, error) {
	if m.Audio == nil && m.Video == nil {
		return Participant{}, invalid("audio", "give audio and/or video")
	}
	return s.change(ctx, p, sessionID, participantID, access.Mute, "participant.muted",
		func(_ *sql.Tx, _ Session, t *Participant) (any, error) {
			if m.Audio != nil {
				t.AudioMuted = *m.Audio
			}
			if m.Video != nil {
				t.VideoMuted = *m.Video
			}
			return map[string]any{"participant_id": t.ID, "name": t.Name, "audio_muted": t.AudioMuted, "video_muted": t.VideoMuted}, nil
		})
}

// Remove disconnects a participant and kills their token for good; a staff
// member taking part loses their place in the session.
func (s *Service) Remove(ctx context.Context, p Principal, sessionID, participantID uuid.UUID) error {
	_, role, err := s.Authorize(ctx, p, sessionID, access.Remove)
	if err != nil {
		return err
	}
	return s.revoke(ctx, p, role, sessionID, participantID, "participant.removed", "removed")
}

// InterpreterRequest links an interpreter to the participant they
// interpret for; whisper sends the interpreter's voice to that participant
// alone.
type InterpreterRequest struct {
	For     *uuid.UUID `json:"for"`
	Whisper bool       `json:"whisper"`
}

// LinkInterpreter sets or clears an interpreter's link and whisper mode.
func (s *Service) LinkInterpreter(ctx context.Context, p Principal, sessionID, interpreterID uuid.UUID, r InterpreterRequest) (Participant, error) {
	return s.change(ctx, p, sessionID, interpreterID, access.LinkInterp, "interpreter.linked",
		func(tx *sql.Tx, _ Session, t *Participant) (any, error) {
			if t.Role != access.Interpreter {
				return nil, invalid("participant", "%s is a %s, not an interpreter", t.Name, t.Role)
			}
			if r.For == nil {
				if r.Whisper {
					return nil, invalid("whisper", "whisper needs a participant to interpret for")
				}
				t.Interprets, t.Whisper = nil, false
				return map[string]any{"interpreter_id": t.ID, "for": nil}, nil
			}
			other, err := s.participantTx(ctx, tx, sessionID, *r.For)
			if err != nil {
				return nil, invalid("for", "no participant %s in this session", *r.For)
			}
			if other.ID == t.ID || other.Revoked {
				return nil, invalid("for", "cannot interpret for %s", other.Name)
			}
			t.Interprets, t.Whisper = &other.ID, r.Whisper
			return map[string]any{"interpreter_id": t.ID, "for": other.ID, "for_name": other.Name, "whisper": r.Whisper}, nil
		})
}

// Consultation is a private room, e.g. counsel with their client.
type Consultation struct {
	ID           uuid.UUID   `json:"id"`
	SessionID    uuid.UUID   `json:"session_id"`
	Participants []uuid.UUID `json:"participant_ids"`
}

// OpenConsultation creates a private room and moves the listed
// participants into it. Its media reaches nobody outside and it is never
// recorded.
func (s *Service) OpenConsultation(ctx context.Context, p Principal, sessionID uuid.UUID, ids []uuid.UUID) (Consultation, error) {
	if _, _, err := s.Authorize(ctx, p, sessionID, access.Consult); err != nil {
		return Consultation{}, err
	}
	if len(ids) < 1 || len(ids) > 20 {
		return Consultation{}, invalid("participant_ids", "list 1 to 20 participants")
	}
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return Consultation{}, err
	}
	c := Consultation{ID: uuid.New(), SessionID: sessionID, Participants: ids}
	var moved []Participant
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sess, err := s.get(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if err := requireNotClosed(sess); err != nil {
			return err
		}
		seen := map[uuid.UUID]bool{}
		for _, id := range ids {
			if seen[id] {
				return invalid("participant_ids", "%s is listed twice", id)
			}
			seen[id] = true
			t, err := s.participantTx(ctx, tx, sessionID, id)
			if err != nil {
				return invalid("participant_ids", "no participant %s in this session", id)
			}
			if t.Revoked {
				return invalid("participant_ids", "%s has been removed", t.Name)
			}
			t.Space = c.ID.String()
			moved = append(moved, t)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO consultations (id, session_id, created_by, created_at) VALUES ($1, $2, $3, $4)`,
			c.ID.String(), sessionID.String(), p.Actor(), database.Micros(s.now())); err != nil {
			return fmt.Errorf("sessions: consultation: %w", err)
		}
		for _, t := range moved {
			if _, err := tx.ExecContext(ctx, `UPDATE participants SET space = $1 WHERE id = $2`, t.Space, t.ID.String()); err != nil {
				return fmt.Errorf("sessions: consultation: %w", err)
			}
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: "consultation.opened",
			Details: map[string]any{"consultation_id": c.ID, "participant_ids": ids}})
		return err
	})
	if err != nil {
		return Consultation{}, err
	}
	for _, t := range moved {
		s.live.upsert(t)
	}
	n := s.notify()
	n.Notify(sessionID, nil, EventConsultationOpened, mustJSON(c))
	for _, t := range moved {
		n.Notify(sessionID, nil, EventParticipantUpdated, mustJSON(t))
	}
	s.tellKnown(ctx, sessionID, ids...)
	return c, nil
}

// CloseConsultation closes a private room; everyone in it returns to main.
func (s *Service) CloseConsultation(ctx context.Context, p Principal, sessionID, consultationID uuid.UUID) error {
	if _, _, err := s.Authorize(ctx, p, sessionID, access.Consult); err != nil {
		return err
	}
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return err
	}
	var returned []Participant
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var closed sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT closed_at FROM consultations WHERE id = $1 AND session_id = $2`,
			consultationID.String(), sessionID.String()).Scan(&closed)
		if err == sql.ErrNoRows {
			return fmt.Errorf("consultation %s: %w", consultationID, fault.NotFound)
		}
		if err != nil {
			return fmt.Errorf("sessions: consultation: %w", err)
		}
		if closed.Valid {
			return conflict("consultation room %s is already closed", consultationID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consultations SET closed_at = $1 WHERE id = $2`, database.Micros(s.now()), consultationID.String()); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+participantColumns+` FROM participants WHERE session_id = $1 AND space = $2`,
			sessionID.String(), consultationID.String())
		if err != nil {
			return err
		}
		for rows.Next() {
			t, err := s.scanParticipant(rows)
			if err != nil {
				rows.Close()
				return err
			}
			t.Space = SpaceMain
			returned = append(returned, t)
		}
		rows.Close()
		if _, err := tx.ExecContext(ctx, `UPDATE participants SET space = $1 WHERE session_id = $2 AND space = $3`,
			SpaceMain, sessionID.String(), consultationID.String()); err != nil {
			return err
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: "consultation.closed",
			Details: map[string]any{"consultation_id": consultationID}})
		return err
	})
	if err != nil {
		return err
	}
	for _, t := range returned {
		s.live.upsert(t)
	}
	n := s.notify()
	n.Notify(sessionID, nil, EventConsultationClosed, mustJSON(map[string]any{"consultation_id": consultationID}))
	var ids []uuid.UUID
	for _, t := range returned {
		n.Notify(sessionID, nil, EventParticipantUpdated, mustJSON(t))
		ids = append(ids, t.ID)
		s.catchUp(sessionID, t)
	}
	s.tellKnown(ctx, sessionID, ids...)
	return nil
}

// ensureLive loads a session's participants into memory if needed.
func (s *Service) ensureLive(ctx context.Context, sessionID uuid.UUID) error {
	if s.live.loaded(sessionID) {
		return nil
	}
	sess, err := s.Get(ctx, sessionID)
	if err != nil {
		return err
	}
	ps, err := s.participants(ctx, sessionID)
	if err != nil {
		return err
	}
	s.live.load(sessionID, sess.Kind, ps)
	return nil
}
