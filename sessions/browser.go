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
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// Sign-in methods of a browser session.
const (
	SignInOpenID      = "openid"      // through the configured OpenID provider
	SignInDevelopment = "development" // the development sign-in (no provider configured)
	SignInBootstrap   = "bootstrap"   // the one-time link that creates the first administrator
)

// BrowserSession is a staff member's console sign-in. Its cookie is shown
// once, to the browser, and stored only as its SHA-256.
type BrowserSession struct {
	ID        uuid.UUID `json:"id"`
	StaffID   uuid.UUID `json:"staff_id"`
	Method    string    `json:"method"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the absolute end; IdleExpiresAt moves with every request.
	ExpiresAt     time.Time `json:"expires_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// IDToken is the provider's ID token, the hint of an RP-initiated logout.
	IDToken string `json:"-"`
	// AuthTime is when the person last authenticated at the provider (an
	// OpenID sign-in or a re-authentication); zero for the development and
	// bootstrap sign-ins without a provider. Signing with an identity
	// Chamber holds asks for it to be recent.
	AuthTime time.Time `json:"auth_time,omitzero"`
	// AuthTimeSource says where AuthTime comes from: AuthTimeClaim (the ID
	// token's auth_time) or AuthTimeExchange (the provider omitted it: the
	// moment the code was exchanged).
	AuthTimeSource string `json:"auth_time_source,omitempty"`
}

// Where a sign-in's AuthTime comes from.
const (
	AuthTimeClaim    = "auth_time"
	AuthTimeExchange = "code_exchange"
)

// SignIn is what a browser session is started with.
type SignIn struct {
	Method string
	// IDToken and RefreshToken (sealed by the provider's client) come from
	// an OpenID sign-in; the refresh token lets Chamber ask the provider
	// whether the account is still enabled.
	IDToken, RefreshToken string
	// AuthTime and AuthTimeSource: see BrowserSession.
	AuthTime       time.Time
	AuthTimeSource string
}

// StartBrowserSession signs a staff member in: it returns the session and
// the cookie value, and journals the sign-in.
func (s *Service) StartBrowserSession(ctx context.Context, staffID uuid.UUID, in SignIn) (BrowserSession, string, error) {
	cookie, hash := newToken(browserPrefix)
	now := s.now()
	b := BrowserSession{ID: uuid.New(), StaffID: staffID, Method: in.Method, CreatedAt: now,
		ExpiresAt: now.Add(s.browserTTL), IdleExpiresAt: now.Add(s.browserIdle), IDToken: in.IDToken,
		AuthTime: in.AuthTime, AuthTimeSource: in.AuthTimeSource}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st, err := s.staffWhere(ctx, tx, `id = $1`, staffID.String())
		if err != nil {
			return err
		}
		if st.Revoked {
			return fmt.Errorf("staff member %s: %w", staffID, fault.Revoked)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO browser_sessions (id, staff_id, token_hash, method, created_at, expires_at, last_seen_at, checked_at, id_token, refresh_token, auth_time, auth_time_source)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			b.ID.String(), staffID.String(), hash, in.Method, database.Micros(now), database.Micros(b.ExpiresAt), database.Micros(now),
			database.Micros(now), in.IDToken, in.RefreshToken, authMicros(in.AuthTime), in.AuthTimeSource); err != nil {
			return fmt.Errorf("sessions: start browser session: %w", err)
		}
		details := map[string]any{"staff_id": staffID, "method": in.Method, "browser_session": b.ID}
		if !in.AuthTime.IsZero() {
			details["auth_time"], details["auth_time_source"] = in.AuthTime.UTC(), in.AuthTimeSource
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{Actor: "staff:" + staffID.String(), Action: "staff.signed_in", Details: details})
		return err
	})
	if err != nil {
		return BrowserSession{}, "", err
	}
	return b, cookie, nil
}

// authMicros stores an unknown auth_time as 0.
func authMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return database.Micros(t)
}

// Reauthentication is what a browser session learns from the provider
// when its person authenticated there again (before a signature).
type Reauthentication struct {
	// Subject is the account that authenticated ("issuer|subject"): it
	// must be the session's staff member's external subject.
	Subject string
	// AuthTime is the ID token's auth_time; it replaces the session's only
	// when it is later.
	AuthTime time.Time
	// IDToken and RefreshToken (sealed) replace the session's when not
	// empty: the newest are the logout hint and the revalidation grant.
	IDToken, RefreshToken string
}

