package acts

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts/mrz"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// Identity check statuses.
const (
	CheckPending  = "pending"
	CheckVerified = "verified"
	CheckRefused  = "refused"
)

// The events the act pushes to its session's room. The signalling
// server's Audience decides who receives each (docs/signaling.md).
const (
	// EventIdentityCheck carries a Check — a principal's passport data —
	// when it is opened, a still is captured, and it is decided. Only
	// those MaySeeCheck names receive it.
	EventIdentityCheck = "identity_check"
	// EventActUpdated carries an Act when it changes state.
	EventActUpdated = "act_updated"
)

// MaySeeCheck reports whether a participant, in role, may learn an
// identity check of subject — the principal's name, document number,
// birth date, nationality and address: the notary, the embassy officer
// who checks identities, and the principal concerned; an admin through the
// API. Nobody else: not another principal, a witness, an interpreter or an
// observer.
func MaySeeCheck(role access.Role, participant, subject uuid.UUID) bool {
	switch {
	case role == access.Notary || role == access.Admin || access.Allowed(role, access.IdentityCheck):
		return true
	case role == access.Principal:
		return participant != uuid.Nil && participant == subject
	}
	return false
}

// record journals a change to the act inside its transaction, then
// refuses it if the session is closed: the journal head stays locked from
// the append to the commit and a close journals under the same lock, so
// the close either is seen here or comes after this change. Nothing is
// journalled after session.closed.
func (s *Service) record(ctx context.Context, tx *sql.Tx, rec journal.Record) error {
	if _, err := s.cfg.Journal.AppendTx(ctx, tx, rec); err != nil {
		return err
	}
	return sessionOpen(ctx, tx, rec.SessionID)
}

// sessionOpen refuses (fault.Conflict) a change to the act of a closed
// session. It reads the sessions table, as the register does.
func sessionOpen(ctx context.Context, q querier, sessionID uuid.UUID) error {
	var state string
	err := q.QueryRowContext(ctx, `SELECT state FROM sessions WHERE id = $1`, sessionID.String()).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("session %s: %w", sessionID, fault.NotFound)
	}
	if err != nil {
		return database.Classify(fmt.Errorf("acts: session state: %w", err))
	}
	if state == "closed" {
		return outOfOrder("the session is closed: the act can no longer change")
	}
	return nil
}

// Still is a captured image stored as evidence.
type Still struct {
	Kind   string `json:"kind"` // face or document
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
}

// Check is one identity check of a principal by an embassy officer.
type Check struct {
	ID            uuid.UUID    `json:"id"`
	SessionID     uuid.UUID    `json:"session_id"`
	ParticipantID uuid.UUID    `json:"participant_id"`
	OfficerID     string       `json:"officer"`
	OfficerName   string       `json:"officer_name"`
	Embassy       string       `json:"embassy,omitempty"`
	Status        string       `json:"status"`
	Document      mrz.Document `json:"document"`
	Stills        []Still      `json:"stills"`
	Address       string       `json:"address,omitempty"`
	Reason        string       `json:"reason,omitempty"`
	CreatedAt     string       `json:"created_at"`
	DecidedAt     string       `json:"decided_at,omitempty"`
}

// NewCheck is what the officer submits.
type NewCheck struct {
	ParticipantID uuid.UUID `json:"participant_id"`
	MRZ           string    `json:"mrz"`
	Embassy       string    `json:"embassy,omitempty"`
}

