package sessions

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

const participantColumns = `id, session_id, name, role, space, audio_muted, video_muted, interprets, whisper, public_join, expires_at, revoked_at, created_at, staff_id`

func (s *Service) scanParticipant(row interface{ Scan(...any) error }, extra ...any) (Participant, error) {
	var (
		p                   Participant
		id, sessionID, role string
		interprets, staffID sql.NullString
		expires, created    int64
		revoked             sql.NullInt64
	)
	dest := append([]any{&id, &sessionID, &p.Name, &role, &p.Space, &p.AudioMuted, &p.VideoMuted, &interprets,
		&p.Whisper, &p.PublicJoin, &expires, &revoked, &created, &staffID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Participant{}, err
	}
	p.ID, _ = uuid.Parse(id)
	p.SessionID, _ = uuid.Parse(sessionID)
	p.Role = access.Role(role)
	if interprets.Valid {
		if v, err := uuid.Parse(interprets.String); err == nil {
			p.Interprets = &v
		}
	}
	if staffID.Valid {
		if v, err := uuid.Parse(staffID.String); err == nil {
			p.StaffID = &v
		}
	}
	p.ExpiresAt = database.Time(expires)
	p.Revoked = revoked.Valid
	p.CreatedAt = database.Time(created)
	p.Connected = s.live.isConnected(p.SessionID, p.ID)
	return p, nil
}

// Invitation is the answer to an invitation: the token is shown once.
type Invitation struct {
	ParticipantID uuid.UUID   `json:"participant_id"`
	Name          string      `json:"name"`
	Role          access.Role `json:"role"`
	Token         string      `json:"token"`
	JoinURL       string      `json:"join_url"`
	ExpiresAt     time.Time   `json:"expires_at"`
	// Mail is "pending" when the link is being e-mailed to the contact.
	Mail string `json:"mail,omitempty"`
}

// NewInvitation is what the inviter supplies.
type NewInvitation struct {
	Name      string      `json:"name"`
	Role      access.Role `json:"role"`
	ExpiresAt *time.Time  `json:"expires_at,omitempty"`
	// Contact, when given, receives the link by e-mail (contacts.go).
	Contact *Contact `json:"contact,omitempty"`
}

// Invite adds a participant to a session and issues their token. Only the
// roles the invite table gives the caller's role can be invited: never an
// official (judge, clerk, notary, embassy officer), who is assigned instead,
// and never a role with powers the caller lacks.
func (s *Service) Invite(ctx context.Context, p Principal, sessionID uuid.UUID, n NewInvitation) (Invitation, error) {
	sess, role, err := s.Authorize(ctx, p, sessionID, access.Invite)
	if err != nil {
		return Invitation{}, err
	}
	n.Name = strings.TrimSpace(n.Name)
	switch {
	case n.Name == "" || len(n.Name) > 200:
		return Invitation{}, invalid("name", "a name of 1 to 200 characters is required")
	case n.Role == access.Admin || (!n.Role.InKind(access.Hearing) && !n.Role.InKind(access.Notarisation)):
		return Invitation{}, invalid("role", "unknown role %q; a %s has roles %v", n.Role, sess.Kind, access.Roles(sess.Kind))
	case !n.Role.InKind(sess.Kind):
		return Invitation{}, invalid("role", "role %q does not exist in a %s (roles: %v)", n.Role, sess.Kind, access.Roles(sess.Kind))
	case !access.MayInvite(role, n.Role):
		return Invitation{}, inviteRefused(role, n.Role)
	}
	if err := requireNotClosed(sess); err != nil {
		return Invitation{}, err
	}
	contact, err := s.checkContact(n.Contact)
	if err != nil {
		return Invitation{}, err
	}
	expires := s.defaultExpiry(sess)
	if n.ExpiresAt != nil {
		if !n.ExpiresAt.After(s.now()) {
			return Invitation{}, invalid("expires_at", "must be in the future")
		}
		expires = n.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return s.addParticipant(ctx, p.Actor(), sess, n.Name, n.Role, expires, false, contact)
}

// inviteRefused names the refused action (invite), the role the caller
// tried to invite and what to do instead.
func inviteRefused(by, r access.Role) error {
	msg := fmt.Sprintf("forbidden: invite of a %s is not allowed for role %s (it may invite %v)", r, by, access.Invitable(by))
	if r.IsOfficial() {
		msg = fmt.Sprintf("forbidden: invite of a %s is not allowed for role %s: officials are staff, assigned to the session (POST /api/v1/sessions/{id}/assignments), never invited", r, by)
	}
	return &fault.Error{Kind: fault.Forbidden, Message: msg, Err: &access.ForbiddenError{Role: by, Action: access.Invite}}
}

func (s *Service) defaultExpiry(sess Session) time.Time {
	base := s.now()
	if sess.ScheduledAt != nil && sess.ScheduledAt.After(base) {
		base = *sess.ScheduledAt
	}
	return base.Add(s.ttl)
}

func (s *Service) addParticipant(ctx context.Context, actor string, sess Session, name string, role access.Role, expires time.Time, public bool, c *contact) (Invitation, error) {
	space := SpaceWaiting
	if role.EntersDirectly() {
		space = SpaceMain
	}
	if err := s.ensureLive(ctx, sess.ID); err != nil {
		return Invitation{}, err
	}
	token, hash := newToken(invitationPrefix)
	inv := Invitation{ParticipantID: uuid.New(), Name: name, Role: role, Token: token, ExpiresAt: expires,
		JoinURL: strings.TrimRight(s.publicURL, "/") + "/join/" + token}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Re-read inside the transaction: a session closed meanwhile
		// takes no new participants.
		cur, err := s.get(ctx, tx, sess.ID)
		if err != nil {
			return err
		}
		if err := requireNotClosed(cur); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO participants (id, session_id, name, role, token_hash, expires_at, space, public_join, created_by, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			inv.ParticipantID.String(), sess.ID.String(), name, string(role), hash, database.Micros(expires),
			space, public, actor, database.Micros(s.now())); err != nil {
			return fmt.Errorf("sessions: invite: %w", err)
		}
		if err := s.inviteContactTx(ctx, tx, cur, &inv, c); err != nil {
			return err
		}
		_, err = s.record(ctx, tx, journal.Record{
			SessionID: sess.ID, Actor: actor, Action: "invitation.issued",
			Details: map[string]any{"participant_id": inv.ParticipantID, "name": name, "role": role,
				"expires_at": expires, "public_link": public},
		})
		return err
	})
	if err != nil {
		return Invitation{}, err
	}
	if p, err := s.participant(ctx, sess.ID, inv.ParticipantID); err == nil {
		s.live.upsert(p)
		s.notify().Notify(sess.ID, nil, EventParticipantAdded, mustJSON(p))
	}
	s.pokeMail()
	return inv, nil
}

