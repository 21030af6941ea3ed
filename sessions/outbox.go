package sessions

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/mail/letters"
)

var (
	mailMessages = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_mail_messages_total",
		Help: "Outgoing e-mail by letter kind and outcome: sent, retry (a temporary failure), failed (refused or given up), superseded (no longer worth sending).",
	}, []string{"kind", "result"})
	mailPending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_mail_outbox_pending",
		Help: "Letters in the outbox waiting to be sent or retried.",
	})
)

// Outbox row states.
const (
	statusPending    = MailPending
	statusSent       = MailSent
	statusFailed     = MailFailed
	statusSuperseded = "superseded"
)

// MailConfig turns on e-mail: invitations with an iCalendar invitation,
// changes of time, withdrawals and reminders.
type MailConfig struct {
	Sender mail.Sender
	// From is the organiser of the calendar events and signs the letters
	// (its name: the court or the notary).
	From mail.Address
	// TimeZone is used for contacts that name none; UTC if nil.
	TimeZone *time.Location
	// Reminders are how long before the session reminders go out; nil
	// means 24 h and 1 h, an empty non-nil slice none.
	Reminders []time.Duration
	// Poll is how often the outbox is looked at when nothing wakes the
	// sender (a new letter wakes it at once); 15 s if zero.
	Poll time.Duration
	// MaxAttempts bounds the deliveries tried for one letter; 12 if zero
	// (the last one about three hours after the first, with the default
	// back-off).
	MaxAttempts int
	// Backoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff; 30 s and 30 min if zero.
	Backoff, MaxBackoff time.Duration
	// EventDuration is the length calendars show; sessions have no end
	// time. 1 h if zero.
	EventDuration time.Duration
	// HourlyLimit bounds the letters with a link or a new time one
	// invitation receives per hour (re-sends, reschedules); 10 if zero.
	HourlyLimit int
}

func (c *MailConfig) defaults() {
	if c.TimeZone == nil {
		c.TimeZone = time.UTC
	}
	if c.Reminders == nil {
		c.Reminders = []time.Duration{24 * time.Hour, time.Hour}
	}
	c.Reminders = slices.DeleteFunc(slices.Clone(c.Reminders), func(d time.Duration) bool { return d <= 0 })
	slices.SortFunc(c.Reminders, func(a, b time.Duration) int { return int((b - a) / time.Second) })
	c.Reminders = slices.Compact(c.Reminders)
	if c.Poll <= 0 {
		c.Poll = 15 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.Backoff <= 0 {
		c.Backoff = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Minute
	}
	if c.EventDuration <= 0 {
		c.EventDuration = time.Hour
	}
	if c.HourlyLimit <= 0 {
		c.HourlyLimit = 10
	}
}

// mailer is the running mail service of a Service.
type mailer struct {
	cfg    MailConfig
	domain string        // of the sender address: names UIDs and Message-IDs
	wake   chan struct{} // a letter was queued: look now
}

func newMailer(cfg MailConfig) *mailer {
	cfg.defaults()
	domain := "chamber.invalid"
	if _, d, ok := strings.Cut(cfg.From.Email, "@"); ok && d != "" {
		domain = d
	}
	return &mailer{cfg: cfg, domain: domain, wake: make(chan struct{}, 1)}
}

// pokeMail wakes the sender after a transaction queued a letter.
func (s *Service) pokeMail() {
	if s.mail == nil {
		return
	}
	select {
	case s.mail.wake <- struct{}{}:
	default:
	}
}

// leaseTime is how long a claimed letter is left to one sender before
// another may take it (a process that died mid-send).
const leaseTime = 2 * time.Minute

// sendTimeout bounds one delivery attempt.
const sendTimeout = 90 * time.Second

// outMessage is a letter to queue.
type outMessage struct {
	sessionID, participantID uuid.UUID
	kind                     letters.Kind
	sequence                 int
	startsAt, previous       *time.Time
	secret                   string    // the token, for the letters that carry the link
	deadline                 time.Time // not worth sending after this; zero: always
}

// enqueueTx puts a letter in the outbox in the caller's transaction.
// Letters with a link or a new time are limited per invitation and hour,
// so no one can flood a person's mailbox by re-sending or rescheduling.
func (s *Service) enqueueTx(ctx context.Context, tx *sql.Tx, m outMessage) error {
	now := s.now()
	if m.kind != letters.Cancel && m.kind != letters.Reminder {
		var recent int
		if err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM mail_outbox WHERE participant_id = $1 AND created_at > $2 AND kind <> $3 AND kind <> $4`,
			m.participantID.String(), database.Micros(now.Add(-time.Hour)), string(letters.Cancel), string(letters.Reminder),
		).Scan(&recent); err != nil {
			return fmt.Errorf("sessions: outbox: %w", err)
		}
		if recent >= s.mail.cfg.HourlyLimit {
			return &fault.Error{Kind: fault.RateLimited, RetryAfter: time.Hour,
				Message: fmt.Sprintf("this invitation has had %d e-mails in the last hour; try again later", recent)}
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx,
		`UPDATE invitation_contacts SET messages = messages + 1 WHERE participant_id = $1 RETURNING messages`,
		m.participantID.String()).Scan(&n); err != nil {
		return fmt.Errorf("sessions: outbox order: %w", err)
	}
	var secret sql.NullString
	if m.secret != "" {
		secret = sql.NullString{String: m.secret, Valid: true}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO mail_outbox (id, session_id, participant_id, n, kind, sequence, starts_at, previous_starts_at,
		   secret, status, next_attempt_at, deadline, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11)`,
		uuid.NewString(), m.sessionID.String(), m.participantID.String(), n, string(m.kind), m.sequence,
		nullTime(m.startsAt), nullTime(m.previous), secret, statusPending, database.Micros(now),
		database.NullMicros(m.deadline)); err != nil {
		return fmt.Errorf("sessions: outbox: %w", err)
	}
	return nil
}

// RunMail delivers the outbox and makes the reminders until ctx ends. It
// does nothing when mail is off. Several processes may run it on one
// database: a letter is claimed by one of them at a time.
func (s *Service) RunMail(ctx context.Context) {
	if s.mail == nil {
		return
	}
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.remind(ctx)
		s.deliverDue(ctx)
		s.countPending(ctx)
		// The timer is made after the work, so a test that advances the
		// clock knows the pass is over when the sender waits again.
		if timer == nil {
			timer = s.clock.NewTimer(s.mail.cfg.Poll)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.mail.wake:
		case <-timer.C():
			timer = nil
		}
	}
}

