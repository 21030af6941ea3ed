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

// NewSession is what a caller supplies to create a session.
type NewSession struct {
	Kind        access.Kind `json:"kind"`
	Title       string      `json:"title"`
	CaseNumber  string      `json:"case_number,omitempty"`
	ActType     string      `json:"act_type,omitempty"`
	ScheduledAt *time.Time  `json:"scheduled_at,omitempty"`
	Public      bool        `json:"public,omitempty"`
}

func (n *NewSession) validate() error {
	n.Title = strings.TrimSpace(n.Title)
	n.CaseNumber = strings.TrimSpace(n.CaseNumber)
	switch {
	case !n.Kind.Valid():
		return invalid("kind", "must be %q or %q", access.Hearing, access.Notarisation)
	case n.Title == "":
		return invalid("title", "is required")
	case len(n.Title) > 300:
		return invalid("title", "must be at most 300 characters")
	case len(n.CaseNumber) > 100:
		return invalid("case_number", "must be at most 100 characters")
	case n.Kind == access.Notarisation && !slices.Contains(ActTypes, n.ActType):
		return invalid("act_type", "a notarial act needs act_type, one of %v", ActTypes)
	case n.Kind == access.Hearing && n.ActType != "":
		return invalid("act_type", "applies only to notarial acts")
	case n.Kind == access.Notarisation && n.Public:
		return invalid("public", "only hearings can be public")
	}
	return nil
}

// Create schedules a new session. Only staff create sessions: clerks and
// judges hearings, notaries notarial acts, admins either.
func (s *Service) Create(ctx context.Context, p Principal, n NewSession) (Session, error) {
	if p.Staff == nil {
		return Session{}, &access.ForbiddenError{Role: roleOf(p), Action: access.CreateSession}
	}
	if err := n.validate(); err != nil {
		return Session{}, err
	}
	if !access.MayCreate(p.Staff.Role, n.Kind) {
		return Session{}, &access.ForbiddenError{Role: p.Staff.Role, Action: access.CreateSession}
	}
	sess := Session{
		ID: uuid.New(), Kind: n.Kind, Title: n.Title, CaseNumber: n.CaseNumber, ActType: n.ActType,
		Public: n.Public, State: Scheduled, CreatedBy: p.Staff.ID, CreatedAt: s.now(),
	}
	if n.ScheduledAt != nil {
		t := n.ScheduledAt.UTC().Truncate(time.Microsecond)
		sess.ScheduledAt = &t
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id, kind, title, case_number, act_type, scheduled_at, public, state, created_by, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			sess.ID.String(), string(sess.Kind), sess.Title, sess.CaseNumber, sess.ActType,
			nullTime(sess.ScheduledAt), sess.Public, string(sess.State), sess.CreatedBy.String(), database.Micros(sess.CreatedAt),
		); err != nil {
			return fmt.Errorf("sessions: create: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{
			SessionID: sess.ID, Actor: p.Actor(), Action: "session.created", Details: sess,
		})
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

func roleOf(p Principal) access.Role {
	switch {
	case p.Staff != nil:
		return p.Staff.Role
	case p.Participant != nil:
		return p.Participant.Role
	}
	return ""
}

func nullTime(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: database.Micros(*t), Valid: true}
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := database.Time(v.Int64)
	return &t
}

const sessionColumns = `id, kind, title, case_number, act_type, scheduled_at, public, state, created_by, created_at, opened_at, closed_at`

func scanSession(row interface{ Scan(...any) error }) (Session, error) {
	var (
		sess                        Session
		id, kind, state, createdBy  string
		created                     int64
		scheduled, opened, closedAt sql.NullInt64
	)
	if err := row.Scan(&id, &kind, &sess.Title, &sess.CaseNumber, &sess.ActType, &scheduled, &sess.Public,
		&state, &createdBy, &created, &opened, &closedAt); err != nil {
		return Session{}, err
	}
	sess.ID, _ = uuid.Parse(id)
	sess.Kind = access.Kind(kind)
	sess.State = State(state)
	sess.CreatedBy, _ = uuid.Parse(createdBy)
	sess.CreatedAt = database.Time(created)
	sess.ScheduledAt = timePtr(scheduled)
	sess.OpenedAt = timePtr(opened)
	sess.ClosedAt = timePtr(closedAt)
	return sess, nil
}

// Get returns a session without any permission check; callers authorise first.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Session, error) {
	return s.get(ctx, s.db, id)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Service) get(ctx context.Context, q querier, id uuid.UUID) (Session, error) {
	sess, err := scanSession(q.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session %s: %w", id, fault.NotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("sessions: get %s: %w", id, err)
	}
	return sess, nil
}

