package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/mail/letters"
)

// Contact is how an invited person is reached by e-mail: the address, the
// language letters are written in (en, et, ru; en when empty) and the IANA
// time zone the session's time is given in (the server's --mail-time-zone
// when empty) — an embassy abroad gives its own, e.g. Asia/Tokyo.
type Contact struct {
	Email    string `json:"email"`
	Language string `json:"language,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
}

// contact is a Contact that has been checked and normalised.
type contact struct {
	email string
	lang  letters.Lang
	zone  *time.Location
}

// checkContact validates a contact given with an invitation; nil stays
// nil. Without a mail service no contact is accepted, so nobody believes
// an e-mail is on its way.
func (s *Service) checkContact(c *Contact) (*contact, error) {
	if c == nil {
		return nil, nil
	}
	if s.mail == nil {
		return nil, invalid("contact", "this server sends no e-mail (it runs without --smtp-url); leave contact out and pass the link on yourself")
	}
	email, err := mail.ParseAddress(c.Email)
	if err != nil {
		return nil, invalid("contact.email", "%v", err)
	}
	lang := letters.English
	if c.Language != "" {
		if lang, err = letters.ParseLang(c.Language); err != nil {
			return nil, invalid("contact.language", "%v", err)
		}
	}
	zone := s.mail.cfg.TimeZone
	if c.TimeZone != "" {
		if zone, err = letters.LoadZone(c.TimeZone); err != nil {
			return nil, invalid("contact.time_zone", "%v", err)
		}
	}
	return &contact{email: email, lang: lang, zone: zone}, nil
}

// saveContactTx records the contact of an invitation, or replaces the
// one it had.
func (s *Service) saveContactTx(ctx context.Context, tx *sql.Tx, sessionID, participantID uuid.UUID, c *contact) error {
	now := database.Micros(s.now())
	_, err := tx.ExecContext(ctx,
		`INSERT INTO invitation_contacts (participant_id, session_id, email, language, time_zone, told_at, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
		 ON CONFLICT (participant_id) DO UPDATE SET email = excluded.email, language = excluded.language,
		   time_zone = excluded.time_zone, updated_at = excluded.updated_at`,
		participantID.String(), sessionID.String(), c.email, string(c.lang), c.zone.String(), now)
	if err != nil {
		return fmt.Errorf("sessions: save contact: %w", err)
	}
	return nil
}

// inviteContactTx is the e-mail side of a new invitation: the contact is
// stored and the invitation letter, which alone carries the token, is put
// in the outbox — all in the invitation's own transaction.
func (s *Service) inviteContactTx(ctx context.Context, tx *sql.Tx, sess Session, inv *Invitation, c *contact) error {
	if c == nil {
		return nil
	}
	if err := s.saveContactTx(ctx, tx, sess.ID, inv.ParticipantID, c); err != nil {
		return err
	}
	if err := s.enqueueTx(ctx, tx, outMessage{
		sessionID: sess.ID, participantID: inv.ParticipantID, kind: letters.Invitation,
		startsAt: sess.ScheduledAt, secret: inv.Token, deadline: inv.ExpiresAt,
	}); err != nil {
		return err
	}
	inv.Mail = MailPending
	return nil
}

// withdrawContactTx is the e-mail side of a revocation: letters not yet
// on their way are dropped, and if anything was (or is being) delivered,
// a cancellation with a higher SEQUENCE removes the event from the
// person's calendar.
func (s *Service) withdrawContactTx(ctx context.Context, tx *sql.Tx, target Participant) error {
	if s.mail == nil {
		return nil
	}
	return s.cancelLettersTx(ctx, tx, target.SessionID, target.ID)
}

// closeContactsTx is the e-mail side of closing a session: letters still
// waiting are dropped, and a session closed before its time — called off —
// is cancelled in the calendars of those who were told of it.
func (s *Service) closeContactsTx(ctx context.Context, tx *sql.Tx, sess Session) error {
	if s.mail == nil {
		return nil
	}
	if sess.ScheduledAt == nil || !sess.ScheduledAt.After(s.now()) {
		_, err := tx.ExecContext(ctx,
			`UPDATE mail_outbox SET status = $1, secret = NULL
			 WHERE session_id = $2 AND status = $3 AND kind <> $4 AND (lease_until IS NULL OR lease_until <= $5)`,
			statusSuperseded, sess.ID.String(), statusPending, string(letters.Cancel), database.Micros(s.now()))
		if err != nil {
			return fmt.Errorf("sessions: close letters: %w", err)
		}
		return nil
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT c.participant_id FROM invitation_contacts c JOIN participants p ON p.id = c.participant_id
		 WHERE c.session_id = $1 AND p.revoked_at IS NULL ORDER BY p.created_at, p.id`, sess.ID.String())
	if err != nil {
		return fmt.Errorf("sessions: close letters: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		pid, _ := uuid.Parse(id)
		ids = append(ids, pid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, pid := range ids {
		if err := s.cancelLettersTx(ctx, tx, sess.ID, pid); err != nil {
			return err
		}
	}
	return nil
}

// cancelLettersTx drops a person's waiting letters and, if anything
// reached them, queues the cancellation of their calendar event.
func (s *Service) cancelLettersTx(ctx context.Context, tx *sql.Tx, sessionID, participantID uuid.UUID) error {
	if _, ok, err := s.contactTx(ctx, tx, participantID); err != nil || !ok {
		return err
	}
	now := database.Micros(s.now())
	if _, err := tx.ExecContext(ctx,
		`UPDATE mail_outbox SET status = $1, secret = NULL
		 WHERE participant_id = $2 AND status = $3 AND (lease_until IS NULL OR lease_until <= $4)`,
		statusSuperseded, participantID.String(), statusPending, now); err != nil {
		return fmt.Errorf("sessions: withdraw letters: %w", err)
	}
	var delivered int
	if err := tx.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM mail_outbox WHERE participant_id = $1 AND (status = $2 OR (status = $3 AND lease_until > $4))`,
		participantID.String(), statusSent, statusPending, now).Scan(&delivered); err != nil {
		return fmt.Errorf("sessions: withdraw letters: %w", err)
	}
	if delivered == 0 {
		return nil
	}
	var scheduled sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT scheduled_at FROM sessions WHERE id = $1`, sessionID.String()).Scan(&scheduled); err != nil {
		return fmt.Errorf("sessions: withdraw letters: %w", err)
	}
	seq, err := s.nextSequenceTx(ctx, tx, participantID, false)
	if err != nil {
		return err
	}
	return s.enqueueTx(ctx, tx, outMessage{
		sessionID: sessionID, participantID: participantID, kind: letters.Cancel,
		sequence: seq, startsAt: timePtr(scheduled),
	})
}

// contactRow is a stored contact.
type contactRow struct {
	email, lang, zone string
	sequence          int
	toldAt            time.Time
}

func (s *Service) contactTx(ctx context.Context, q querier, participantID uuid.UUID) (contactRow, bool, error) {
	var (
		c    contactRow
		told int64
	)
	err := q.QueryRowContext(ctx,
		`SELECT email, language, time_zone, sequence, told_at FROM invitation_contacts WHERE participant_id = $1`,
		participantID.String()).Scan(&c.email, &c.lang, &c.zone, &c.sequence, &told)
	if errors.Is(err, sql.ErrNoRows) {
		return contactRow{}, false, nil
	}
	if err != nil {
		return contactRow{}, false, database.Classify(fmt.Errorf("sessions: contact: %w", err))
	}
	c.toldAt = database.Time(told)
	return c, true, nil
}

// nextSequenceTx raises an invitation's iCalendar SEQUENCE for a change
// and returns it; told records that the letter tells the session's time,
// which resets when reminders fall due.
func (s *Service) nextSequenceTx(ctx context.Context, tx *sql.Tx, participantID uuid.UUID, told bool) (int, error) {
	q := `UPDATE invitation_contacts SET sequence = sequence + 1, updated_at = $2 WHERE participant_id = $1 RETURNING sequence`
	if told {
		q = `UPDATE invitation_contacts SET sequence = sequence + 1, updated_at = $2, told_at = $2 WHERE participant_id = $1 RETURNING sequence`
	}
	var seq int
	if err := tx.QueryRowContext(ctx, q, participantID.String(), database.Micros(s.now())).Scan(&seq); err != nil {
		return 0, fmt.Errorf("sessions: calendar sequence: %w", err)
	}
	return seq, nil
}

// Mail delivery states of an invitation: those of its newest letter.
const (
	MailPending = "pending" // queued or being retried
	MailSent    = "sent"    // accepted by the SMTP server
	MailFailed  = "failed"  // refused, or given up after the last retry
)

// InvitationMail is an invitation's contact and how its e-mail fared.
type InvitationMail struct {
	ParticipantID uuid.UUID   `json:"participant_id"`
	Name          string      `json:"name"`
	Role          access.Role `json:"role"`
	Revoked       bool        `json:"revoked,omitempty"`
	Email         string      `json:"email"`
	Language      string      `json:"language"`
	TimeZone      string      `json:"time_zone"`
	// Sequence is the iCalendar SEQUENCE of the newest calendar version.
	Sequence int `json:"sequence"`
	// Status is that of the newest letter (pending, sent, failed); Kind
	// says which letter it is (invitation, reissue, update, cancel,
	// reminder).
	Status    string     `json:"status,omitempty"`
	Kind      string     `json:"kind,omitempty"`
	Attempts  int        `json:"attempts,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
}

// InvitationMails lists the session's invitations that have a contact,
// with the state of their e-mail. Contacts are personal data: only those
// who may invite see them.
func (s *Service) InvitationMails(ctx context.Context, p Principal, sessionID uuid.UUID) ([]InvitationMail, error) {
	if _, _, err := s.Authorize(ctx, p, sessionID, access.Invite); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT c.participant_id, p.name, p.role, p.revoked_at, c.email, c.language, c.time_zone, c.sequence,
		        o.status, o.kind, o.attempts, o.last_error, o.sent_at
		 FROM invitation_contacts c
		 JOIN participants p ON p.id = c.participant_id
		 LEFT JOIN mail_outbox o ON o.participant_id = c.participant_id AND o.n = (
		   SELECT MAX(n) FROM mail_outbox x WHERE x.participant_id = c.participant_id AND x.status <> $2)
		 WHERE c.session_id = $1
		 ORDER BY p.created_at, p.id`, sessionID.String(), statusSuperseded)
	if err != nil {
		return nil, fmt.Errorf("sessions: invitation mail: %w", err)
	}
	defer rows.Close()
	out := []InvitationMail{}
	for rows.Next() {
		var (
			m                       InvitationMail
			id, role                string
			revoked, sent           sql.NullInt64
			status, kind, lastError sql.NullString
			attempts                sql.NullInt64
		)
		if err := rows.Scan(&id, &m.Name, &role, &revoked, &m.Email, &m.Language, &m.TimeZone, &m.Sequence,
			&status, &kind, &attempts, &lastError, &sent); err != nil {
			return nil, fmt.Errorf("sessions: invitation mail: %w", err)
		}
		m.ParticipantID, _ = uuid.Parse(id)
		m.Role, m.Revoked = access.Role(role), revoked.Valid
		m.Status, m.Kind, m.LastError = status.String, kind.String, lastError.String
		m.Attempts, m.SentAt = int(attempts.Int64), timePtr(sent)
		out = append(out, m)
	}
	return out, rows.Err()
}
