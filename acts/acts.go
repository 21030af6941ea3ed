// Package acts runs the notarial act of a notarisation session: the
// embassy officer's identity checks, the lifecycle the act must follow
// (draft → identity_verified → signed_by_principals → notarised → sealed),
// the gap-free notarial number given at sealing, and the notary's register.
// The HTTP floor authenticates callers with the session layer and consults
// this package before and after every step it gates.
package acts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// State is where an act is in its life.
type State string

// The act's states, in order.
const (
	Draft              State = "draft"
	IdentityVerified   State = "identity_verified"
	SignedByPrincipals State = "signed_by_principals"
	Notarised          State = "notarised"
	Sealed             State = "sealed"
)

// Errors are fault errors: fault.NotFound, fault.Invalid naming the
// fields (code "invalid_mrz" for a bad machine-readable zone), and
// fault.Conflict for a step the act's current state does not allow.

func outOfOrder(format string, args ...any) error {
	return fault.New(fault.Conflict, format, args...)
}

// Caller is who acts, as the session layer established it.
type Caller = access.Caller

// Principal is a principal of the act, as the session layer knows them.
type Principal struct {
	ID   uuid.UUID
	Name string
}

// Config configures a Service.
type Config struct {
	DB        *database.DB
	Journal   *journal.Journal
	Store     evidence.Store
	Logger    *slog.Logger
	Retention time.Duration
	// Principals lists the act's current (not removed) principals: the
	// one way acts learns them (the session layer owns participants).
	Principals func(ctx context.Context, sessionID uuid.UUID) ([]Principal, error)
	// Documents gives the act's document as it is when the act is sealed.
	Documents DocumentSource
	// MaxStill bounds an identity still's size (default 10 MiB).
	MaxStill int64
}

// DocumentSource is what acts needs of the document layer.
type DocumentSource interface {
	Get(ctx context.Context, id uuid.UUID) (documents.Document, error)
}

// Notifier pushes an event to a session's room (the signalling server
// implements it, as for sessions and recording). The audience filter
// decides who receives it.
type Notifier interface {
	Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage)
}

type nopNotifier struct{}

func (nopNotifier) Notify(uuid.UUID, []uuid.UUID, string, json.RawMessage) {}

// notify pushes payload as typ to the session's room.
func (s *Service) notify(sessionID uuid.UUID, typ string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		s.cfg.Logger.Error("acts: event payload", "type", typ, "err", err)
		return
	}
	s.notifierMu.RLock()
	n := s.notifier
	s.notifierMu.RUnlock()
	n.Notify(sessionID, nil, typ, b)
}

// SetNotifier plugs in the signalling server, which is built after the
// act service (its hooks need it). Until then events go nowhere.
func (s *Service) SetNotifier(n Notifier) {
	if n == nil {
		n = nopNotifier{}
	}
	s.notifierMu.Lock()
	defer s.notifierMu.Unlock()
	s.notifier = n
}

// Service runs notarial acts.
type Service struct {
	cfg     Config
	catalog *catalog.Catalog
	now     func() time.Time

	notifierMu sync.RWMutex
	notifier   Notifier
}

// New returns an act service.
func New(cfg Config) *Service {
	if cfg.MaxStill <= 0 {
		cfg.MaxStill = 10 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cat := catalog.New(catalog.Config{DB: cfg.DB, Store: cfg.Store, Journal: cfg.Journal, Logger: cfg.Logger})
	return &Service{cfg: cfg, catalog: cat, now: database.Now, notifier: nopNotifier{}}
}

// Act is the notarial act of one session.
type Act struct {
	State      State      `json:"state"`
	Number     string     `json:"number,omitempty"`
	DocumentID *uuid.UUID `json:"document_id,omitempty"`
	SealedAt   *time.Time `json:"sealed_at,omitempty"`
	LegalHold  bool       `json:"legal_hold"`
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Get returns the act of a session: a draft until something happens.
func (s *Service) Get(ctx context.Context, sessionID uuid.UUID) (Act, error) {
	return s.get(ctx, s.cfg.DB, sessionID)
}

func (s *Service) get(ctx context.Context, q querier, sessionID uuid.UUID) (Act, error) {
	var (
		a        Act
		state    string
		doc, num sql.NullString
		sealed   sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT state, document_id, number, sealed_at, legal_hold FROM acts WHERE session_id = $1`,
		sessionID.String()).Scan(&state, &doc, &num, &sealed, &a.LegalHold)
	if errors.Is(err, sql.ErrNoRows) {
		return Act{State: Draft}, nil
	}
	if err != nil {
		return Act{}, database.Classify(fmt.Errorf("acts: get: %w", err))
	}
	a.State, a.Number = State(state), num.String
	if doc.Valid {
		if id, err := uuid.Parse(doc.String); err == nil {
			a.DocumentID = &id
		}
	}
	if sealed.Valid {
		t := database.Time(sealed.Int64)
		a.SealedAt = &t
	}
	return a, nil
}

// RequireOpen refuses any change to a sealed act.
func (s *Service) RequireOpen(ctx context.Context, sessionID uuid.UUID, what string) error {
	a, err := s.Get(ctx, sessionID)
	if err != nil {
		return err
	}
	if a.State == Sealed {
		return outOfOrder("the act is sealed (number %s): %s is no longer possible", a.Number, what)
	}
	return nil
}

// setState moves the act to state inside tx and journals the move.
func (s *Service) setState(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, from, to State, actor string, details map[string]any) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO acts (session_id, state) VALUES ($1, $2) ON CONFLICT (session_id) DO UPDATE SET state = excluded.state`,
		sessionID.String(), string(to)); err != nil {
		return fmt.Errorf("acts: state: %w", err)
	}
	if details == nil {
		details = map[string]any{}
	}
	details["from"], details["to"] = from, to
	_, err := s.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sessionID, Actor: actor, Action: "act.state_changed", Details: details})
	return err
}

func (s *Service) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.cfg.DB.InTx(ctx, f)
}

// retainUntil is the retention date of evidence stored now.
func (s *Service) retainUntil() time.Time {
	if s.cfg.Retention <= 0 {
		return time.Time{}
	}
	return s.now().Add(s.cfg.Retention)
}
