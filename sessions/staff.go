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

// AddStaff creates a staff member and returns its bearer token, which is
// shown this once and stored only as a hash.
func (s *Service) AddStaff(ctx context.Context, name string, role access.Role) (Staff, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return Staff{}, "", invalid("name", "a name of 1 to 200 characters is required")
	}
	if !role.IsStaff() {
		return Staff{}, "", invalid("role", "%q is not a staff role (want one of %v)", role, access.StaffRoles)
	}
	st := Staff{ID: uuid.New(), Name: name, Role: role, CreatedAt: s.now()}
	token, hash := newToken(staffPrefix)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			st.ID.String(), st.Name, string(st.Role), hash, database.Micros(st.CreatedAt)); err != nil {
			return fmt.Errorf("sessions: add staff: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{
			Actor: "system", Action: "staff.added",
			Details: map[string]string{"staff_id": st.ID.String(), "name": st.Name, "role": string(st.Role)},
		})
		return err
	})
	if err != nil {
		return Staff{}, "", err
	}
	return st, token, nil
}

// ListStaff returns every staff member, revoked ones included.
func (s *Service) ListStaff(ctx context.Context) ([]Staff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, role, created_at, revoked_at FROM staff ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sessions: list staff: %w", err)
	}
	defer rows.Close()
	var out []Staff
	for rows.Next() {
		st, err := scanStaff(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

func scanStaff(row interface{ Scan(...any) error }) (Staff, error) {
	var (
		st       Staff
		id, role string
		created  int64
		revoked  sql.NullInt64
	)
	if err := row.Scan(&id, &st.Name, &role, &created, &revoked); err != nil {
		return Staff{}, err
	}
	st.ID, _ = uuid.Parse(id)
	st.Role = access.Role(role)
	st.CreatedAt = database.Time(created)
	st.Revoked = revoked.Valid
	return st, nil
}

// RevokeStaff makes a staff member's token stop working. Revoking twice
// is not an error.
func (s *Service) RevokeStaff(ctx context.Context, id uuid.UUID) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE staff SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`,
			database.Micros(s.now()), id.String())
		if err != nil {
			return fmt.Errorf("sessions: revoke staff: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff WHERE id = $1`, id.String()).Scan(&exists); err != nil {
				return err
			}
			if exists == 0 {
				return fmt.Errorf("staff member %s: %w", id, fault.NotFound)
			}
			return nil
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{
			Actor: "system", Action: "staff.revoked", Details: map[string]string{"staff_id": id.String()},
		})
		return err
	})
}

// authenticateStaff resolves a staff token.
func (s *Service) authenticateStaff(ctx context.Context, token string) (Staff, error) {
	if !tokenShape(token, staffPrefix) {
		return Staff{}, fault.Unauthenticated
	}
	hash := hashToken(token)
	var stored string
	row := s.db.QueryRowContext(ctx, `SELECT token_hash, id, name, role, created_at, revoked_at FROM staff WHERE token_hash = $1`, hash)
	var (
		st       Staff
		id, role string
		created  int64
		revoked  sql.NullInt64
	)
	err := row.Scan(&stored, &id, &st.Name, &role, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Staff{}, fault.Unauthenticated
	}
	if err != nil {
		return Staff{}, database.Classify(fmt.Errorf("sessions: staff lookup: %w", err))
	}
	if revoked.Valid {
		return Staff{}, fault.Revoked
	}
	st.ID, _ = uuid.Parse(id)
	st.Role = access.Role(role)
	st.CreatedAt = database.Time(created)
	return st, nil
}

// tx runs f in a transaction and commits it when f succeeds.
func (s *Service) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.db.InTx(ctx, f)
}
