package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// This file is how officials take part: staff are assigned to a session
// (the clerk picks the judge, the notary the embassy officer) and enter its
// room as themselves with a join ticket — never with an invitation token.

// StaffMember is a staff member as a colleague picking them sees them:
// no link to the provider account, which may carry personal data.
type StaffMember struct {
	ID   uuid.UUID   `json:"id"`
	Name string      `json:"name"`
	Role access.Role `json:"role"`
}

// staffParticipantExpiry stands in for an invitation's expiry: a staff
// member's part in a session lasts as long as the assignment.
var staffParticipantExpiry = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// AssignableStaff lists the staff members the caller may assign to a
// session: not revoked, holding a role of its kind that the caller's role
// may assign, and not assigned already.
func (s *Service) AssignableStaff(ctx context.Context, p Principal, sessionID uuid.UUID) ([]StaffMember, error) {
	sess, role, err := s.Authorize(ctx, p, sessionID, access.AssignStaff)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, role FROM staff WHERE revoked_at IS NULL
		AND id NOT IN (SELECT staff_id FROM participants WHERE session_id = $1 AND staff_id IS NOT NULL AND revoked_at IS NULL)
		ORDER BY name, id`, sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("sessions: assignable staff: %w", err)
	}
	defer rows.Close()
	out := []StaffMember{}
	for rows.Next() {
		var m StaffMember
		var id, r string
		if err := rows.Scan(&id, &m.Name, &r); err != nil {
			return nil, err
		}
		m.ID, _ = uuid.Parse(id)
		m.Role = access.Role(r)
		if m.Role.InKind(sess.Kind) && access.MayAssign(role, m.Role) {
			out = append(out, m)
		}
	}
	return out, rows.Err()
}

// Assign makes a staff member take part in a session in their own role.
func (s *Service) Assign(ctx context.Context, p Principal, sessionID, staffID uuid.UUID) (Participant, error) {
	sess, role, err := s.Authorize(ctx, p, sessionID, access.AssignStaff)
	if err != nil {
		return Participant{}, err
	}
	st, err := s.GetStaff(ctx, staffID)
	switch {
	case errors.Is(err, fault.NotFound):
		return Participant{}, invalid("staff_id", "no such staff member")
	case err != nil:
		return Participant{}, err
	case st.Revoked:
		return Participant{}, invalid("staff_id", "%s is revoked", st.Name)
	case !st.Role.InKind(sess.Kind):
		return Participant{}, invalid("staff_id", "%s is a %s, a role a %s does not have", st.Name, st.Role, sess.Kind)
	case !access.MayAssign(role, st.Role):
		return Participant{}, &fault.Error{Kind: fault.Forbidden, Err: &access.ForbiddenError{Role: role, Action: access.AssignStaff},
			Message: fmt.Sprintf("forbidden: assign_staff of a %s is not allowed for role %s (it may assign %v)", st.Role, role, access.Assignable(role))}
	}
	return s.addStaffParticipant(ctx, p.Actor(), sess, st)
}

// Unassign withdraws a staff member from a session: they are disconnected
// and lose their standing in it.
func (s *Service) Unassign(ctx context.Context, p Principal, sessionID, staffID uuid.UUID) error {
	_, role, err := s.Authorize(ctx, p, sessionID, access.AssignStaff)
	if err != nil {
		return err
	}
	var pid string
	err = s.db.QueryRowContext(ctx, `SELECT id FROM participants WHERE session_id = $1 AND staff_id = $2 AND revoked_at IS NULL`,
		sessionID.String(), staffID.String()).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("assignment of %s: %w", staffID, fault.NotFound)
	}
	if err != nil {
		return fmt.Errorf("sessions: unassign: %w", err)
	}
	id, _ := uuid.Parse(pid)
	return s.revoke(ctx, p, role, sessionID, id, "staff.unassigned", "removed")
}

// addStaffParticipant records a staff member's part in a session: one
// participant, holding no token, whatever the number of their connections.
func (s *Service) addStaffParticipant(ctx context.Context, actor string, sess Session, st Staff) (Participant, error) {
	if err := requireNotClosed(sess); err != nil {
		return Participant{}, err
	}
	if err := s.ensureLive(ctx, sess.ID); err != nil {
		return Participant{}, err
	}
	space := SpaceWaiting
	if st.Role.EntersDirectly() {
		space = SpaceMain
	}
	pid := uuid.New()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := s.get(ctx, tx, sess.ID)
		if err != nil {
			return err
		}
		if err := requireNotClosed(cur); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM participants WHERE session_id = $1 AND staff_id = $2 AND revoked_at IS NULL`,
			sess.ID.String(), st.ID.String()).Scan(&n); err != nil {
			return fmt.Errorf("sessions: assign: %w", err)
		}
		if n > 0 {
			return conflict("%s already takes part in this session", st.Name)
		}
		// The token hash column holds a value no token hashes to.
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO participants (id, session_id, name, role, token_hash, expires_at, space, public_join, created_by, created_at, staff_id)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			pid.String(), sess.ID.String(), st.Name, string(st.Role), "staff:"+pid.String(), database.Micros(staffParticipantExpiry),
			space, false, actor, database.Micros(s.now()), st.ID.String()); err != nil {
			return fmt.Errorf("sessions: assign: %w", err)
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sess.ID, Actor: actor, Action: "staff.assigned",
			Details: map[string]any{"participant_id": pid, "staff_id": st.ID, "name": st.Name, "role": st.Role}})
		return err
	})
	if err != nil {
		return Participant{}, err
	}
	p, err := s.participant(ctx, sess.ID, pid)
	if err != nil {
		return Participant{}, err
	}
	s.live.upsert(p)
	s.notify().Notify(sess.ID, nil, "participant_added", mustJSON(p))
	return p, nil
}

