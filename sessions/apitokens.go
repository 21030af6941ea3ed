package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// API token scopes. A scope ending in ":write" includes the matching
// ":read"; the routes each one opens are listed in docs/identity-and-access.md.
const (
	ScopeSessionsRead  = "sessions:read"  // read sessions, participants, documents, journals, bundles
	ScopeSessionsWrite = "sessions:write" // create and run sessions: invite, assign, moderate, upload, sign, seal, enter
	ScopeRegisterRead  = "register:read"  // read the notarial register
	ScopeRegisterWrite = "register:write" // correct register entries
	ScopeStaffAdmin    = "staff:admin"    // manage staff and API tokens (admins only)
)

// Scopes lists every scope an API token may carry.
var Scopes = []string{ScopeSessionsRead, ScopeSessionsWrite, ScopeRegisterRead, ScopeRegisterWrite, ScopeStaffAdmin}

// HasScope reports whether granted covers want.
func HasScope(granted []string, want string) bool {
	if slices.Contains(granted, want) {
		return true
	}
	if res, ok := strings.CutSuffix(want, ":read"); ok {
		return slices.Contains(granted, res+":write")
	}
	return false
}

// API token lifetimes.
const (
	DefaultAPITokenTTL = 90 * 24 * time.Hour
	MaxAPITokenTTL     = 366 * 24 * time.Hour
)

