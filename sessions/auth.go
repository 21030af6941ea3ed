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

// Authenticate resolves a bearer token — a staff token or an invitation
// token — to the principal it belongs to.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	switch TokenKind(token) {
	case "staff":
		st, err := s.authenticateStaff(ctx, token)
		if err != nil {
			return Principal{}, err
		}
		return Principal{Staff: &st}, nil
	case "invitation":
		p, err := s.authenticateInvitation(ctx, token)
		if err != nil {
			return Principal{}, err
		}
		return Principal{Participant: &p}, nil
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
	role, err := s.roleIn(ctx, p, id)
	if err != nil {
		return Session{}, "", err
	}
	if err := access.Check(role, a); err != nil {
		return Session{}, "", err
	}
	sess, err := s.Get(ctx, id)
	if err != nil {
		return Session{}, "", err
	}
	return sess, role, nil
}

// roleIn returns the role p holds in session id.
func (s *Service) roleIn(ctx context.Context, p Principal, id uuid.UUID) (access.Role, error) {
	switch {
	case p.Participant != nil:
		if p.Participant.SessionID != id {
			return "", fmt.Errorf("session %s: %w", id, fault.NotFound)
		}
		return p.Participant.Role, nil
	case p.Staff != nil:
		if p.Staff.Role == access.Admin {
			return access.Admin, nil
		}
		var createdBy string
		err := s.db.QueryRowContext(ctx, `SELECT created_by FROM sessions WHERE id = $1`, id.String()).Scan(&createdBy)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && createdBy != p.Staff.ID.String()) {
			return "", fmt.Errorf("session %s: %w", id, fault.NotFound)
		}
		if err != nil {
			return "", database.Classify(fmt.Errorf("sessions: role: %w", err))
		}
		return p.Staff.Role, nil
	}
	return "", fault.Unauthenticated
}

// RoleIn is the exported form of roleIn for other layers (documents) that
// need the caller's role without a specific action.
func (s *Service) RoleIn(ctx context.Context, p Principal, id uuid.UUID) (access.Role, error) {
	return s.roleIn(ctx, p, id)
}