// troubleLimit is how many temporary failures in a row end a pass: when
// the server is down (or its address a black hole, each attempt waiting
// for its timeout), the rest of the outbox waits for the next pass
// instead of each letter failing in turn.
const troubleLimit = 3

// deliverDue sends what is due, a batch at a time, until nothing is.
func (s *Service) deliverDue(ctx context.Context) {
	trouble := 0
	for range 50 { // at most 1000 letters per pass; the next pass goes on
		ids, err := s.dueLetters(ctx, 20)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("mail outbox: listing due letters", "err", err)
			}
			return
		}
		if len(ids) == 0 {
			return
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			if s.deliver(ctx, id) {
				trouble = 0
			} else if trouble++; trouble >= troubleLimit {
				return
			}
		}
	}
}

// dueLetters lists pending letters whose time has come and that no other
// sender holds, oldest first; a letter waits while an earlier one to the
// same person is still pending, so that a cancellation never overtakes
// the invitation it cancels.
func (s *Service) dueLetters(ctx context.Context, limit int) ([]string, error) {
	now := database.Micros(s.clock.Now())
	rows, err := s.db.QueryContext(ctx,
		`SELECT o.id FROM mail_outbox o
		 WHERE o.status = $1 AND o.next_attempt_at <= $2 AND (o.lease_until IS NULL OR o.lease_until <= $2)
		   AND NOT EXISTS (SELECT 1 FROM mail_outbox e WHERE e.participant_id = o.participant_id AND e.status = $1 AND e.n < o.n)
		 ORDER BY o.next_attempt_at, o.created_at, o.id LIMIT $3`, statusPending, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// letter is an outbox row with what its letter is written from.
type letter struct {
	id                         string
	sessionID, participantID   uuid.UUID
	kind                       letters.Kind
	sequence, attempts         int
	startsAt, previous         *time.Time
	secret                     string
	deadline                   *time.Time
	created                    time.Time
	name                       string
	role                       access.Role
	revoked                    bool
	expires                    time.Time
	tokenHash                  string
	email, lang, zone          string
	kindOf                     access.Kind
	closed                     bool
	title, caseNumber, actType string
}

// claim takes a letter for this sender (one attempt) and reads it.
func (s *Service) claim(ctx context.Context, id string) (letter, bool, error) {
	now := s.clock.Now()
	res, err := s.db.ExecContext(ctx,
		`UPDATE mail_outbox SET lease_until = $1, attempts = attempts + 1
		 WHERE id = $2 AND status = $3 AND (lease_until IS NULL OR lease_until <= $4)`,
		database.Micros(now.Add(leaseTime)), id, statusPending, database.Micros(now))
	if err != nil {
		return letter{}, false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return letter{}, false, nil // another sender was quicker
	}
	var (
		l                                 letter
		sid, pid, kind, role, kindOf, st  string
		starts, previous, deadline, revok sql.NullInt64
		secret                            sql.NullString
		created, expires                  int64
	)
	err = s.db.QueryRowContext(ctx,
		`SELECT o.session_id, o.participant_id, o.kind, o.sequence, o.attempts, o.starts_at, o.previous_starts_at,
		        o.secret, o.deadline, o.created_at,
		        p.name, p.role, p.revoked_at, p.expires_at, p.token_hash,
		        c.email, c.language, c.time_zone,
		        s.kind, s.title, s.case_number, s.act_type, s.state
		 FROM mail_outbox o
		 JOIN participants p ON p.id = o.participant_id
		 JOIN invitation_contacts c ON c.participant_id = o.participant_id
		 JOIN sessions s ON s.id = o.session_id
		 WHERE o.id = $1`, id).Scan(
		&sid, &pid, &kind, &l.sequence, &l.attempts, &starts, &previous, &secret, &deadline, &created,
		&l.name, &role, &revok, &expires, &l.tokenHash,
		&l.email, &l.lang, &l.zone,
		&kindOf, &l.title, &l.caseNumber, &l.actType, &st)
	if err != nil {
		return letter{}, false, err
	}
	l.id = id
	l.sessionID, _ = uuid.Parse(sid)
	l.participantID, _ = uuid.Parse(pid)
	l.kind, l.role, l.kindOf = letters.Kind(kind), access.Role(role), access.Kind(kindOf)
	l.startsAt, l.previous, l.deadline = timePtr(starts), timePtr(previous), timePtr(deadline)
	l.secret, l.created = secret.String, database.Time(created)
	l.revoked, l.expires = revok.Valid, database.Time(expires)
	l.closed = State(st) == Closed
	return l, true, nil
}

// deliver makes one attempt at one letter and records the outcome. It
// reports false after a temporary failure of the server.
func (s *Service) deliver(ctx context.Context, id string) bool {
	l, ok, err := s.claim(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("mail outbox: claiming a letter", "letter", id, "err", err)
		}
		return true
	}
	if !ok {
		return true
	}
	if why := s.pointless(l); why != "" {
		s.finish(ctx, l, statusSuperseded, why, "")
		return true
	}
	msg, err := s.compose(l)
	if err != nil {
		s.log.Error("mail outbox: composing a letter", "letter", id, "kind", l.kind, "err", err)
		s.finish(ctx, l, statusFailed, "cannot compose the letter", "")
		return true
	}
	sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
	err = s.mail.cfg.Sender.Send(sendCtx, msg)
	cancel()
	// The outcome is recorded even if shutdown began meanwhile: a letter
	// the server accepted must not be sent again after the restart.
	rec, cancelRec := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelRec()
	switch {
	case err == nil:
		s.finish(rec, l, statusSent, "", msg.ID)
	case ctx.Err() != nil:
		// Shutting down: the lease runs out and the letter is tried again.
	case mail.IsPermanent(err):
		s.log.Warn("mail refused by the server", "session", l.sessionID, "participant", l.participantID, "kind", l.kind, "err", err)
		s.finish(rec, l, statusFailed, err.Error(), "")
	case l.attempts >= s.mail.cfg.MaxAttempts:
		s.log.Warn("mail delivery given up", "session", l.sessionID, "participant", l.participantID, "kind", l.kind, "attempts", l.attempts, "err", err)
		s.finish(rec, l, statusFailed, err.Error(), "")
	default:
		s.retry(rec, l, err)
		return false
	}
	return true
}

// pointless says why a letter is no longer worth sending, or "".
func (s *Service) pointless(l letter) string {
	now := s.clock.Now()
	switch {
	case l.deadline != nil && !now.Before(*l.deadline):
		return "too late"
	case l.kind == letters.Cancel:
		return ""
	case l.closed:
		return "session closed"
	case l.revoked:
		return "invitation revoked"
	case !now.Before(l.expires):
		return "invitation expired"
	case (l.kind == letters.Invitation || l.kind == letters.NewLink) && (l.secret == "" || !sameHash(l.tokenHash, hashToken(l.secret))):
		// The token was replaced meanwhile: never mail a dead link.
		return "link replaced"
	}
	return ""
}

// compose writes the letter and its calendar event.
func (s *Service) compose(l letter) (mail.Message, error) {
	zone, err := letters.LoadZone(l.zone)
	if err != nil {
		return mail.Message{}, err
	}
	lt := letters.Letter{
		Kind: l.kind, Lang: letters.Lang(l.lang), Zone: zone,
		Recipient: l.name, Role: string(l.role), SessionKind: string(l.kindOf),
		Title: l.title, CaseNumber: l.caseNumber, ActType: l.actType,
		Start: l.startsAt, Previous: l.previous, ExpiresAt: l.expires,
		Now: s.clock.Now(), Sender: s.mail.cfg.From.Name,
	}
	if l.kind == letters.Invitation || l.kind == letters.NewLink {
		lt.JoinURL = strings.TrimRight(s.publicURL, "/") + "/join/" + l.secret
	}
	subject, body := lt.Compose()
	msg := mail.Message{
		ID: l.id + "@" + s.mail.domain, To: mail.Address{Name: l.name, Email: l.email},
		Subject: subject, Text: body, Language: l.lang, Date: s.clock.Now(),
	}
	if ev, ok := lt.Event(); ok {
		ev.UID = l.participantID.String() + "@" + s.mail.domain
		ev.Sequence = l.sequence
		ev.Stamp = l.created // the same object on every retry
		ev.Duration = s.mail.cfg.EventDuration
		ev.Organizer = s.mail.cfg.From
		ev.Attendee = mail.Address{Name: l.name, Email: l.email}
		data, err := ev.ICS()
		if err != nil {
			return mail.Message{}, err
		}
		name := "invitation.ics"
		if ev.Method == mail.MethodCancel {
			name = "cancellation.ics"
		}
		msg.Calendar = &mail.Calendar{Method: ev.Method, FileName: name, Data: data}
	}
	return msg, nil
}

// finish records a letter's final state; a sent or failed letter is
// journalled. The token, if the letter had one, is erased with it.
func (s *Service) finish(ctx context.Context, l letter, status, why, messageID string) {
	now := s.clock.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`UPDATE mail_outbox SET status = $1, secret = NULL, lease_until = NULL, last_error = $2, message_id = $3, sent_at = $4
			 WHERE id = $5`,
			status, truncate(why, 500), messageID, nullIf(status == statusSent, now), l.id); err != nil {
			return err
		}
		details := map[string]any{"participant_id": l.participantID, "kind": l.kind, "attempts": l.attempts}
		if l.kind != letters.Reminder && l.startsAt != nil {
			details["sequence"] = l.sequence
		}
		switch status {
		case statusSent:
			details["message_id"] = messageID
			_, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: l.sessionID, Actor: "system", Action: "invitation.sent", Details: details})
			return err
		case statusFailed:
			details["permanent"] = l.attempts < s.mail.cfg.MaxAttempts
			_, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: l.sessionID, Actor: "system", Action: "invitation.mail_failed", Details: details})
			return err
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("mail outbox: recording a letter's outcome", "letter", l.id, "status", status, "err", err)
		}
		return
	}
	result := status
	mailMessages.WithLabelValues(string(l.kind), result).Inc()
	if status == statusSent {
		s.log.Info("mail sent", "session", l.sessionID, "participant", l.participantID, "kind", l.kind, "message_id", messageID, "attempts", l.attempts)
	}
}

