package sessions

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail/letters"
)

// maxAhead bounds how far ahead a session can be scheduled.
const maxAhead = 5 * 365 * 24 * time.Hour

// Reschedule sets a session's time. Invitations that would lapse before
// the new time plus the invitation lifetime are extended, and everyone
// with an e-mail contact receives the new time with the calendar event's
// next SEQUENCE — in the same transaction as the change and its journal
// entry. Setting the time it already has changes nothing.
func (s *Service) Reschedule(ctx context.Context, p Principal, id uuid.UUID, at time.Time) (Session, error) {
	if _, _, err := s.Authorize(ctx, p, id, access.Reschedule); err != nil {
		return Session{}, err
	}
	now := s.now()
	at = at.UTC().Truncate(time.Microsecond)
	switch {
	case at.IsZero():
		return Session{}, invalid("scheduled_at", "is required")
	case !at.After(now):
		return Session{}, invalid("scheduled_at", "must be in the future")
	case at.After(now.Add(maxAhead)):
		return Session{}, invalid("scheduled_at", "must be within five years")
	}
	var (
		sess    Session
		changed bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := requireNotClosed(cur); err != nil {
			return err
		}
		sess = cur
		if cur.ScheduledAt != nil && cur.ScheduledAt.Equal(at) {
			return nil
		}
		changed = true
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET scheduled_at = $1 WHERE id = $2`, database.Micros(at), id.String()); err != nil {
			return fmt.Errorf("sessions: reschedule: %w", err)
		}
		sess.ScheduledAt = &at
		extended, err := s.extendInvitationsTx(ctx, tx, id, at.Add(s.ttl))
		if err != nil {
			return err
		}
		notices, err := s.announceTimeTx(ctx, tx, sess, cur.ScheduledAt)
		if err != nil {
			return err
		}
		details := map[string]any{"to": at, "invitations_extended": extended, "notices": notices}
		if cur.ScheduledAt != nil {
			details["from"] = *cur.ScheduledAt
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: id, Actor: p.Actor(), Action: "session.rescheduled", Details: details})
		return err
	})
	if err != nil {
		return Session{}, err
	}
	if changed {
		s.pokeMail()
	}
	return sess, nil
}

// extendInvitationsTx moves the expiry of the session's live invitations
// (not public observers' day passes) to at least until.
func (s *Service) extendInvitationsTx(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, until time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE participants SET expires_at = $1
		 WHERE session_id = $2 AND revoked_at IS NULL AND public_join = FALSE AND expires_at < $1`,
		database.Micros(until), sessionID.String())
	if err != nil {
		return 0, fmt.Errorf("sessions: extend invitations: %w", err)
	}
	return res.RowsAffected()
}

// announceTimeTx queues the letter with the new time for every live
// invitation of the session that has a contact.
func (s *Service) announceTimeTx(ctx context.Context, tx *sql.Tx, sess Session, previous *time.Time) (int, error) {
	if s.mail == nil {
		return 0, nil
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT c.participant_id FROM invitation_contacts c JOIN participants p ON p.id = c.participant_id
		 WHERE c.session_id = $1 AND p.revoked_at IS NULL AND p.expires_at > $2
		 ORDER BY p.created_at, p.id`, sess.ID.String(), database.Micros(s.now()))
	if err != nil {
		return 0, fmt.Errorf("sessions: announce time: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		pid, _ := uuid.Parse(id)
		ids = append(ids, pid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, pid := range ids {
		seq, err := s.nextSequenceTx(ctx, tx, pid, true)
		if err != nil {
			return 0, err
		}
		if err := s.enqueueTx(ctx, tx, outMessage{
			sessionID: sess.ID, participantID: pid, kind: letters.Update,
			sequence: seq, startsAt: sess.ScheduledAt, previous: previous,
		}); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// remind queues the reminders that have fallen due, nearest lead first:
// for each lead, the live invitations with a contact whose session begins
// within it, whose moment (start less lead) came after the person was last
// told the time, and that have had no reminder for that lead and that
// time. Queuing one records the longer leads too: a server that was down
// a day does not send yesterday's reminder after today's. Each reminder is
// recorded once per session time, in the same transaction as its letter.
func (s *Service) remind(ctx context.Context) {
	leads := s.mail.cfg.Reminders // longest first
	now := database.Micros(s.now())
	for i := len(leads) - 1; i >= 0; i-- {
		lead := leads[i]
		rows, err := s.db.QueryContext(ctx,
			`SELECT c.participant_id, c.session_id, s.scheduled_at
			 FROM invitation_contacts c
			 JOIN participants p ON p.id = c.participant_id
			 JOIN sessions s ON s.id = c.session_id
			 WHERE s.state <> $1 AND s.scheduled_at > $2 AND s.scheduled_at <= $2 + $3 AND s.scheduled_at - $3 > c.told_at
			   AND p.revoked_at IS NULL AND p.expires_at > $2
			   AND NOT EXISTS (SELECT 1 FROM mail_reminders r
			     WHERE r.participant_id = c.participant_id AND r.starts_at = s.scheduled_at AND r.lead_seconds = $4)
			 ORDER BY s.scheduled_at, c.participant_id LIMIT 500`,
			string(Closed), now, lead.Microseconds(), int64(lead/time.Second))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("reminders: listing invitations", "err", err)
			}
			return
		}
		type due struct {
			participant, session uuid.UUID
			start                time.Time
		}
		var todo []due
		for rows.Next() {
			var (
				pid, sid string
				start    int64
			)
			if err := rows.Scan(&pid, &sid, &start); err != nil {
				s.log.Error("reminders: reading an invitation", "err", err)
				break
			}
			d := due{start: database.Time(start)}
			d.participant, _ = uuid.Parse(pid)
			d.session, _ = uuid.Parse(sid)
			todo = append(todo, d)
		}
		rows.Close()
		for _, d := range todo {
			if err := s.queueReminder(ctx, d.session, d.participant, d.start, leads[:i+1]); err != nil && ctx.Err() == nil {
				s.log.Error("reminders: queueing", "session", d.session, "participant", d.participant, "err", err)
			}
		}
	}
}

// queueReminder records the reminder for the nearest of leads (the last)
// and the longer ones, and, unless another process recorded it first,
// queues its letter.
func (s *Service) queueReminder(ctx context.Context, sessionID, participantID uuid.UUID, start time.Time, leads []time.Duration) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		nearest := leads[len(leads)-1]
		fresh := false
		for _, lead := range leads {
			res, err := tx.ExecContext(ctx,
				`INSERT INTO mail_reminders (participant_id, starts_at, lead_seconds, created_at) VALUES ($1, $2, $3, $4)
				 ON CONFLICT DO NOTHING`,
				participantID.String(), database.Micros(start), int64(lead/time.Second), database.Micros(s.now()))
			if err != nil {
				return fmt.Errorf("sessions: record reminder: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 && lead == nearest {
				fresh = true
			}
		}
		if !fresh {
			return nil
		}
		return s.enqueueTx(ctx, tx, outMessage{
			sessionID: sessionID, participantID: participantID, kind: letters.Reminder,
			startsAt: &start, deadline: start,
		})
	})
}