// Filter narrows List.
type Filter struct {
	State State
	Kind  access.Kind
	From  time.Time // scheduled at or after (zero: no bound)
	To    time.Time // scheduled before (zero: no bound)
	Limit int
}

// List returns the sessions the principal may see: for a staff member those
// they created or take part in, all for an admin, and for a participant the
// one session of their token.
func (s *Service) List(ctx context.Context, p Principal, f Filter) ([]Session, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	switch {
	case p.Participant != nil:
		where = append(where, "id = "+arg(p.Participant.SessionID.String()))
	case p.Staff != nil && p.Staff.Role == access.Admin:
	case p.Staff != nil:
		if !access.Allowed(p.Staff.Role, access.ListSessions) {
			return nil, &access.ForbiddenError{Role: p.Staff.Role, Action: access.ListSessions}
		}
		me := arg(p.Staff.ID.String())
		where = append(where, "(created_by = "+me+" OR id IN (SELECT session_id FROM participants WHERE staff_id = "+me+
			" AND role = "+arg(string(p.Staff.Role))+" AND revoked_at IS NULL))")
	default:
		return nil, fault.Unauthenticated
	}
	if f.State != "" {
		if f.State != Scheduled && f.State != Open && f.State != Closed {
			return nil, invalid("state", "must be scheduled, open or closed")
		}
		where = append(where, "state = "+arg(string(f.State)))
	}
	if f.Kind != "" {
		if !f.Kind.Valid() {
			return nil, invalid("kind", "must be hearing or notarisation")
		}
		where = append(where, "kind = "+arg(string(f.Kind)))
	}
	if !f.From.IsZero() {
		where = append(where, "scheduled_at >= "+arg(database.Micros(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, "scheduled_at < "+arg(database.Micros(f.To)))
	}
	q := `SELECT ` + sessionColumns + ` FROM sessions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q += " ORDER BY COALESCE(scheduled_at, created_at), id LIMIT " + arg(limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sessions: list: %w", err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	return out, rows.Err()
}

// Close ends a session: every connection is dropped, no one can join
// again, and the journal head is timestamped.
func (s *Service) Close(ctx context.Context, p Principal, id uuid.UUID) (Session, error) {
	if _, _, err := s.Authorize(ctx, p, id, access.Close); err != nil {
		return Session{}, err
	}
	var sess Session
	// Whoever is still connected is disconnected by the close, which says
	// so: nothing is journalled after session.closed.
	connected := s.live.connectedIn(id)
	slices.SortFunc(connected, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if sess, err = s.get(ctx, tx, id); err != nil {
			return err
		}
		if sess.State == Closed {
			return conflict("session is already closed")
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET state = $1, closed_at = $2 WHERE id = $3`,
			string(Closed), database.Micros(now), id.String()); err != nil {
			return fmt.Errorf("sessions: close: %w", err)
		}
		sess.State, sess.ClosedAt = Closed, &now
		if err := s.closeContactsTx(ctx, tx, sess); err != nil {
			return err
		}
		_, err = s.journal.AppendTx(ctx, tx, journal.Record{SessionID: id, Actor: p.Actor(), Action: "session.closed",
			Details: map[string]any{"disconnected": connected}})
		return err
	})
	if err != nil {
		return Session{}, err
	}
	s.pokeMail()
	n := s.notify()
	n.Notify(id, nil, EventSessionClosed, mustJSON(sess))
	for _, pid := range s.live.connectedIn(id) {
		n.Disconnect(id, pid, "session_closed")
	}
	s.live.forget(id)
	if s.anchor != nil {
		// The close is the moment the record is complete; timestamp it.
		// A failure is logged: the hourly anchoring will cover it.
		if err := s.anchor(ctx); err != nil {
			s.log.Error("journal anchor at session close failed", "session", id, "err", err)
		}
	}
	return sess, nil
}

// requireNotClosed refuses changes to a closed session.
func requireNotClosed(sess Session) error {
	if sess.State == Closed {
		return conflict("session %s is closed", sess.ID)
	}
	return nil
}

// record journals a change to a session inside the change's transaction,
// then refuses it (fault.Conflict) if the session is closed. The order is
// what makes the check hold: the journal head stays locked from the append
// to the commit, and a close journals under the same lock, so either the
// close committed before this append and is seen here, or it waits and is
// journalled after this change. Nothing is ever journalled after
// session.closed.
func (s *Service) record(ctx context.Context, tx *sql.Tx, rec journal.Record) (journal.Entry, error) {
	e, err := s.journal.AppendTx(ctx, tx, rec)
	if err != nil {
		return journal.Entry{}, err
	}
	sess, err := s.get(ctx, tx, rec.SessionID)
	if err != nil {
		return journal.Entry{}, err
	}
	return e, requireNotClosed(sess)
}