// ErrAnotherPerson: a re-authentication came back with an account that is
// not the browser session's staff member.
var ErrAnotherPerson = errors.New("sessions: another account re-authenticated")

// Reauthenticated records a new authentication at the provider on a live
// browser session and journals it. auth_time only ever moves forward. An
// account other than the session's staff member's is ErrAnotherPerson,
// and nothing is recorded (the caller ends the session).
func (s *Service) Reauthenticated(ctx context.Context, id uuid.UUID, re Reauthentication) error {
	if re.AuthTime.IsZero() {
		return errors.New("sessions: a re-authentication without auth_time")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var staffID, subject string
		var ended sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT b.staff_id, COALESCE(s.external_subject, ''), b.ended_at FROM browser_sessions b JOIN staff s ON s.id = b.staff_id WHERE b.id = $1`,
			id.String()).Scan(&staffID, &subject, &ended)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("browser session %s: %w", id, fault.NotFound)
		}
		if err != nil {
			return fmt.Errorf("sessions: re-authentication: %w", err)
		}
		if ended.Valid {
			return fault.Revoked
		}
		if subject == "" || subject != re.Subject {
			return ErrAnotherPerson
		}
		if _, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET auth_time = $1, auth_time_source = $2 WHERE id = $3 AND auth_time < $1`,
			database.Micros(re.AuthTime), AuthTimeClaim, id.String()); err != nil {
			return fmt.Errorf("sessions: re-authentication: %w", err)
		}
		if re.IDToken != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET id_token = $1 WHERE id = $2`, re.IDToken, id.String()); err != nil {
				return fmt.Errorf("sessions: re-authentication: %w", err)
			}
		}
		if re.RefreshToken != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET refresh_token = $1 WHERE id = $2`, re.RefreshToken, id.String()); err != nil {
				return fmt.Errorf("sessions: re-authentication: %w", err)
			}
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{Actor: "staff:" + staffID, Action: "staff.reauthenticated",
			Details: map[string]any{"staff_id": staffID, "browser_session": id, "auth_time": re.AuthTime.UTC()}})
		return err
	})
}

// seenWrites bounds how often a browser session's last request is written.
const seenWrites = 30 * time.Second

// AuthenticateBrowser resolves a console cookie to its staff member. A
// session past its absolute or idle limit is fault.Expired; one signed out
// or ended by a revocation, fault.Revoked.
func (s *Service) AuthenticateBrowser(ctx context.Context, cookie string) (Principal, BrowserSession, error) {
	if !tokenShape(cookie, browserPrefix) {
		return Principal{}, BrowserSession{}, fault.Unauthenticated
	}
	hash := hashToken(cookie)
	var (
		stored, id, method, idToken, authSource string
		created, expires, seen, authTime        int64
		ended                                   sql.NullInt64
	)
	st, err := scanStaff(s.db.QueryRowContext(ctx, `SELECT s.id, s.name, s.role, s.external_subject, s.created_at, s.revoked_at,
		b.token_hash, b.id, b.method, b.id_token, b.created_at, b.expires_at, b.last_seen_at, b.ended_at, b.auth_time, b.auth_time_source
		FROM browser_sessions b JOIN staff s ON s.id = b.staff_id WHERE b.token_hash = $1`, hash),
		&stored, &id, &method, &idToken, &created, &expires, &seen, &ended, &authTime, &authSource)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Principal{}, BrowserSession{}, fault.Unauthenticated
	}
	if err != nil {
		return Principal{}, BrowserSession{}, database.Classify(fmt.Errorf("sessions: browser session lookup: %w", err))
	}
	b := BrowserSession{StaffID: st.ID, Method: method, CreatedAt: database.Time(created), ExpiresAt: database.Time(expires), IDToken: idToken,
		AuthTimeSource: authSource}
	if authTime > 0 {
		b.AuthTime = database.Time(authTime)
	}
	b.ID, _ = uuid.Parse(id)
	now := s.now()
	lastSeen := database.Time(seen)
	switch {
	case ended.Valid || st.Revoked:
		return Principal{}, BrowserSession{}, fault.Revoked
	case !now.Before(b.ExpiresAt) || !now.Before(lastSeen.Add(s.browserIdle)):
		return Principal{}, BrowserSession{}, fault.Expired
	}
	if now.Sub(lastSeen) > seenWrites {
		if _, err := s.db.ExecContext(ctx, `UPDATE browser_sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL`,
			database.Micros(now), id); err != nil {
			s.log.Warn("recording a browser session's use", "browser_session", id, "err", err)
		} else {
			lastSeen = now
		}
	}
	b.IdleExpiresAt = lastSeen.Add(s.browserIdle)
	cred := Credential{Kind: ByBrowser, ID: b.ID, ExpiresAt: b.ExpiresAt}
	if b.IdleExpiresAt.Before(cred.ExpiresAt) {
		cred.ExpiresAt = b.IdleExpiresAt
	}
	return Principal{Staff: &st, Credential: cred}, b, nil
}

