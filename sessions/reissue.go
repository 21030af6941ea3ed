package sessions

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail/letters"
)

// Reissue is what the caller may change when re-sending a link.
type Reissue struct {
	// Contact, when given, replaces the invitation's contact (a corrected
	// address, another language) or adds one.
	Contact *Contact `json:"contact,omitempty"`
}

// ReissueInvitation replaces a participant's token: the old one stops
// working at once (its connections are closed with token_revoked), the
// new one is returned this once and, when the invitation has a contact,
// e-mailed. The invitation keeps its calendar UID and SEQUENCE: the event
// has not changed, only the link.
func (s *Service) ReissueInvitation(ctx context.Context, p Principal, sessionID, participantID uuid.UUID, r Reissue) (Invitation, error) {
	sess, _, err := s.Authorize(ctx, p, sessionID, access.Invite)
	if err != nil {
		return Invitation{}, err
	}
	c, err := s.checkContact(r.Contact)
	if err != nil {
		return Invitation{}, err
	}
	if err := requireNotClosed(sess); err != nil {
		return Invitation{}, err
	}
	token, hash := newToken(invitationPrefix)
	var inv Invitation
	err = s.tx(ctx, func(tx *sql.Tx) error {
		target, err := s.participantTx(ctx, tx, sessionID, participantID)
		if err != nil {
			return err
		}
		switch {
		case target.Revoked:
			return conflict("participant %s is removed; invite them again", participantID)
		case target.PublicJoin:
			return conflict("a public observer's link cannot be re-sent")
		}
		cur, err := s.get(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if err := requireNotClosed(cur); err != nil {
			return err
		}
		expires := target.ExpiresAt
		if d := s.defaultExpiry(cur); d.After(expires) {
			expires = d
		}
		if _, err := tx.ExecContext(ctx, `UPDATE participants SET token_hash = $1, expires_at = $2 WHERE id = $3`,
			hash, database.Micros(expires), participantID.String()); err != nil {
			return fmt.Errorf("sessions: reissue: %w", err)
		}
		inv = Invitation{ParticipantID: participantID, Name: target.Name, Role: target.Role, Token: token, ExpiresAt: expires,
			JoinURL: strings.TrimRight(s.publicURL, "/") + "/join/" + token}
		if err := s.mailNewLinkTx(ctx, tx, cur, &inv, c); err != nil {
			return err
		}
		_, err = s.record(ctx, tx, journal.Record{
			SessionID: sessionID, Actor: p.Actor(), Action: "invitation.reissued",
			Details: map[string]any{"participant_id": participantID, "name": target.Name, "role": target.Role,
				"expires_at": expires, "mailed": inv.Mail != ""},
		})
		return err
	})
	if err != nil {
		return Invitation{}, err
	}
	s.notify().Disconnect(sessionID, participantID, "token_revoked")
	s.pokeMail()
	return inv, nil
}

// mailNewLinkTx is the e-mail side of a re-send: a new contact is
// stored, letters still carrying the old link are dropped (one already on
// its way carries a dead link and is harmless), and the new link is
// queued if there is anyone to send it to.
func (s *Service) mailNewLinkTx(ctx context.Context, tx *sql.Tx, sess Session, inv *Invitation, c *contact) error {
	if s.mail == nil {
		return nil
	}
	if c != nil {
		if err := s.saveContactTx(ctx, tx, sess.ID, inv.ParticipantID, c); err != nil {
			return err
		}
	}
	if _, ok, err := s.contactTx(ctx, tx, inv.ParticipantID); err != nil || !ok {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE mail_outbox SET status = $1, secret = NULL
		 WHERE participant_id = $2 AND status = $3 AND secret IS NOT NULL AND (lease_until IS NULL OR lease_until <= $4)`,
		statusSuperseded, inv.ParticipantID.String(), statusPending, database.Micros(s.now())); err != nil {
		return fmt.Errorf("sessions: reissue: %w", err)
	}
	var seq int
	if err := tx.QueryRowContext(ctx,
		`UPDATE invitation_contacts SET told_at = $2 WHERE participant_id = $1 RETURNING sequence`,
		inv.ParticipantID.String(), database.Micros(s.now())).Scan(&seq); err != nil {
		return fmt.Errorf("sessions: reissue: %w", err)
	}
	if err := s.enqueueTx(ctx, tx, outMessage{
		sessionID: sess.ID, participantID: inv.ParticipantID, kind: letters.NewLink,
		sequence: seq, startsAt: sess.ScheduledAt, secret: inv.Token, deadline: inv.ExpiresAt,
	}); err != nil {
		return err
	}
	inv.Mail = MailPending
	return nil
}