// APIToken describes an API token; the secret itself is shown once, at
// creation, and stored only as its SHA-256.
type APIToken struct {
	ID         uuid.UUID  `json:"id"`
	StaffID    uuid.UUID  `json:"staff_id"`
	StaffName  string     `json:"staff_name"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Revoked    bool       `json:"revoked"`
}

// NewAPIToken is what an API token is made with.
type NewAPIToken struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// ExpiresAt defaults to 90 days from now; at most a year ahead.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreatedAPIToken is the answer to creating an API token: the token is
// shown this once.
type CreatedAPIToken struct {
	APIToken
	Token string `json:"token"`
}

func (s *Service) validateToken(st Staff, n *NewAPIToken) (time.Time, error) {
	n.Name = strings.TrimSpace(n.Name)
	if n.Name == "" || len(n.Name) > 100 {
		return time.Time{}, invalid("name", "a name of 1 to 100 characters says what the token is for")
	}
	if len(n.Scopes) == 0 {
		return time.Time{}, invalid("scopes", "give at least one scope of %v", Scopes)
	}
	for _, sc := range n.Scopes {
		if !slices.Contains(Scopes, sc) {
			return time.Time{}, invalid("scopes", "unknown scope %q (want %v)", sc, Scopes)
		}
		if sc == ScopeStaffAdmin && st.Role != access.Admin {
			return time.Time{}, invalid("scopes", "%s is for an admin's tokens only", ScopeStaffAdmin)
		}
	}
	now := s.now()
	expires := now.Add(DefaultAPITokenTTL)
	if n.ExpiresAt != nil {
		expires = n.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !expires.After(now) || expires.Sub(now) > MaxAPITokenTTL {
			return time.Time{}, invalid("expires_at", "must be in the future and at most a year ahead")
		}
	}
	return expires, nil
}

// AddAPIToken makes an API token for a staff member who is not revoked.
func (s *Service) AddAPIToken(ctx context.Context, actor string, staffID uuid.UUID, n NewAPIToken) (CreatedAPIToken, error) {
	st, err := s.GetStaff(ctx, staffID)
	if err != nil {
		return CreatedAPIToken{}, err
	}
	if st.Revoked {
		return CreatedAPIToken{}, conflict("staff member %s is revoked", st.Name)
	}
	expires, err := s.validateToken(st, &n)
	if err != nil {
		return CreatedAPIToken{}, err
	}
	slices.Sort(n.Scopes)
	n.Scopes = slices.Compact(n.Scopes)
	token, hash := newToken(apiTokenPrefix)
	t := APIToken{ID: uuid.New(), StaffID: st.ID, StaffName: st.Name, Name: n.Name, Scopes: n.Scopes, CreatedAt: s.now(), ExpiresAt: expires}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO api_tokens (id, staff_id, name, token_hash, scopes, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			t.ID.String(), st.ID.String(), t.Name, hash, strings.Join(t.Scopes, " "), actor, database.Micros(t.CreatedAt), database.Micros(expires)); err != nil {
			return fmt.Errorf("sessions: add api token: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{Actor: actor, Action: "api_token.created",
			Details: map[string]any{"token_id": t.ID, "staff_id": st.ID, "name": t.Name, "scopes": t.Scopes, "expires_at": expires}})
		return err
	})
	if err != nil {
		return CreatedAPIToken{}, err
	}
	return CreatedAPIToken{APIToken: t, Token: token}, nil
}

const apiTokenColumns = `t.id, t.staff_id, s.name, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at, t.revoked_at`

func scanAPIToken(row interface{ Scan(...any) error }, extra ...any) (APIToken, error) {
	var (
		t                 APIToken
		id, staffID, sc   string
		created, expires  int64
		lastUsed, revoked sql.NullInt64
	)
	if err := row.Scan(append([]any{&id, &staffID, &t.StaffName, &t.Name, &sc, &created, &expires, &lastUsed, &revoked}, extra...)...); err != nil {
		return APIToken{}, err
	}
	t.ID, _ = uuid.Parse(id)
	t.StaffID, _ = uuid.Parse(staffID)
	t.Scopes = strings.Fields(sc)
	t.CreatedAt, t.ExpiresAt = database.Time(created), database.Time(expires)
	t.LastUsedAt = timePtr(lastUsed)
	t.Revoked = revoked.Valid
	return t, nil
}

// ListAPITokens lists the API tokens of one staff member, or of everyone
// when staffID is uuid.Nil.
func (s *Service) ListAPITokens(ctx context.Context, staffID uuid.UUID) ([]APIToken, error) {
	q := `SELECT ` + apiTokenColumns + ` FROM api_tokens t JOIN staff s ON s.id = t.staff_id`
	var args []any
	if staffID != uuid.Nil {
		q += ` WHERE t.staff_id = $1`
		args = append(args, staffID.String())
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY t.created_at, t.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sessions: list api tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken ends an API token at once, with the join tickets it
// minted and the connections they opened. Revoking twice is not an error.
func (s *Service) RevokeAPIToken(ctx context.Context, actor string, id uuid.UUID) error {
	ref := Credential{Kind: ByAPIToken, ID: id}.Ref()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, database.Micros(s.now()), id.String())
		if err != nil {
			return fmt.Errorf("sessions: revoke api token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE id = $1`, id.String()).Scan(&exists); err != nil {
				return err
			}
			if exists == 0 {
				return fmt.Errorf("api token %s: %w", id, fault.NotFound)
			}
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM join_tickets WHERE credential = $1`, ref); err != nil {
			return err
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{Actor: actor, Action: "api_token.revoked", Details: map[string]any{"token_id": id}})
		return err
	})
	if err != nil {
		return err
	}
	s.disconnectCredential(ref, "token_revoked")
	return nil
}

// usageWrites bounds how often a credential's last use is written: a busy
// automation must not turn every read into a write.
const usageWrites = time.Minute

// authenticateAPIToken resolves an API token to its staff member.
func (s *Service) authenticateAPIToken(ctx context.Context, token string) (Principal, error) {
	if !tokenShape(token, apiTokenPrefix) {
		return Principal{}, fault.Unauthenticated
	}
	hash := hashToken(token)
	var (
		stored       string
		staffRevoked sql.NullInt64
		subject      sql.NullString
		role         string
		staffCreated int64
	)
	t, err := scanAPIToken(s.db.QueryRowContext(ctx, `SELECT `+apiTokenColumns+`, t.token_hash, s.revoked_at, s.external_subject, s.role, s.created_at
		FROM api_tokens t JOIN staff s ON s.id = t.staff_id WHERE t.token_hash = $1`, hash),
		&stored, &staffRevoked, &subject, &role, &staffCreated)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Principal{}, fault.Unauthenticated
	}
	if err != nil {
		return Principal{}, database.Classify(fmt.Errorf("sessions: api token lookup: %w", err))
	}
	now := s.now()
	switch {
	case t.Revoked || staffRevoked.Valid:
		return Principal{}, fault.Revoked
	case !now.Before(t.ExpiresAt):
		return Principal{}, fault.Expired
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > usageWrites {
		if _, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2`, database.Micros(now), t.ID.String()); err != nil {
			s.log.Warn("recording an api token's use", "token", t.ID, "err", err)
		}
	}
	st := Staff{ID: t.StaffID, Name: t.StaffName, Role: access.Role(role), ExternalSubject: subject.String, CreatedAt: database.Time(staffCreated)}
	return Principal{Staff: &st, Credential: Credential{Kind: ByAPIToken, ID: t.ID, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt}}, nil
}