// EndBrowserSession signs a browser session out (reason "signed_out") or
// ends it for another reason; the join tickets it minted die with it and
// the connections they opened close. It returns the session, whose ID
// token the provider's logout wants as a hint.
func (s *Service) EndBrowserSession(ctx context.Context, id uuid.UUID, reason string) (BrowserSession, error) {
	ref := Credential{Kind: ByBrowser, ID: id}.Ref()
	var b BrowserSession
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var staffID, method, idToken string
		var ended sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT staff_id, method, id_token, ended_at FROM browser_sessions WHERE id = $1`, id.String()).
			Scan(&staffID, &method, &idToken, &ended)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("browser session %s: %w", id, fault.NotFound)
		}
		if err != nil {
			return fmt.Errorf("sessions: end browser session: %w", err)
		}
		b = BrowserSession{ID: id, Method: method, IDToken: idToken}
		b.StaffID, _ = uuid.Parse(staffID)
		if ended.Valid {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET ended_at = $1, end_reason = $2, refresh_token = '' WHERE id = $3`,
			database.Micros(s.now()), reason, id.String()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM join_tickets WHERE credential = $1`, ref); err != nil {
			return err
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{Actor: "staff:" + staffID, Action: "staff.signed_out",
			Details: map[string]any{"staff_id": staffID, "browser_session": id, "reason": reason}})
		return err
	})
	if err != nil {
		return BrowserSession{}, err
	}
	s.disconnectCredential(ref, "token_revoked")
	return b, nil
}

// EndStaffSignIns ends every browser session of a staff member — the
// provider says the account is disabled — and closes their live
// connections. Their API tokens are Chamber's own and stay: revoking the
// staff member ends those.
func (s *Service) EndStaffSignIns(ctx context.Context, staffID uuid.UUID, reason string) error {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE browser_sessions SET ended_at = $1, end_reason = $2, refresh_token = '' WHERE staff_id = $3 AND ended_at IS NULL`,
			database.Micros(s.now()), reason, staffID.String())
		if err != nil {
			return fmt.Errorf("sessions: end sign-ins: %w", err)
		}
		n, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `DELETE FROM join_tickets WHERE staff_id = $1 AND credential LIKE $2`, staffID.String(), string(ByBrowser)+":%"); err != nil {
			return err
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{Actor: "system", Action: "staff.signed_out",
			Details: map[string]any{"staff_id": staffID, "reason": reason, "browser_sessions_ended": n}})
		return err
	})
	if err != nil {
		return err
	}
	s.disconnectStaff(ctx, staffID, "token_revoked")
	return nil
}

// SignInAttempt is an OpenID sign-in under way, between the redirect to
// the provider and its answer.
type SignInAttempt struct {
	State, Nonce, Verifier string
	// ReturnTo is the console path to land on afterwards.
	ReturnTo string
	// Bootstrap makes the signing-in account the first administrator.
	Bootstrap bool
	// Reauth names the browser session this attempt re-authenticates
	// (uuid.Nil: a new sign-in). The session cookie is SameSite=Strict and
	// does not come back with the provider's redirect: the attempt, bound
	// to the browser by its state cookie, carries the session instead.
	Reauth uuid.UUID
	// StartedAt is when the attempt was saved (set by the store): a
	// re-authentication's auth_time must not be older.
	StartedAt time.Time
}

