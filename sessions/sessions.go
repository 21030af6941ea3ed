// Package sessions runs hearings and notarial acts: staff and their
// credentials (console sessions, API tokens, join tickets), sessions and
// their states, assignments and invitations, the waiting room, moderation,
// consultation rooms, interpreters, and the live state the media server
// consults to decide who sees and hears whom. Every change is journalled in
// the same transaction that makes it.
package sessions

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// Errors are fault errors: fault.NotFound for a session, participant or
// staff member the caller may not know of, fault.Unauthenticated, Expired
// and Revoked for tokens, fault.Invalid naming the field, fault.Conflict
// when the session's state forbids a change.

func invalid(field, format string, args ...any) error {
	return fault.Invalidf(field, format, args...)
}

func conflict(format string, args ...any) error {
	return fault.New(fault.Conflict, format, args...)
}

// Notifier pushes state events to connected participants and tells the media
// server to re-evaluate who receives whom. The signalling server implements
// it; cmd/chamber plugs it in.
type Notifier interface {
	Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage)
	// Disconnect closes a participant's connections; reason is a
	// signalling Bye code (removed, token_revoked, session_closed).
	Disconnect(sessionID, participantID uuid.UUID, reason string)
}

type nopNotifier struct{}

func (nopNotifier) Notify(uuid.UUID, []uuid.UUID, string, json.RawMessage) {}
func (nopNotifier) Disconnect(uuid.UUID, uuid.UUID, string)                {}

// Config configures a Service.
type Config struct {
	DB        *database.DB
	Journal   *journal.Journal
	Logger    *slog.Logger
	PublicURL string
	// InvitationTTL is how long an invitation stays valid after the
	// session's scheduled time (or after it is issued, when unscheduled).
	InvitationTTL time.Duration
	// Anchor timestamps the journal head; called when a session closes.
	// Nil disables it.
	Anchor func(ctx context.Context) error
	// Mail sends invitations, changes and reminders by e-mail (RunMail
	// delivers them); nil leaves e-mail off.
	Mail *MailConfig
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// BrowserSessionTTL is how long a console sign-in lasts at most
	// (default 12h); BrowserIdleTimeout ends it after that long without a
	// request (default 30m).
	BrowserSessionTTL, BrowserIdleTimeout time.Duration
	// Revalidate asks the identity provider whether the account behind a
	// browser session is still enabled, with the session's sealed refresh
	// token; it returns the (possibly rotated) sealed token. An error of
	// kind fault.Revoked means the provider refused: every browser session
	// and live connection of that staff member ends. Any other error
	// (the provider is down) changes nothing. Nil disables the check.
	Revalidate func(ctx context.Context, sealedRefresh string) (string, error)
	// RevalidateEvery is how often each browser session with a refresh
	// token is revalidated (default 30s).
	RevalidateEvery time.Duration
}

// Service is the session layer.
type Service struct {
	db        *database.DB
	journal   *journal.Journal
	log       *slog.Logger
	publicURL string
	ttl       time.Duration
	anchor    func(ctx context.Context) error
	now       func() time.Time
	clock     Clock
	mail      *mailer

	browserTTL, browserIdle time.Duration
	revalidate              func(ctx context.Context, sealedRefresh string) (string, error)
	revalidateEvery         time.Duration
	sweep                   sweepState

	notifierMu sync.RWMutex
	notifier   Notifier

	live liveState
}

// New returns a session service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.InvitationTTL
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	s := &Service{
		db:              cfg.DB,
		journal:         cfg.Journal,
		log:             cfg.Logger,
		publicURL:       cfg.PublicURL,
		ttl:             ttl,
		anchor:          cfg.Anchor,
		now:             database.Now,
		clock:           systemClock{},
		browserTTL:      cmp.Or(cfg.BrowserSessionTTL, DefaultBrowserSessionTTL),
		browserIdle:     cmp.Or(cfg.BrowserIdleTimeout, DefaultBrowserIdleTimeout),
		revalidate:      cfg.Revalidate,
		revalidateEvery: cmp.Or(cfg.RevalidateEvery, DefaultRevalidateEvery),
		notifier:        nopNotifier{},
		live:            liveState{sessions: map[uuid.UUID]*liveSession{}},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock != nil {
		s.clock = cfg.Clock
		s.now = func() time.Time { return cfg.Clock.Now().UTC().Truncate(time.Microsecond) }
	}
	if cfg.Mail != nil {
		s.mail = newMailer(*cfg.Mail)
	}
	s.sweep.since = s.now()
	return s
}

// Defaults of Config.
const (
	DefaultBrowserSessionTTL  = 12 * time.Hour
	DefaultBrowserIdleTimeout = 30 * time.Minute
	DefaultRevalidateEvery    = 30 * time.Second
)

