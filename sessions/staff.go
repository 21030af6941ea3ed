package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// NewStaff is a staff member to provision.
type NewStaff struct {
	Name string      `json:"name"`
	Role access.Role `json:"role"`
	// ExternalSubject links the account of the OpenID provider,
	// "issuer|subject", so that its sign-in finds this staff member.
	ExternalSubject string `json:"external_subject,omitempty"`
}

func (n *NewStaff) validate() error {
	n.Name = strings.TrimSpace(n.Name)
	n.ExternalSubject = strings.TrimSpace(n.ExternalSubject)
	switch {
	case n.Name == "" || len(n.Name) > 200:
		return invalid("name", "a name of 1 to 200 characters is required")
	case !n.Role.IsStaff():
		return invalid("role", "%q is not a staff role (want one of %v)", n.Role, access.StaffRoles)
	case n.ExternalSubject != "" && (len(n.ExternalSubject) > 1000 || !strings.Contains(n.ExternalSubject, "|")):
		return invalid("external_subject", "give the provider's issuer and the account's subject as issuer|subject")
	}
	return nil
}

// noToken fills the retired staff.token_hash column: it is not a hex
// SHA-256, so no token ever matches it.
func noToken(id uuid.UUID) string { return "none:" + id.String() }

// AddStaff provisions a staff member. actor is who does it, for the
// journal ("system" for the operator's command line).
func (s *Service) AddStaff(ctx context.Context, actor string, n NewStaff) (Staff, error) {
	if err := n.validate(); err != nil {
		return Staff{}, err
	}
	st := Staff{ID: uuid.New(), Name: n.Name, Role: n.Role, ExternalSubject: n.ExternalSubject, CreatedAt: s.now()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.insertStaff(ctx, tx, actor, st)
	})
	if err != nil {
		return Staff{}, err
	}
	return st, nil
}