// retry puts a letter back with a wait that doubles with each failure.
func (s *Service) retry(ctx context.Context, l letter, cause error) {
	wait := s.mail.cfg.Backoff << min(l.attempts-1, 20)
	if wait <= 0 || wait > s.mail.cfg.MaxBackoff {
		wait = s.mail.cfg.MaxBackoff
	}
	next := s.clock.Now().Add(wait)
	_, err := s.db.ExecContext(ctx,
		`UPDATE mail_outbox SET lease_until = NULL, next_attempt_at = $1, last_error = $2 WHERE id = $3 AND status = $4`,
		database.Micros(next), truncate(cause.Error(), 500), l.id, statusPending)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("mail outbox: scheduling a retry", "letter", l.id, "err", err)
		}
		return
	}
	mailMessages.WithLabelValues(string(l.kind), "retry").Inc()
	s.log.Warn("mail delivery failed; will retry", "session", l.sessionID, "participant", l.participantID, "kind", l.kind,
		"attempt", l.attempts, "retry_in", wait, "err", cause)
}

func (s *Service) countPending(ctx context.Context) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE status = $1`, statusPending).Scan(&n); err == nil {
		mailPending.Set(float64(n))
	}
}

func nullIf(ok bool, t time.Time) sql.NullInt64 {
	if !ok {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: database.Micros(t), Valid: true}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