// RevokeInvitation kills a participant's token and disconnects them. A
// staff member taking part is withdrawn only by a role that may assign
// theirs.
func (s *Service) RevokeInvitation(ctx context.Context, p Principal, sessionID, participantID uuid.UUID) error {
	_, role, err := s.Authorize(ctx, p, sessionID, access.Revoke)
	if err != nil {
		return err
	}
	return s.revoke(ctx, p, role, sessionID, participantID, "invitation.revoked", "token_revoked")
}

// revoke ends a participant's invitation (or a staff member's part in the
// session). reason is the code the participant's connections are closed
// with and participant_removed carries (a signalling Bye code: removed,
// token_revoked). by is the caller's role, checked against the assign table
// when the participant is a staff member.
func (s *Service) revoke(ctx context.Context, p Principal, by access.Role, sessionID, participantID uuid.UUID, action, reason string) error {
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return err
	}
	var target Participant
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if target, err = s.participantTx(ctx, tx, sessionID, participantID); err != nil {
			return err
		}
		if target.Revoked {
			return conflict("participant %s is already removed", participantID)
		}
		if target.StaffID != nil && !access.MayAssign(by, target.Role) {
			return &access.ForbiddenError{Role: by, Action: access.AssignStaff}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE participants SET revoked_at = $1 WHERE id = $2`,
			database.Micros(s.now()), participantID.String()); err != nil {
			return fmt.Errorf("sessions: revoke: %w", err)
		}
		if err := s.withdrawContactTx(ctx, tx, target); err != nil {
			return err
		}
		_, err = s.record(ctx, tx, journal.Record{
			SessionID: sessionID, Actor: p.Actor(), Action: action,
			Details: map[string]any{"participant_id": participantID, "name": target.Name, "role": target.Role},
		})
		return err
	})
	if err != nil {
		return err
	}
	target.Revoked = true
	s.live.upsert(target)
	s.pokeMail()
	n := s.notify()
	n.Disconnect(sessionID, participantID, reason)
	n.Notify(sessionID, nil, EventParticipantRemoved, mustJSON(map[string]any{"participant_id": participantID, "reason": reason}))
	return nil
}

// Participants lists everyone invited to a session whom the caller may
// know of: staff see everyone; a participant sees whom the visibility rule
// (Sight) lets them see in full — everyone, unless they wait in the
// waiting room, sequestered, where they see themselves alone.
func (s *Service) Participants(ctx context.Context, p Principal, sessionID uuid.UUID) ([]Participant, error) {
	if _, _, err := s.Authorize(ctx, p, sessionID, access.SeeParticipant); err != nil {
		return nil, err
	}
	all, err := s.participants(ctx, sessionID)
	if err != nil || p.Participant == nil {
		return all, err
	}
	var me *presence
	for _, x := range all {
		if x.ID == p.Participant.ID {
			me = x.presence()
		}
	}
	out := []Participant{}
	for _, x := range all {
		if sees(me, x.presence(), x.ID == p.Participant.ID) == Seen {
			out = append(out, x)
		}
	}
	return out, nil
}

// ParticipantsOf lists a session's participants without a permission
// check, for layers that have already authorised their caller.
func (s *Service) ParticipantsOf(ctx context.Context, sessionID uuid.UUID) ([]Participant, error) {
	return s.participants(ctx, sessionID)
}

func (s *Service) participants(ctx context.Context, sessionID uuid.UUID) ([]Participant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+participantColumns+` FROM participants WHERE session_id = $1 ORDER BY created_at, id`, sessionID.String())
	if err != nil {
		return nil, fmt.Errorf("sessions: participants: %w", err)
	}
	defer rows.Close()
	out := []Participant{}
	for rows.Next() {
		p, err := s.scanParticipant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Participant returns one participant of a session, if the caller may see
// participants.
func (s *Service) Participant(ctx context.Context, p Principal, sessionID, participantID uuid.UUID) (Participant, error) {
	if _, _, err := s.Authorize(ctx, p, sessionID, access.SeeParticipant); err != nil {
		return Participant{}, err
	}
	return s.participant(ctx, sessionID, participantID)
}

func (s *Service) participant(ctx context.Context, sessionID, participantID uuid.UUID) (Participant, error) {
	return s.participantTx(ctx, s.db, sessionID, participantID)
}

func (s *Service) participantTx(ctx context.Context, q querier, sessionID, participantID uuid.UUID) (Participant, error) {
	p, err := s.scanParticipant(q.QueryRowContext(ctx,
		`SELECT `+participantColumns+` FROM participants WHERE id = $1 AND session_id = $2`,
		participantID.String(), sessionID.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Participant{}, fmt.Errorf("participant %s: %w", participantID, fault.NotFound)
	}
	if err != nil {
		return Participant{}, fmt.Errorf("sessions: participant: %w", err)
	}
	return p, nil
}

// PublicLink is a link that lets anyone watch a public hearing.
type PublicLink struct {
	Token string `json:"token"`
	URL   string `json:"url"`
}

// CreatePublicLink issues the link for a public hearing.
func (s *Service) CreatePublicLink(ctx context.Context, p Principal, sessionID uuid.UUID) (PublicLink, error) {
	sess, _, err := s.Authorize(ctx, p, sessionID, access.PublicLink)
	if err != nil {
		return PublicLink{}, err
	}
	if !sess.Public {
		return PublicLink{}, conflict("session is not public: only public hearings can be watched by anyone")
	}
	if err := requireNotClosed(sess); err != nil {
		return PublicLink{}, err
	}
	token, hash := newToken(publicLinkPrefix)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO public_links (token_hash, session_id, created_at) VALUES ($1, $2, $3)`,
			hash, sessionID.String(), database.Micros(s.now())); err != nil {
			return fmt.Errorf("sessions: public link: %w", err)
		}
		_, err := s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: "public_link.created"})
		return err
	})
	if err != nil {
		return PublicLink{}, err
	}
	return PublicLink{Token: token, URL: strings.TrimRight(s.publicURL, "/") + "/watch/" + token}, nil
}