// StartCheck parses the MRZ the officer typed or scanned and opens a check
// of the principal it belongs to. A bad MRZ is an *fault.Error with code
// invalid_mrz and the problem of each field.
func (s *Service) StartCheck(ctx context.Context, c Caller, sessionID uuid.UUID, target Principal, n NewCheck) (Check, error) {
	if err := access.Check(c.Role, access.IdentityCheck); err != nil {
		return Check{}, err
	}
	if err := s.RequireOpen(ctx, sessionID, "an identity check"); err != nil {
		return Check{}, err
	}
	if err := sessionOpen(ctx, s.cfg.DB, sessionID); err != nil {
		return Check{}, err
	}
	if len(n.MRZ) > 200 || len(n.Embassy) > 200 {
		return Check{}, &fault.Error{Kind: fault.Invalid, Message: "mrz or embassy is too long", Fields: map[string]string{"mrz": "at most 200 characters"}}
	}
	doc, err := mrz.Parse(n.MRZ, s.now())
	var bad *mrz.Error
	if errors.As(err, &bad) {
		msg := "the machine-readable zone is not valid"
		if bad.Expired() {
			msg = "the document has expired"
		}
		return Check{}, &fault.Error{Kind: fault.Invalid, Code: "invalid_mrz", Message: msg, Fields: bad.Fields}
	}
	if err != nil {
		return Check{}, &fault.Error{Kind: fault.Invalid, Code: "invalid_mrz", Message: err.Error(), Fields: map[string]string{"mrz": err.Error()}}
	}
	ch := Check{
		ID: uuid.New(), SessionID: sessionID, ParticipantID: target.ID, OfficerID: c.Actor, OfficerName: c.Name,
		Embassy: strings.TrimSpace(n.Embassy), Status: CheckPending, Document: doc, Stills: []Still{},
		CreatedAt: s.now().Format(timeFormat),
	}
	docJSON, _ := json.Marshal(doc)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO identity_checks (id, session_id, participant_id, officer_id, officer_name, embassy, status, document, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			ch.ID.String(), sessionID.String(), target.ID.String(), c.Actor, c.Name, ch.Embassy, ch.Status, string(docJSON),
			database.Micros(s.now())); err != nil {
			return fmt.Errorf("acts: identity check: %w", err)
		}
		return s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "identity.check_started",
			Details: map[string]any{"check_id": ch.ID, "participant_id": target.ID, "participant_name": target.Name, "embassy": ch.Embassy, "document": doc}})
	})
	if err != nil {
		return Check{}, err
	}
	s.notify(sessionID, EventIdentityCheck, ch)
	return ch, nil
}