// Entry is what a staff member receives on entering a session's room: who
// they are there, and the join ticket their signalling connection presents
// instead of an invitation token.
type Entry struct {
	Participant Participant `json:"participant"`
	Permissions []string    `json:"permissions"`
	Ticket      string      `json:"ticket"`
	ExpiresAt   time.Time   `json:"expires_at"`
}

// Join tickets live at most this long, and never longer than the
// credential that minted them; each credential keeps its newest few per
// session.
const (
	maxTicketTTL         = 12 * time.Hour
	ticketsPerCredential = 8
)

// Enter lets a staff member into a session they take part in — assigned,
// or the creator in a role of its kind — as themselves: every tab and
// device of theirs is the same participant. Admins never take part.
func (s *Service) Enter(ctx context.Context, p Principal, sessionID uuid.UUID) (Entry, error) {
	if p.Staff == nil {
		return Entry{}, fault.New(fault.Forbidden, "forbidden: only staff enter from the console; a participant joins with their link")
	}
	sess, c, err := s.Caller(ctx, p, sessionID, access.ViewSession)
	if err != nil {
		return Entry{}, err
	}
	if c.Role == access.Admin {
		return Entry{}, fault.New(fault.Forbidden, "forbidden: an admin acts in every session but never takes part in one")
	}
	if err := requireNotClosed(sess); err != nil {
		return Entry{}, err
	}
	pid := c.ParticipantID
	if pid == uuid.Nil {
		// The creator's first entry: they take part in their own role.
		part, err := s.addStaffParticipant(ctx, p.Actor(), sess, *p.Staff)
		if err != nil {
			return Entry{}, err
		}
		pid = part.ID
	}
	part, err := s.participant(ctx, sessionID, pid)
	if err != nil {
		return Entry{}, err
	}
	ticket, expires, err := s.mintTicket(ctx, p, sessionID, pid)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Participant: part, Permissions: permissions(part.Role), Ticket: ticket, ExpiresAt: expires}, nil
}

