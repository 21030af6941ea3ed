package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
)

// CredentialDisconnecter is what a Notifier also implements when it can
// close just the connections one credential authenticated (a signed-out
// browser, a revoked API token), leaving the same person's other devices
// connected. The signalling server does.
type CredentialDisconnecter interface {
	DisconnectCredential(ref, reason string)
}

func (s *Service) disconnectCredential(ref, reason string) {
	if d, ok := s.notify().(CredentialDisconnecter); ok {
		d.DisconnectCredential(ref, reason)
	}
}

// sweepState remembers up to when the sweeps have looked; the lock guards
// only that time, never a query.
type sweepState struct {
	mu    sync.Mutex
	since time.Time
}

// sweepOverlap widens each sweep's window backwards, for writers whose
// clock (another process: the command line) runs a little behind.
const sweepOverlap = 2 * time.Second

// maxRevalidations bounds one sweep's calls to the provider.
const maxRevalidations = 200

// Sweep makes what ended elsewhere or by time take effect on the live
// connections of this process: the connections of credentials that were
// revoked or expired since the last sweep — by `chamber staff revoke` in
// another process, or by the clock — and of staff revoked since then are
// closed. It then asks the provider about the browser sessions that are
// due (Config.Revalidate) and ends the sign-ins it refuses, and purges
// expired join tickets and sign-in attempts. Run it every few seconds
// (RunSweeps); a credential that ends in this process takes effect at once.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	s.sweep.mu.Lock()
	since := s.sweep.since
	s.sweep.mu.Unlock()
	from, to := database.Micros(since.Add(-sweepOverlap)), database.Micros(now)
	if err := s.closeEnded(ctx, from, to); err != nil {
		return err
	}
	// Overlapping sweeps only close some connections twice, which is
	// harmless; the window never moves backwards.
	s.sweep.mu.Lock()
	if now.After(s.sweep.since) {
		s.sweep.since = now
	}
	s.sweep.mu.Unlock()
	s.revalidateDue(ctx, now)
	if _, err := s.db.ExecContext(ctx, `DELETE FROM join_tickets WHERE expires_at < $1`, to); err != nil {
		return fmt.Errorf("sessions: purge join tickets: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sign_in_attempts WHERE expires_at < $1`, to); err != nil {
		return fmt.Errorf("sessions: purge sign-in attempts: %w", err)
	}
	return nil
}

// closeEnded closes the connections of whatever ended in [from, to].
func (s *Service) closeEnded(ctx context.Context, from, to int64) error {
	idle := s.browserIdle.Microseconds()
	ended := []struct {
		kind   CredentialKind
		reason string
		query  string
		args   []any
	}{
		{ByBrowser, "token_revoked", `SELECT id FROM browser_sessions WHERE ended_at BETWEEN $1 AND $2`, []any{from, to}},
		{ByBrowser, "token_expired", `SELECT id FROM browser_sessions WHERE ended_at IS NULL AND (expires_at BETWEEN $1 AND $2 OR last_seen_at BETWEEN $3 AND $4)`,
			[]any{from, to, from - idle, to - idle}},
		{ByAPIToken, "token_revoked", `SELECT id FROM api_tokens WHERE revoked_at BETWEEN $1 AND $2`, []any{from, to}},
		{ByAPIToken, "token_expired", `SELECT id FROM api_tokens WHERE revoked_at IS NULL AND expires_at BETWEEN $1 AND $2`, []any{from, to}},
	}
	for _, e := range ended {
		ids, err := s.ids(ctx, e.query, e.args...)
		if err != nil {
			return err
		}
		for _, id := range ids {
			s.disconnectCredential(Credential{Kind: e.kind, ID: id}.Ref(), e.reason)
		}
	}
	staff, err := s.ids(ctx, `SELECT id FROM staff WHERE revoked_at BETWEEN $1 AND $2`, from, to)
	if err != nil {
		return err
	}
	for _, id := range staff {
		s.disconnectStaff(ctx, id, "token_revoked")
	}
	return nil
}

func (s *Service) ids(ctx context.Context, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sessions: sweep: %w", err)
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if id, err := uuid.Parse(v); err == nil {
			out = append(out, id)
		}
	}
	return out, rows.Err()
}

// revalidateDue asks the provider about every live OpenID browser session
// not checked for RevalidateEvery. A refusal ends all of that staff
// member's sign-ins; an outage of the provider changes nothing.
func (s *Service) revalidateDue(ctx context.Context, now time.Time) {
	if s.revalidate == nil {
		return
	}
	type due struct {
		id, staff uuid.UUID
		refresh   string
	}
	var list []due
	rows, err := s.db.QueryContext(ctx, `SELECT id, staff_id, refresh_token FROM browser_sessions
		WHERE ended_at IS NULL AND refresh_token <> '' AND expires_at > $1 AND last_seen_at > $2 AND checked_at <= $3
		ORDER BY checked_at LIMIT $4`,
		database.Micros(now), database.Micros(now.Add(-s.browserIdle)), database.Micros(now.Add(-s.revalidateEvery)), maxRevalidations)
	if err != nil {
		s.log.Error("finding browser sessions to revalidate", "err", err)
		return
	}
	for rows.Next() {
		var d due
		var id, staff string
		if err := rows.Scan(&id, &staff, &d.refresh); err != nil {
			break
		}
		d.id, _ = uuid.Parse(id)
		d.staff, _ = uuid.Parse(staff)
		list = append(list, d)
	}
	rows.Close()
	refused := map[uuid.UUID]bool{}
	for _, d := range list {
		if refused[d.staff] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		next, err := s.revalidate(cctx, d.refresh)
		cancel()
		switch {
		case errors.Is(err, fault.Revoked):
			refused[d.staff] = true
			s.log.Warn("the identity provider refused a staff member's account: signing them out", "staff", d.staff, "err", err)
			if err := s.EndStaffSignIns(ctx, d.staff, "provider_refused"); err != nil {
				s.log.Error("ending the sign-ins of a refused account", "staff", d.staff, "err", err)
			}
		case err != nil:
			s.log.Warn("cannot revalidate a browser session with the identity provider; will retry", "browser_session", d.id, "err", err)
		default:
			if _, err := s.db.ExecContext(ctx, `UPDATE browser_sessions SET checked_at = $1, refresh_token = $2 WHERE id = $3 AND ended_at IS NULL`,
				database.Micros(s.now()), next, d.id.String()); err != nil {
				s.log.Error("recording a revalidation", "browser_session", d.id, "err", err)
			}
		}
	}
}

// RunSweeps sweeps every interval until ctx ends.
func (s *Service) RunSweeps(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("sweeping credentials", "err", err)
			}
		}
	}
}