// RevokePublicLinks revokes every public link of a session and returns how
// many were live. Nobody joins through them any more (token_revoked);
// observers who already joined keep their own invitations and stay until
// they are removed, like anyone else.
func (s *Service) RevokePublicLinks(ctx context.Context, p Principal, sessionID uuid.UUID) (int, error) {
	sess, _, err := s.Authorize(ctx, p, sessionID, access.PublicLink)
	if err != nil {
		return 0, err
	}
	if err := requireNotClosed(sess); err != nil {
		return 0, err
	}
	var n int
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if n, err = s.revokeLinks(ctx, tx, sessionID); err != nil || n == 0 {
			return err
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: "public_link.revoked",
			Details: map[string]any{"links": n}})
		return err
	})
	return n, err
}

// RotatePublicLink revokes every public link of a public hearing and
// issues a new one, in one step: a link that leaked stops working, and the
// court keeps a link to hand out.
func (s *Service) RotatePublicLink(ctx context.Context, p Principal, sessionID uuid.UUID) (PublicLink, error) {
	sess, _, err := s.Authorize(ctx, p, sessionID, access.PublicLink)
	if err != nil {
		return PublicLink{}, err
	}
	if !sess.Public {
		return PublicLink{}, conflict("session is not public: only public hearings can be watched by anyone")
	}
	if err := requireNotClosed(sess); err != nil {
		return PublicLink{}, err
	}
	token, hash := newToken(publicLinkPrefix)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		n, err := s.revokeLinks(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO public_links (token_hash, session_id, created_at) VALUES ($1, $2, $3)`,
			hash, sessionID.String(), database.Micros(s.now())); err != nil {
			return fmt.Errorf("sessions: public link: %w", err)
		}
		_, err = s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: p.Actor(), Action: "public_link.rotated",
			Details: map[string]any{"revoked": n}})
		return err
	})
	if err != nil {
		return PublicLink{}, err
	}
	return PublicLink{Token: token, URL: strings.TrimRight(s.publicURL, "/") + "/watch/" + token}, nil
}

// revokeLinks revokes a session's live public links and counts them.
func (s *Service) revokeLinks(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID) (int, error) {
	res, err := tx.ExecContext(ctx, `UPDATE public_links SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL`,
		database.Micros(s.now()), sessionID.String())
	if err != nil {
		return 0, fmt.Errorf("sessions: revoke public links: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PublicSession is what anyone holding a public link may learn.
type PublicSession struct {
	SessionID   uuid.UUID  `json:"session_id"`
	Title       string     `json:"title"`
	CaseNumber  string     `json:"case_number,omitempty"`
	State       State      `json:"state"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
}

func (s *Service) publicLink(ctx context.Context, token string) (Session, error) {
	if !tokenShape(token, publicLinkPrefix) {
		return Session{}, fault.Unauthenticated
	}
	hash := hashToken(token)
	var (
		stored, sessionID string
		revoked           sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `SELECT token_hash, session_id, revoked_at FROM public_links WHERE token_hash = $1`, hash).
		Scan(&stored, &sessionID, &revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameHash(stored, hash)) {
		return Session{}, fault.Unauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("sessions: public link: %w", err)
	}
	if revoked.Valid {
		return Session{}, fault.Revoked
	}
	id, _ := uuid.Parse(sessionID)
	return s.Get(ctx, id)
}

// DescribePublicLink tells a visitor which hearing a public link opens.
func (s *Service) DescribePublicLink(ctx context.Context, token string) (PublicSession, error) {
	sess, err := s.publicLink(ctx, token)
	if err != nil {
		return PublicSession{}, err
	}
	return PublicSession{SessionID: sess.ID, Title: sess.Title, CaseNumber: sess.CaseNumber, State: sess.State, ScheduledAt: sess.ScheduledAt}, nil
}

// JoinPublic turns a public link and a name into an observer's
// invitation. Observers never publish; the HTTP floor rate-limits this.
func (s *Service) JoinPublic(ctx context.Context, token, name string) (Invitation, error) {
	sess, err := s.publicLink(ctx, token)
	if err != nil {
		return Invitation{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return Invitation{}, invalid("name", "a name of 1 to 100 characters is required")
	}
	if err := requireNotClosed(sess); err != nil {
		return Invitation{}, err
	}
	// A public viewer's token lives for the day; the link issues more.
	return s.addParticipant(ctx, "public", sess, name, access.Observer, s.now().Add(24*time.Hour), true, nil)
}

// mustJSON marshals the package's own event payloads, which are plain
// structs and maps that always marshal.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}