func (s *Service) mintTicket(ctx context.Context, p Principal, sessionID, pid uuid.UUID) (string, time.Time, error) {
	now := s.now()
	expires := now.Add(maxTicketTTL)
	if !p.Credential.ExpiresAt.IsZero() && p.Credential.ExpiresAt.Before(expires) {
		expires = p.Credential.ExpiresAt
	}
	ref := p.Credential.Ref()
	ticket, hash := newToken(ticketPrefix)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO join_tickets (token_hash, session_id, participant_id, staff_id, credential, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, hash, sessionID.String(), pid.String(), p.Staff.ID.String(), ref,
			database.Micros(now), database.Micros(expires)); err != nil {
			return fmt.Errorf("sessions: join ticket: %w", err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM join_tickets WHERE credential = $1 AND session_id = $2 AND token_hash NOT IN
			(SELECT token_hash FROM join_tickets WHERE credential = $1 AND session_id = $2 ORDER BY created_at DESC, token_hash LIMIT $3)`,
			ref, sessionID.String(), ticketsPerCredential)
		return err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return ticket, expires, nil
}

// JoinTicket authenticates a staff member's signalling join: a ticket for
// this very session, minted by a credential (browser session or API token)
// that is still valid, for a staff member who is not revoked and still
// takes part in the session in their current role. It returns the
// participant and the credential's reference, under which the signalling
// server can close the connection when the credential ends.
func (s *Service) JoinTicket(ctx context.Context, sessionID uuid.UUID, ticket string) (Participant, string, error) {
	if !tokenShape(ticket, ticketPrefix) {
		return Participant{}, "", fault.Unauthenticated
	}
	hash := hashToken(ticket)
	var (
		stored, sid, pid, staffID, ref, role string
		expires                              int64
		staffRevoked                         sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `SELECT j.token_hash, j.session_id, j.participant_id, j.staff_id, j.credential, j.expires_at, s.revoked_at, s.role
		FROM join_tickets j JOIN staff s ON s.id = j.staff_id WHERE j.token_hash = $1`, hash).
		Scan(&stored, &sid, &pid, &staffID, &ref, &expires, &staffRevoked, &role)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Participant{}, "", fault.Unauthenticated
	}
	if err != nil {
		return Participant{}, "", database.Classify(fmt.Errorf("sessions: join ticket lookup: %w", err))
	}
	switch {
	case sid != sessionID.String():
		return Participant{}, "", fmt.Errorf("ticket is for another session: %w", fault.Unauthenticated)
	case staffRevoked.Valid:
		return Participant{}, "", fault.Revoked
	case !s.now().Before(database.Time(expires)):
		return Participant{}, "", fault.Expired
	}
	if err := s.credentialValid(ctx, ref); err != nil {
		return Participant{}, "", err
	}
	id, _ := uuid.Parse(pid)
	p, err := s.participant(ctx, sessionID, id)
	if err != nil {
		return Participant{}, "", err
	}
	if p.Revoked || p.StaffID == nil || p.StaffID.String() != staffID || string(p.Role) != role {
		return Participant{}, "", fault.Revoked
	}
	sess, err := s.Get(ctx, sessionID)
	if err != nil {
		return Participant{}, "", err
	}
	if err := requireNotClosed(sess); err != nil {
		return Participant{}, "", err
	}
	return p, ref, nil
}

// credentialValid checks that the credential a ticket was minted by has
// neither ended nor expired.
func (s *Service) credentialValid(ctx context.Context, ref string) error {
	kind, id, _ := strings.Cut(ref, ":")
	now := s.now()
	switch CredentialKind(kind) {
	case ByBrowser:
		var expires, seen int64
		var ended sql.NullInt64
		err := s.db.QueryRowContext(ctx, `SELECT expires_at, last_seen_at, ended_at FROM browser_sessions WHERE id = $1`, id).Scan(&expires, &seen, &ended)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fault.Unauthenticated
		case err != nil:
			return fmt.Errorf("sessions: ticket credential: %w", err)
		case ended.Valid:
			return fault.Revoked
		case !now.Before(database.Time(expires)) || !now.Before(database.Time(seen).Add(s.browserIdle)):
			return fault.Expired
		}
		return nil
	case ByAPIToken:
		var expires int64
		var revoked sql.NullInt64
		err := s.db.QueryRowContext(ctx, `SELECT expires_at, revoked_at FROM api_tokens WHERE id = $1`, id).Scan(&expires, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fault.Unauthenticated
		case err != nil:
			return fmt.Errorf("sessions: ticket credential: %w", err)
		case revoked.Valid:
			return fault.Revoked
		case !now.Before(database.Time(expires)):
			return fault.Expired
		}
		return nil
	}
	return fault.Unauthenticated
}