// Bounds of pending sign-ins: each lives ten minutes, and there are never
// more than maxAttempts at once (the HTTP floor also limits them per
// client address).
const (
	attemptTTL  = 10 * time.Minute
	maxAttempts = 10000
)

// SaveSignInAttempt stores a sign-in under way; its state is stored as a
// hash. Expired attempts are purged first.
func (s *Service) SaveSignInAttempt(ctx context.Context, a SignInAttempt) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sign_in_attempts WHERE expires_at < $1`, database.Micros(now)); err != nil {
			return fmt.Errorf("sessions: sign-in attempts: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sign_in_attempts`).Scan(&n); err != nil {
			return fmt.Errorf("sessions: sign-in attempts: %w", err)
		}
		if n >= maxAttempts {
			return &fault.Error{Kind: fault.RateLimited, Message: "too many sign-ins under way; retry in a minute", RetryAfter: time.Minute}
		}
		reauth := ""
		if a.Reauth != uuid.Nil {
			reauth = a.Reauth.String()
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sign_in_attempts (state_hash, nonce, verifier, return_to, bootstrap, created_at, expires_at, reauth_session)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, hashToken(a.State), a.Nonce, a.Verifier, a.ReturnTo, a.Bootstrap,
			database.Micros(now), database.Micros(now.Add(attemptTTL)), reauth)
		if err != nil {
			return fmt.Errorf("sessions: save sign-in attempt: %w", err)
		}
		return nil
	})
}

// TakeSignInAttempt returns and deletes the sign-in of this state: each
// is used once. An unknown state is fault.Unauthenticated, an old one
// fault.Expired.
func (s *Service) TakeSignInAttempt(ctx context.Context, state string) (SignInAttempt, error) {
	if state == "" || len(state) > 200 {
		return SignInAttempt{}, fault.Unauthenticated
	}
	a := SignInAttempt{State: state}
	var (
		created, expires int64
		reauth           string
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT nonce, verifier, return_to, bootstrap, created_at, expires_at, reauth_session FROM sign_in_attempts WHERE state_hash = $1`, hashToken(state)).
			Scan(&a.Nonce, &a.Verifier, &a.ReturnTo, &a.Bootstrap, &created, &expires, &reauth)
		if errors.Is(err, sql.ErrNoRows) {
			return fault.Unauthenticated
		}
		if err != nil {
			return fmt.Errorf("sessions: sign-in attempt: %w", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sign_in_attempts WHERE state_hash = $1`, hashToken(state))
		return err
	})
	if err != nil {
		return SignInAttempt{}, err
	}
	if !s.now().Before(database.Time(expires)) {
		return SignInAttempt{}, fault.Expired
	}
	a.StartedAt = database.Time(created)
	if reauth != "" {
		if a.Reauth, err = uuid.Parse(reauth); err != nil {
			return SignInAttempt{}, fmt.Errorf("sessions: sign-in attempt: %w", err)
		}
	}
	return a, nil
}

// Bootstrap creates the first administrator and signs them in, provided
// there is still no staff member at all: the check and the insert share one
// transaction, so two bootstrap links can never both succeed.
func (s *Service) Bootstrap(ctx context.Context, n NewStaff, in SignIn) (Staff, BrowserSession, string, error) {
	n.Role = access.Admin
	if err := n.validate(); err != nil {
		return Staff{}, BrowserSession{}, "", err
	}
	st := Staff{ID: uuid.New(), Name: n.Name, Role: access.Admin, ExternalSubject: n.ExternalSubject, CreatedAt: s.now()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff`).Scan(&count); err != nil {
			return fmt.Errorf("sessions: bootstrap: %w", err)
		}
		if count > 0 {
			return conflict("there is already staff: the bootstrap link works only on an empty server")
		}
		return s.insertStaff(ctx, tx, "bootstrap", st)
	})
	if err != nil {
		return Staff{}, BrowserSession{}, "", err
	}
	b, cookie, err := s.StartBrowserSession(ctx, st.ID, in)
	return st, b, cookie, err
}
