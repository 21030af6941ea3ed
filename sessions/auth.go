package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
)

// Authenticate resolves a bearer token — a staff member's API token or an
// invitation token — to the principal it belongs to. Console sessions are
// resolved by AuthenticateBrowser, join tickets by JoinTicket: neither is a
// bearer token of the REST API.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	switch TokenKind(token) {
	case "api_token":
		return s.authenticateAPIToken(ctx, token)
	case "invitation":
		p, err := s.authenticateInvitation(ctx, token)
		if err != nil {
			return Principal{}, err
		}
		return Principal{Participant: &p, Credential: Credential{Kind: ByInvitation, ID: p.ID, ExpiresAt: p.ExpiresAt}}, nil
	}
	return Principal{}, fault.Unauthenticated
}

// authenticateInvitation resolves an invitation token to its participant.
func (s *Service) authenticateInvitation(ctx context.Context, token string) (Participant, error) {
	if !tokenShape(token, invitationPrefix) {
		return Participant{}, fault.Unauthenticated
	}
	hash := hashToken(token)
	var stored string
	p, err := s.scanParticipant(s.db.QueryRowContext(ctx,
		`SELECT `+participantColumns+`, token_hash FROM participants WHERE token_hash = $1`, hash), &stored)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Participant{}, fault.Unauthenticated
	}
	if err != nil {
		return Participant{}, database.Classify(fmt.Errorf("sessions: invitation lookup: %w", err))
	}
	if p.Revoked {
		return Participant{}, fault.Revoked
	}
	if !s.now().Before(p.ExpiresAt) {
		return Participant{}, fault.Expired
	}
	return p, nil
}

// Authorize checks that principal p may perform action a in session id and
// returns the session and the role p acts in. A session the principal has
// no standing in is reported as fault.NotFound, so its existence is not
// revealed; a forbidden action as *access.ForbiddenError.
func (s *Service) Authorize(ctx context.Context, p Principal, id uuid.UUID, a access.Action) (Session, access.Role, error) {
	sess, c, err := s.Caller(ctx, p, id, a)
	return sess, c.Role, err
}

// Caller is Authorize for the layers that act on the session's behalf
// (documents, acts): the caller's role, name, journal actor and — when they
// take part in the session — participant ID.
func (s *Service) Caller(ctx context.Context, p Principal, id uuid.UUID, a access.Action) (Session, access.Caller, error) {
	role, pid, err := s.standing(ctx, p, id)
	if err != nil {
		return Session{}, access.Caller{}, err
	}
	if err := access.Check(role, a); err != nil {
		return Session{}, access.Caller{}, err
	}
	sess, err := s.Get(ctx, id)
	if err != nil {
		return Session{}, access.Caller{}, err
	}
	return sess, access.Caller{Actor: p.Actor(), Name: p.Name(), Role: role, ParticipantID: pid}, nil
}

// standing returns the role p holds in session id and, when p takes part in
// it, their participant ID. A staff member stands in a session they created
// or were assigned to, with their staff role — an assignment made for
// another role (theirs has changed since) gives no standing; an admin
// stands in every session without taking part.
func (s *Service) standing(ctx context.Context, p Principal, id uuid.UUID) (access.Role, uuid.UUID, error) {
	switch {
	case p.Participant != nil:
		if p.Participant.SessionID != id {
			return "", uuid.Nil, fmt.Errorf("session %s: %w", id, fault.NotFound)
		}
		return p.Participant.Role, p.Participant.ID, nil
	case p.Staff != nil:
		if p.Staff.Role == access.Admin {
			return access.Admin, uuid.Nil, nil
		}
		var (
			createdBy, kind string
			pid             sql.NullString
		)
		err := s.db.QueryRowContext(ctx, `SELECT created_by, kind,
			(SELECT p.id FROM participants p WHERE p.session_id = s.id AND p.staff_id = $2 AND p.role = $3 AND p.revoked_at IS NULL)
			FROM sessions s WHERE s.id = $1`, id.String(), p.Staff.ID.String(), string(p.Staff.Role)).Scan(&createdBy, &kind, &pid)
		if errors.Is(err, sql.ErrNoRows) {
			return "", uuid.Nil, fmt.Errorf("session %s: %w", id, fault.NotFound)
		}
		if err != nil {
			return "", uuid.Nil, fmt.Errorf("sessions: %w", err)
		}
		if pid.Valid {
			v, _ := uuid.Parse(pid.String)
			return p.Staff.Role, v, nil
		}
		if createdBy == p.Staff.ID.String() && p.Staff.Role.InKind(access.Kind(kind)) {
			return p.Staff.Role, uuid.Nil, nil
		}
		return "", uuid.Nil, fmt.Errorf("session %s: %w", id, fault.NotFound)
	}
	return "", uuid.Nil, fault.Unauthenticated
}

// RoleIn returns the role p holds in session id, for layers (documents)
// that need it without a specific action.
func (s *Service) RoleIn(ctx context.Context, p Principal, id uuid.UUID) (access.Role, error) {
	role, _, err := s.standing(ctx, p, id)
	return role, err
}