func (s *Service) insertStaff(ctx context.Context, tx *sql.Tx, actor string, st Staff) error {
	subject := sql.NullString{String: st.ExternalSubject, Valid: st.ExternalSubject != ""}
	if subject.Valid {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff WHERE external_subject = $1`, subject).Scan(&n); err != nil {
			return fmt.Errorf("sessions: add staff: %w", err)
		}
		if n > 0 {
			return conflict("another staff member is already linked to that account")
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO staff (id, name, role, token_hash, external_subject, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		st.ID.String(), st.Name, string(st.Role), noToken(st.ID), subject, database.Micros(st.CreatedAt)); err != nil {
		return fmt.Errorf("sessions: add staff: %w", err)
	}
	_, err := s.journal.AppendTx(ctx, tx, journal.Record{
		Actor: actor, Action: "staff.added",
		Details: map[string]string{"staff_id": st.ID.String(), "name": st.Name, "role": string(st.Role), "external_subject": st.ExternalSubject},
	})
	return err
}

const staffColumns = `id, name, role, external_subject, created_at, revoked_at`

// ListStaff returns every staff member, revoked ones included.
func (s *Service) ListStaff(ctx context.Context) ([]Staff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+staffColumns+` FROM staff ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sessions: list staff: %w", err)
	}
	defer rows.Close()
	out := []Staff{}
	for rows.Next() {
		st, err := scanStaff(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// CountStaff counts the staff members who are not revoked.
func (s *Service) CountStaff(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff WHERE revoked_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sessions: count staff: %w", err)
	}
	return n, nil
}

// GetStaff returns one staff member.
func (s *Service) GetStaff(ctx context.Context, id uuid.UUID) (Staff, error) {
	return s.staffWhere(ctx, s.db, `id = $1`, id.String())
}

// StaffBySubject returns the staff member linked to an account of the
// OpenID provider ("issuer|subject").
func (s *Service) StaffBySubject(ctx context.Context, subject string) (Staff, error) {
	return s.staffWhere(ctx, s.db, `external_subject = $1`, subject)
}

func (s *Service) staffWhere(ctx context.Context, q querier, where string, arg any) (Staff, error) {
	st, err := scanStaff(q.QueryRowContext(ctx, `SELECT `+staffColumns+` FROM staff WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return Staff{}, fmt.Errorf("staff member: %w", fault.NotFound)
	}
	if err != nil {
		return Staff{}, fmt.Errorf("sessions: staff: %w", err)
	}
	return st, nil
}

func scanStaff(row interface{ Scan(...any) error }, extra ...any) (Staff, error) {
	var (
		st       Staff
		id, role string
		subject  sql.NullString
		created  int64
		revoked  sql.NullInt64
	)
	if err := row.Scan(append([]any{&id, &st.Name, &role, &subject, &created, &revoked}, extra...)...); err != nil {
		return Staff{}, err
	}
	st.ID, _ = uuid.Parse(id)
	st.Role = access.Role(role)
	st.ExternalSubject = subject.String
	st.CreatedAt = database.Time(created)
	st.Revoked = revoked.Valid
	return st, nil
}

// SetStaffRole changes a staff member's role, as the provider's role claim
// now says. Sessions they were assigned to in the old role no longer give
// them standing, so their live connections end.
func (s *Service) SetStaffRole(ctx context.Context, actor string, id uuid.UUID, role access.Role) error {
	if !role.IsStaff() {
		return invalid("role", "%q is not a staff role", role)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE staff SET role = $1 WHERE id = $2`, string(role), id.String()); err != nil {
			return fmt.Errorf("sessions: staff role: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{Actor: actor, Action: "staff.role_changed",
			Details: map[string]string{"staff_id": id.String(), "role": string(role)}})
		return err
	})
	if err != nil {
		return err
	}
	s.disconnectStaff(ctx, id, "removed")
	return nil
}

// RevokeStaff ends a staff member for good: their console sessions, API
// tokens and join tickets die in the same transaction, which is journalled,
// and their live connections close at once. The invitations they issued
// stay valid: they were issued for the court. Revoking twice is not an
// error.
func (s *Service) RevokeStaff(ctx context.Context, actor string, id uuid.UUID) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := database.Micros(s.now())
		res, err := tx.ExecContext(ctx, `UPDATE staff SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, now, id.String())
		if err != nil {
			return fmt.Errorf("sessions: revoke staff: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := s.staffWhere(ctx, tx, `id = $1`, id.String()); err != nil {
				return err
			}
			return nil
		}
		browsers, tokens, err := endCredentialsTx(ctx, tx, id, now, "staff_revoked")
		if err != nil {
			return err
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{
			Actor: actor, Action: "staff.revoked",
			Details: map[string]any{"staff_id": id, "browser_sessions_ended": browsers, "api_tokens_revoked": tokens},
		})
		return err
	})
	if err != nil {
		return err
	}
	s.disconnectStaff(ctx, id, "token_revoked")
	return nil
}

// endCredentialsTx ends every browser session, API token and join ticket
// of a staff member and counts the first two.
func endCredentialsTx(ctx context.Context, tx *sql.Tx, staffID uuid.UUID, now int64, reason string) (browsers, tokens int64, err error) {
	res, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET ended_at = $1, end_reason = $2 WHERE staff_id = $3 AND ended_at IS NULL`,
		now, reason, staffID.String())
	if err != nil {
		return 0, 0, fmt.Errorf("sessions: end browser sessions: %w", err)
	}
	browsers, _ = res.RowsAffected()
	res, err = tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE staff_id = $2 AND revoked_at IS NULL`, now, staffID.String())
	if err != nil {
		return 0, 0, fmt.Errorf("sessions: revoke api tokens: %w", err)
	}
	tokens, _ = res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM join_tickets WHERE staff_id = $1`, staffID.String()); err != nil {
		return 0, 0, fmt.Errorf("sessions: drop join tickets: %w", err)
	}
	return browsers, tokens, nil
}

// disconnectStaff closes every live connection of a staff member, in every
// session they take part in; reason is the signalling Bye code.
func (s *Service) disconnectStaff(ctx context.Context, staffID uuid.UUID, reason string) {
	rows, err := s.db.QueryContext(ctx, `SELECT session_id, id FROM participants WHERE staff_id = $1 AND revoked_at IS NULL`, staffID.String())
	if err != nil {
		s.log.Error("finding a staff member's connections", "staff", staffID, "err", err)
		return
	}
	type pair struct{ session, participant uuid.UUID }
	var found []pair
	for rows.Next() {
		var sid, pid string
		if err := rows.Scan(&sid, &pid); err != nil {
			break
		}
		p := pair{}
		p.session, _ = uuid.Parse(sid)
		p.participant, _ = uuid.Parse(pid)
		found = append(found, p)
	}
	if err := rows.Err(); err != nil {
		s.log.Error("finding a staff member's connections", "staff", staffID, "err", err)
	}
	rows.Close()
	n := s.notify()
	for _, p := range found {
		n.Disconnect(p.session, p.participant, reason)
	}
}

// tx runs f in a transaction and commits it when f succeeds.
func (s *Service) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.db.InTx(ctx, f)
}