// SetNotifier plugs in the signalling server. It is set after
// construction because the signalling server itself needs the Service.
func (s *Service) SetNotifier(n Notifier) {
	s.notifierMu.Lock()
	defer s.notifierMu.Unlock()
	if n == nil {
		n = nopNotifier{}
	}
	s.notifier = n
}

func (s *Service) notify() Notifier {
	s.notifierMu.RLock()
	defer s.notifierMu.RUnlock()
	return s.notifier
}

// Session is a hearing or a notarial act.
type Session struct {
	ID          uuid.UUID   `json:"id"`
	Kind        access.Kind `json:"kind"`
	Title       string      `json:"title"`
	CaseNumber  string      `json:"case_number,omitempty"`
	ActType     string      `json:"act_type,omitempty"`
	ScheduledAt *time.Time  `json:"scheduled_at,omitempty"`
	Public      bool        `json:"public"`
	State       State       `json:"state"`
	CreatedBy   uuid.UUID   `json:"created_by"`
	CreatedAt   time.Time   `json:"created_at"`
	OpenedAt    *time.Time  `json:"opened_at,omitempty"`
	ClosedAt    *time.Time  `json:"closed_at,omitempty"`
}

// State is where a session is in its life.
type State string

// Session states: scheduled → open (first presiding join) → closed.
const (
	Scheduled State = "scheduled"
	Open      State = "open"
	Closed    State = "closed"
)

// ActTypes are the kinds of notarial act.
var ActTypes = []string{"will", "contract", "power_of_attorney", "property_sale", "other"}

// Spaces a participant can be in, besides a consultation room's ID.
const (
	SpaceMain    = "main"
	SpaceWaiting = "waiting"
)

// Participant is someone invited to a session.
type Participant struct {
	ID         uuid.UUID   `json:"id"`
	SessionID  uuid.UUID   `json:"session_id"`
	Name       string      `json:"name"`
	Role       access.Role `json:"role"`
	Space      string      `json:"space"`
	Connected  bool        `json:"connected"`
	AudioMuted bool        `json:"audio_muted"`
	VideoMuted bool        `json:"video_muted"`
	Interprets *uuid.UUID  `json:"interprets,omitempty"`
	Whisper    bool        `json:"whisper,omitempty"`
	PublicJoin bool        `json:"public_join,omitempty"`
	// StaffID is set for a staff member taking part as themselves
	// (assigned, or entering a session they created): they hold no
	// invitation token.
	StaffID   *uuid.UUID `json:"staff_id,omitempty"`
	ExpiresAt time.Time  `json:"expires_at"`
	Revoked   bool       `json:"revoked,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// Staff is a member of the court's or notary's staff. A personal signing
// identity, when there is one, hangs off ID.
type Staff struct {
	ID   uuid.UUID   `json:"id"`
	Name string      `json:"name"`
	Role access.Role `json:"role"`
	// ExternalSubject links the staff member to an account of the OpenID
	// provider: "issuer|subject".
	ExternalSubject string    `json:"external_subject,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	Revoked         bool      `json:"revoked"`
}

// Principal is the authenticated caller of a request: a staff member (by
// console session or API token) or a participant (by invitation token).
// Exactly one of Staff and Participant is set; Credential says how.
type Principal struct {
	Staff       *Staff
	Participant *Participant
	Credential  Credential
}

// CredentialKind is how a principal authenticated.
type CredentialKind string

// The kinds of credential.
const (
	ByBrowser    CredentialKind = "browser_session" // the console's cookie
	ByAPIToken   CredentialKind = "api_token"       // automation
	ByInvitation CredentialKind = "invitation"      // a participant's link
)

// Credential is what authenticated a principal.
type Credential struct {
	Kind      CredentialKind `json:"kind"`
	ID        uuid.UUID      `json:"id"`
	Scopes    []string       `json:"scopes,omitempty"` // API tokens only
	ExpiresAt time.Time      `json:"expires_at"`
}

// Ref names the credential in join tickets and to the signalling server,
// which closes the connections it authenticated when it ends.
func (c Credential) Ref() string { return string(c.Kind) + ":" + c.ID.String() }

// Actor is how the principal appears in the journal.
func (p Principal) Actor() string {
	switch {
	case p.Staff != nil:
		return "staff:" + p.Staff.ID.String()
	case p.Participant != nil:
		return "participant:" + p.Participant.ID.String()
	}
	return "anonymous"
}

// Name is the principal's display name.
func (p Principal) Name() string {
	switch {
	case p.Staff != nil:
		return p.Staff.Name
	case p.Participant != nil:
		return p.Participant.Name
	}
	return ""
}