const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Checks lists a session's identity checks.
func (s *Service) Checks(ctx context.Context, sessionID uuid.UUID) ([]Check, error) {
	rows, err := s.cfg.DB.QueryContext(ctx, `SELECT `+checkColumns+` FROM identity_checks WHERE session_id = $1 ORDER BY created_at, id`, sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("acts: checks: %w", err)
	}
	defer rows.Close()
	out := []Check{}
	for rows.Next() {
		ch, err := scanCheck(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// Check returns one identity check of a session.
func (s *Service) Check(ctx context.Context, sessionID, checkID uuid.UUID) (Check, error) {
	return s.check(ctx, s.cfg.DB, sessionID, checkID)
}

func (s *Service) check(ctx context.Context, q querier, sessionID, checkID uuid.UUID) (Check, error) {
	ch, err := scanCheck(q.QueryRowContext(ctx, `SELECT `+checkColumns+` FROM identity_checks WHERE id = $1 AND session_id = $2`,
		checkID.String(), sessionID.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Check{}, fmt.Errorf("identity check %s: %w", checkID, fault.NotFound)
	}
	return ch, database.Classify(err)
}

const checkColumns = `id, session_id, participant_id, officer_id, officer_name, embassy, status, document, face_key, face_sha256,
	document_key, document_sha256, address, reason, created_at, decided_at`

func scanCheck(row interface{ Scan(...any) error }) (Check, error) {
	var (
		ch                          Check
		id, sid, pid, docJSON       string
		faceKey, faceSHA, dKey, dSH string
		created                     int64
		decided                     sql.NullInt64
	)
	if err := row.Scan(&id, &sid, &pid, &ch.OfficerID, &ch.OfficerName, &ch.Embassy, &ch.Status, &docJSON, &faceKey, &faceSHA,
		&dKey, &dSH, &ch.Address, &ch.Reason, &created, &decided); err != nil {
		return Check{}, err
	}
	ch.ID, _ = uuid.Parse(id)
	ch.SessionID, _ = uuid.Parse(sid)
	ch.ParticipantID, _ = uuid.Parse(pid)
	if err := json.Unmarshal([]byte(docJSON), &ch.Document); err != nil {
		return Check{}, fmt.Errorf("acts: check %s: stored document: %w", id, err)
	}
	ch.Stills = []Still{}
	if faceKey != "" {
		ch.Stills = append(ch.Stills, Still{Kind: "face", Key: faceKey, SHA256: faceSHA})
	}
	if dKey != "" {
		ch.Stills = append(ch.Stills, Still{Kind: "document", Key: dKey, SHA256: dSH})
	}
	ch.CreatedAt = database.Time(created).Format(timeFormat)
	if decided.Valid {
		ch.DecidedAt = database.Time(decided.Int64).Format(timeFormat)
	}
	return ch, nil
}

// AddStill stores the face still or the document photo of a pending check
// as evidence, with its SHA-256, and journals it.
func (s *Service) AddStill(ctx context.Context, c Caller, sessionID, checkID uuid.UUID, kind string, body io.Reader) (Still, error) {
	if err := access.Check(c.Role, access.IdentityCheck); err != nil {
		return Still{}, err
	}
	if kind != "face" && kind != "document" {
		return Still{}, &fault.Error{Kind: fault.Invalid, Message: "kind must be face or document", Fields: map[string]string{"kind": "face or document"}}
	}
	ch, err := s.Check(ctx, sessionID, checkID)
	if err != nil {
		return Still{}, err
	}
	if ch.Status != CheckPending {
		return Still{}, outOfOrder("the identity check is already %s", ch.Status)
	}
	if err := s.RequireOpen(ctx, sessionID, "an identity still"); err != nil {
		return Still{}, err
	}
	if err := sessionOpen(ctx, s.cfg.DB, sessionID); err != nil {
		return Still{}, err
	}
	br := bufio.NewReaderSize(body, 512)
	head, _ := br.Peek(512)
	ct := documents.Sniff(head)
	if ct != documents.TypeJPEG && ct != documents.TypePNG {
		return Still{}, fault.New(fault.Unsupported, "a still must be a JPEG or PNG image")
	}
	// A key of its own per attempt; stored without retention until the
	// transaction below makes it part of the record.
	key := fmt.Sprintf("sessions/%s/identity/%s/%s-%s%s", sessionID, checkID, kind, uuid.NewString()[:8], documents.Extension(ct))
	obj, err := s.cfg.Store.Put(ctx, key, evidence.LimitReader(br, s.cfg.MaxStill, fault.TooLarge), evidence.PutOptions{ContentType: ct})
	if errors.Is(err, fault.TooLarge) {
		return Still{}, fault.New(fault.TooLarge, "the limit for a still is %d bytes", s.cfg.MaxStill)
	}
	if err != nil {
		return Still{}, fmt.Errorf("acts: store still: %w", err)
	}
	st := Still{Kind: kind, Key: key, SHA256: obj.SHA256, Size: obj.Size}
	rec := catalog.Of(catalog.Still, obj)
	col := kind // face or document, checked above: the column prefix
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE identity_checks SET `+col+`_key = $1, `+col+`_sha256 = $2 WHERE id = $3 AND status = $4`,
			key, obj.SHA256, checkID.String(), CheckPending)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return outOfOrder("the identity check was decided meanwhile")
		}
		if err := catalog.Add(ctx, tx, sessionID, s.retainUntil(), rec); err != nil {
			return err
		}
		return s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "identity.still_captured",
			Details: map[string]any{"check_id": checkID, "kind": kind, "key": key, "sha256": obj.SHA256, "size": obj.Size,
				"objects": []catalog.Object{rec}}})
	})
	if err != nil {
		if !errors.Is(err, database.ErrCommitUncertain) {
			s.discard(ctx, key)
		}
		return Still{}, err
	}
	s.catalog.Retain(ctx, key)
	if ch, err := s.Check(ctx, sessionID, checkID); err == nil {
		s.notify(sessionID, EventIdentityCheck, ch)
	}
	return st, nil
}

// discard deletes a still that never became part of the record; it has no
// retention. What cannot be deleted now the reconciler reports later.
func (s *Service) discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.Delete(ctx, key); err != nil && !errors.Is(err, evidence.ErrNotFound) {
		s.cfg.Logger.Warn("could not delete a still that is not part of the record; the reconciler will report it", "key", key, "err", err)
	}
}

// Outcome is the officer's decision.
type Outcome struct {
	Verified bool   `json:"verified"`
	Reason   string `json:"reason,omitempty"`
	// Address is the principal's address, for the register.
	Address string `json:"address,omitempty"`
}

// Decide records the officer's outcome. A verified check needs both
// stills; a refusal needs a reason. When every principal is verified the
// act moves to identity_verified. It returns the decided check and the act
// as the decision left it.
func (s *Service) Decide(ctx context.Context, c Caller, sessionID, checkID uuid.UUID, o Outcome) (Check, Act, error) {
	if c.Role != access.EmbassyOfficer {
		return Check{}, Act{}, &access.ForbiddenError{Role: c.Role, Action: access.IdentityCheck}
	}
	o.Reason, o.Address = strings.TrimSpace(o.Reason), strings.TrimSpace(o.Address)
	badAddress := strings.ContainsFunc(o.Address, func(r rune) bool { return unicode.IsControl(r) && r != '\n' })
	if len(o.Reason) > 1000 || len(o.Address) > 500 || badAddress {
		return Check{}, Act{}, &fault.Error{Kind: fault.Invalid, Message: "reason is at most 1000 characters, address at most 500 printable ones",
			Fields: map[string]string{"reason": "at most 1000 characters", "address": "at most 500 printable characters"}}
	}
	if !o.Verified && o.Reason == "" {
		return Check{}, Act{}, &fault.Error{Kind: fault.Invalid, Message: "a refusal needs a reason", Fields: map[string]string{"reason": "required when verified is false"}}
	}
	principals, err := s.cfg.Principals(ctx, sessionID)
	if err != nil {
		return Check{}, Act{}, err
	}
	var (
		ch  Check
		act Act
	)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		// The act's row first, as every transaction that may change the
		// act takes it before the journal's head.
		if act, err = s.lock(ctx, tx, sessionID); err != nil {
			return err
		}
		if ch, err = s.check(ctx, tx, sessionID, checkID); err != nil {
			return err
		}
		if ch.Status != CheckPending {
			return outOfOrder("the identity check is already %s", ch.Status)
		}
		if o.Verified && len(ch.Stills) < 2 {
			return outOfOrder("capture the face still and the document photo before verifying")
		}
		if act.State == Sealed {
			return outOfOrder("the act is sealed")
		}
		ch.Status = CheckRefused
		if o.Verified {
			ch.Status = CheckVerified
		}
		ch.Reason, ch.Address = o.Reason, o.Address
		now := s.now()
		ch.DecidedAt = now.Format(timeFormat)
		if _, err := tx.ExecContext(ctx, `UPDATE identity_checks SET status = $1, reason = $2, address = $3, decided_at = $4 WHERE id = $5`,
			ch.Status, ch.Reason, ch.Address, database.Micros(now), checkID.String()); err != nil {
			return err
		}
		if err := s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "identity.decided",
			Details: map[string]any{"check_id": checkID, "participant_id": ch.ParticipantID, "status": ch.Status, "reason": ch.Reason,
				"document": ch.Document, "stills": ch.Stills, "address": ch.Address}}); err != nil {
			return err
		}
		if act.State != Draft || !o.Verified {
			return nil
		}
		all, err := allVerified(ctx, tx, sessionID, principals)
		if err != nil || !all {
			return err
		}
		act.State = IdentityVerified
		return s.setState(ctx, tx, sessionID, Draft, IdentityVerified, c.Actor, map[string]any{"principals": len(principals)})
	})
	if err != nil {
		return Check{}, Act{}, err
	}
	s.notify(sessionID, EventIdentityCheck, ch)
	s.notify(sessionID, EventActUpdated, act)
	return ch, act, nil
}

func allVerified(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, principals []Principal) (bool, error) {
	if len(principals) == 0 {
		return false, nil
	}
	for _, p := range principals {
		ok, err := verified(ctx, tx, sessionID, p.ID)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func verified(ctx context.Context, q querier, sessionID, participantID uuid.UUID) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM identity_checks WHERE session_id = $1 AND participant_id = $2 AND status = $3`,
		sessionID.String(), participantID.String(), CheckVerified).Scan(&n)
	return n > 0, err
}

// VerifiedIdentity returns the name on a principal's verified identity
// document, for their signing certificate; "" when none is verified.
func (s *Service) VerifiedIdentity(ctx context.Context, sessionID, participantID uuid.UUID) (string, error) {
	var docJSON string
	err := s.cfg.DB.QueryRowContext(ctx, `SELECT document FROM identity_checks WHERE session_id = $1 AND participant_id = $2 AND status = $3
		ORDER BY decided_at DESC LIMIT 1`, sessionID.String(), participantID.String(), CheckVerified).Scan(&docJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", database.Classify(err)
	}
	var d mrz.Document
	if err := json.Unmarshal([]byte(docJSON), &d); err != nil {
		return "", err
	}
	return strings.TrimSpace(d.GivenNames + " " + d.Surname), nil
}
