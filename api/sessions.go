package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
)

var (
	authErrors = []int{401, 403, 404, 429}
	bodyErrors = []int{400, 401, 403, 404, 409, 415, 422, 429}
)

func (a *API) sessionRoutes() {
	tags := []string{"sessions"}
	a.route("GET /api/v1/me", Op{Summary: "Who the caller is: staff (console sign-in or API token) or participant (invitation token), with permissions", Tags: tags, Auth: "bearer", Response: Me{}, Errors: authErrors},
		a.auth(a.handleMe))
	a.route("POST /api/v1/sessions", Op{Summary: "Create a hearing or a notarial act (staff)", Tags: tags, Auth: "bearer",
		Request: sessions.NewSession{}, Response: sessions.Session{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleCreateSession))
	a.route("GET /api/v1/sessions", Op{Summary: "List sessions the caller may see", Tags: tags, Auth: "bearer", Response: []sessions.Session{},
		Query: []Param{{Name: "state", Description: "scheduled, open or closed"}, {Name: "kind", Description: "hearing or notarisation"},
			{Name: "from", Description: "scheduled at or after (RFC 3339 or YYYY-MM-DD)"}, {Name: "to", Description: "scheduled before (RFC 3339 or YYYY-MM-DD)"}},
		Errors: []int{400, 401, 403, 422, 429}}, a.auth(a.handleListSessions))
	a.route("GET /api/v1/sessions/{id}", Op{Summary: "One session, with its notarial act and recording state", Tags: tags, Auth: "bearer", Response: SessionView{}, Errors: authErrors},
		a.auth(a.handleGetSession))
	a.route("POST /api/v1/sessions/{id}/close", Op{Summary: "Close a session: disconnects everyone and timestamps the journal", Tags: tags, Auth: "bearer",
		Response: sessions.Session{}, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleCloseSession))
	a.route("POST /api/v1/sessions/{id}/invitations", Op{Summary: "Invite someone with a role; returns their token and join link once", Tags: tags, Auth: "bearer",
		Request: sessions.NewInvitation{}, Response: sessions.Invitation{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleInvite))
	a.route("DELETE /api/v1/sessions/{id}/invitations/{pid}", Op{Summary: "Revoke an invitation (disconnects its holder)", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleRevokeInvitation))
	a.route("GET /api/v1/sessions/{id}/assignable-staff", Op{Summary: "Staff members the caller may assign to the session (the clerk's judges, the notary's embassy officers)", Tags: tags, Auth: "bearer",
		Response: []sessions.StaffMember{}, Errors: authErrors}, a.auth(a.handleAssignable))
	a.route("POST /api/v1/sessions/{id}/assignments", Op{Summary: "Assign a staff member to the session in their own official role; they enter as themselves", Tags: tags, Auth: "bearer",
		Request: assignRequest{}, Response: sessions.Participant{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleAssign))
	a.route("DELETE /api/v1/sessions/{id}/assignments/{staff}", Op{Summary: "Withdraw a staff member's assignment (disconnects them)", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleUnassign))
	a.route("POST /api/v1/sessions/{id}/enter", Op{Summary: "Enter the room as yourself (staff): your participant, one for all your tabs and devices, and a join ticket for the signalling WebSocket", Tags: tags, Auth: "bearer",
		Response: sessions.Entry{}, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleEnter))
	a.route("POST /api/v1/sessions/{id}/public-link", Op{Summary: "Issue the link that lets anyone watch a public hearing", Tags: tags, Auth: "bearer",
		Response: sessions.PublicLink{}, Status: 201, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleCreatePublicLink))
	a.route("DELETE /api/v1/sessions/{id}/public-link", Op{Summary: "Revoke every public link of the hearing: nobody joins through them any more; observers who joined stay until removed",
		Tags: tags, Auth: "bearer", Status: 204, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleRevokePublicLinks))
	a.route("POST /api/v1/sessions/{id}/public-link/rotate", Op{Summary: "Revoke every public link of the hearing and issue a new one",
		Tags: tags, Auth: "bearer", Response: sessions.PublicLink{}, Status: 201, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleRotatePublicLink))
	a.route("GET /api/v1/public/{token}", Op{Summary: "Which hearing a public link opens", Tags: tags, Response: sessions.PublicSession{},
		Errors: []int{401, 429}}, a.h(a.handleDescribePublic))
	a.route("POST /api/v1/public/{token}/join", Op{Summary: "Join a public hearing as an observer (rate-limited)", Tags: tags,
		Request: publicJoin{}, Response: sessions.Invitation{}, Status: 201, Errors: []int{400, 401, 409, 422, 429}}, a.h(a.handleJoinPublic))
	a.route("GET /api/v1/sessions/{id}/participants", Op{Summary: "Everyone in the session with role, space and connection state", Tags: tags, Auth: "bearer",
		Response: []sessions.Participant{}, Errors: authErrors}, a.auth(a.handleParticipants))
	a.route("POST /api/v1/sessions/{id}/participants/{pid}/admit", Op{Summary: "Admit from the waiting room", Tags: tags, Auth: "bearer",
		Response: sessions.Participant{}, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleAdmit))
	a.route("POST /api/v1/sessions/{id}/participants/{pid}/move", Op{Summary: "Move to main, waiting or a consultation room", Tags: tags, Auth: "bearer",
		Request: moveRequest{}, Response: sessions.Participant{}, Errors: bodyErrors}, a.auth(a.handleMove))
	a.route("POST /api/v1/sessions/{id}/participants/{pid}/remove", Op{Summary: "Remove: disconnects and revokes the token", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleRemove))
	a.route("POST /api/v1/sessions/{id}/participants/{pid}/mute", Op{Summary: "Server-enforced mute of audio and/or video", Tags: tags, Auth: "bearer",
		Request: sessions.MuteRequest{}, Response: sessions.Participant{}, Errors: bodyErrors}, a.auth(a.handleMute))
	a.route("POST /api/v1/sessions/{id}/participants/{pid}/interpreter", Op{Summary: "Link an interpreter to a participant; whisper sends their voice to that participant only", Tags: tags, Auth: "bearer",
		Request: sessions.InterpreterRequest{}, Response: sessions.Participant{}, Errors: bodyErrors}, a.auth(a.handleInterpreter))
	a.route("POST /api/v1/sessions/{id}/consultations", Op{Summary: "Open a private consultation room and move the listed participants into it", Tags: tags, Auth: "bearer",
		Request: consultRequest{}, Response: sessions.Consultation{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleOpenConsultation))
	a.route("POST /api/v1/sessions/{id}/consultations/{cid}/close", Op{Summary: "Close a consultation room; everyone in it returns to main", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 409, 429}}, a.auth(a.handleCloseConsultation))
	a.route("GET /api/v1/sessions/{id}/journal", Op{Summary: "The session's journal entries, hash-chained", Tags: []string{"journal"}, Auth: "bearer",
		Response: []journal.Entry{}, Query: []Param{{Name: "after", Type: "integer", Description: "only entries after this sequence number"}},
		Errors: authErrors}, a.auth(a.handleSessionJournal))
	a.route("GET /api/v1/journal/verify", Op{Summary: "Verify the whole journal chain and its timestamps (admin)", Tags: []string{"journal"}, Auth: "bearer",
		Response: JournalVerification{}, Errors: []int{401, 403, 429, 500}}, a.auth(a.handleVerifyJournal))
}

// Me describes the caller.
type Me struct {
	Kind        string                `json:"kind"` // "staff" or "participant"
	Staff       *sessions.Staff       `json:"staff,omitempty"`
	Participant *sessions.Participant `json:"participant,omitempty"`
	Permissions []string              `json:"permissions"`
	// MayInvite and MayAssign are the roles the caller's role may invite
	// and assign (the invite table of docs/roles.md).
	MayInvite []access.Role `json:"may_invite"`
	MayAssign []access.Role `json:"may_assign"`
	// Credential is how the caller authenticated and until when.
	Credential sessions.Credential `json:"credential"`
	// SignIn describes the console session, when a cookie authenticated.
	SignIn *sessions.BrowserSession `json:"sign_in,omitempty"`
}

func (a *API) handleMe(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	me := Me{Staff: p.Staff, Participant: p.Participant, Credential: p.Credential}
	if b, ok := browserSession(r.Context()); ok {
		me.SignIn = &b
	}
	role := roleOfPrincipal(p)
	me.Kind = "participant"
	if p.Staff != nil {
		me.Kind = "staff"
	}
	me.Permissions = []string{}
	for _, act := range access.Actions {
		if access.Allowed(role, act) {
			me.Permissions = append(me.Permissions, string(act))
		}
	}
	me.MayInvite, me.MayAssign = nonNil(access.Invitable(role)), nonNil(access.Assignable(role))
	WriteJSON(w, http.StatusOK, me)
	return nil
}

func nonNil(rs []access.Role) []access.Role {
	if rs == nil {
		return []access.Role{}
	}
	return rs
}

func (a *API) handleAssignable(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	list, err := a.sessions.AssignableStaff(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusOK, list, err)
}

type assignRequest struct {
	StaffID uuid.UUID `json:"staff_id"`
}

func (a *API) handleAssign(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	var in assignRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	part, err := a.sessions.Assign(r.Context(), principal(r.Context()), sid, in.StaffID)
	return reply(w, http.StatusCreated, part, err)
}

func (a *API) handleUnassign(w http.ResponseWriter, r *http.Request) error {
	sid, staffID, err := ids(r, "staff")
	if err != nil {
		return err
	}
	if err := a.sessions.Unassign(r.Context(), principal(r.Context()), sid, staffID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleEnter(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	e, err := a.sessions.Enter(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusOK, e, err)
}

// pathID parses a UUID path parameter; a malformed one names nothing, so
// it is a 404 like any other unknown resource.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, fault.New(fault.NotFound, "%s %q is not a valid id", name, r.PathValue(name))
	}
	return id, nil
}

// ids parses the session id and, when named, a second id.
func ids(r *http.Request, second string) (uuid.UUID, uuid.UUID, error) {
	sid, err := pathID(r, "id")
	if err != nil || second == "" {
		return sid, uuid.Nil, err
	}
	other, err := pathID(r, second)
	return sid, other, err
}

func (a *API) handleCreateSession(w http.ResponseWriter, r *http.Request) error {
	var in sessions.NewSession
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	sess, err := a.sessions.Create(r.Context(), principal(r.Context()), in)
	return reply(w, http.StatusCreated, sess, err)
}

// parseDay accepts RFC 3339 or a plain date (midnight UTC).
func parseDay(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, BadRequest("bad_query", "%s=%q: want RFC 3339 (2026-11-23T09:00:00Z) or a date (2026-11-23)", field, v)
}

func (a *API) handleListSessions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := sessions.Filter{State: sessions.State(q.Get("state")), Kind: access.Kind(q.Get("kind"))}
	var err error
	if f.From, err = parseDay("from", q.Get("from")); err != nil {
		return err
	}
	if f.To, err = parseDay("to", q.Get("to")); err != nil {
		return err
	}
	list, err := a.sessions.List(r.Context(), principal(r.Context()), f)
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleGetSession(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	sess, _, err := a.sessions.Authorize(r.Context(), principal(r.Context()), sid, access.ViewSession)
	if err != nil {
		return err
	}
	v, err := a.view(r.Context(), sess)
	return reply(w, http.StatusOK, v, err)
}

func (a *API) handleCloseSession(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	// The recording ends with the session: stopped and stored first, so
	// the journal shows it before the close.
	if a.recording != nil {
		if _, _, err := a.sessions.Authorize(r.Context(), principal(r.Context()), sid, access.Close); err == nil {
			if _, err := a.recording.Stop(r.Context(), sid, principal(r.Context()).Actor()); err != nil && !errors.Is(err, recording.ErrNotRecording) {
				a.log.Error("stopping the recording at close", "session", sid, "err", err)
			}
		}
	}
	sess, err := a.sessions.Close(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusOK, sess, err)
}

func (a *API) handleInvite(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	var in sessions.NewInvitation
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	inv, err := a.sessions.Invite(r.Context(), principal(r.Context()), sid, in)
	return reply(w, http.StatusCreated, inv, err)
}

func (a *API) handleRevokeInvitation(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	if err := a.sessions.RevokeInvitation(r.Context(), principal(r.Context()), sid, pid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleCreatePublicLink(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	link, err := a.sessions.CreatePublicLink(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusCreated, link, err)
}

func (a *API) handleRevokePublicLinks(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	if _, err := a.sessions.RevokePublicLinks(r.Context(), principal(r.Context()), sid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleRotatePublicLink(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	link, err := a.sessions.RotatePublicLink(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusCreated, link, err)
}

func (a *API) handleDescribePublic(w http.ResponseWriter, r *http.Request) error {
	var desc sessions.PublicSession
	err := a.authFailures.Guard(a.clients.Of(r), "failed authentications", func() error {
		var err error
		desc, err = a.sessions.DescribePublicLink(r.Context(), r.PathValue("token"))
		return err
	})
	return reply(w, http.StatusOK, desc, err)
}

type publicJoin struct {
	Name string `json:"name"`
}

func (a *API) handleJoinPublic(w http.ResponseWriter, r *http.Request) error {
	addr := a.clients.Of(r)
	if blocked, wait := a.publicJoins.Blocked(addr); blocked {
		return tooMany(wait, "public joins")
	}
	var in publicJoin
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	var (
		inv     sessions.Invitation
		joinErr error
	)
	err := a.authFailures.Guard(addr, "failed authentications", func() error {
		inv, joinErr = a.sessions.JoinPublic(r.Context(), r.PathValue("token"), in.Name)
		if isInvalid(joinErr) || errors.Is(joinErr, fault.Conflict) {
			return nil // the link is good; a bad name or a closed hearing is no guess
		}
		return joinErr
	})
	if err == nil {
		err = joinErr
	}
	if err != nil {
		return err
	}
	a.publicJoins.Failed(addr) // every join spends from the public budget
	WriteJSON(w, http.StatusCreated, inv)
	return nil
}

func isInvalid(err error) bool { return errors.Is(err, fault.Invalid) }

func (a *API) handleParticipants(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	list, err := a.sessions.Participants(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleAdmit(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	p, err := a.sessions.Admit(r.Context(), principal(r.Context()), sid, pid)
	return reply(w, http.StatusOK, p, err)
}

type moveRequest struct {
	Space string `json:"space"`
}

func (a *API) handleMove(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	var in moveRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	p, err := a.sessions.Move(r.Context(), principal(r.Context()), sid, pid, in.Space)
	return reply(w, http.StatusOK, p, err)
}

func (a *API) handleRemove(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	if err := a.sessions.Remove(r.Context(), principal(r.Context()), sid, pid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleMute(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	var in sessions.MuteRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	p, err := a.sessions.Mute(r.Context(), principal(r.Context()), sid, pid, in)
	return reply(w, http.StatusOK, p, err)
}

func (a *API) handleInterpreter(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	var in sessions.InterpreterRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	p, err := a.sessions.LinkInterpreter(r.Context(), principal(r.Context()), sid, pid, in)
	return reply(w, http.StatusOK, p, err)
}

type consultRequest struct {
	ParticipantIDs []uuid.UUID `json:"participant_ids"`
}

func (a *API) handleOpenConsultation(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	var in consultRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	c, err := a.sessions.OpenConsultation(r.Context(), principal(r.Context()), sid, in.ParticipantIDs)
	return reply(w, http.StatusCreated, c, err)
}

func (a *API) handleCloseConsultation(w http.ResponseWriter, r *http.Request) error {
	sid, cid, err := ids(r, "cid")
	if err != nil {
		return err
	}
	if err := a.sessions.CloseConsultation(r.Context(), principal(r.Context()), sid, cid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleSessionJournal(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	if _, _, err := a.sessions.Authorize(r.Context(), principal(r.Context()), sid, access.SeeJournal); err != nil {
		return err
	}
	after := int64(0)
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return BadRequest("bad_query", "after=%q: want a sequence number", v)
		}
		after = n
	}
	entries, err := a.journal.Session(r.Context(), sid, after, 0)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []journal.Entry{}
	}
	WriteJSON(w, http.StatusOK, entries)
	return nil
}

// JournalVerification is the answer of GET /api/v1/journal/verify.
type JournalVerification struct {
	Valid       bool            `json:"valid"`
	Report      *journal.Report `json:"report,omitempty"`
	BrokenSeq   int64           `json:"broken_seq,omitempty"`
	BrokenError string          `json:"broken_reason,omitempty"`
}

func (a *API) handleVerifyJournal(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	if p.Staff == nil || !access.Allowed(p.Staff.Role, access.VerifyJournal) {
		return &access.ForbiddenError{Role: roleOfPrincipal(p), Action: access.VerifyJournal}
	}
	rep, err := a.journal.Verify(r.Context(), a.verifyToken)
	var broken *journal.BrokenError
	switch {
	case errors.As(err, &broken):
		WriteJSON(w, http.StatusOK, JournalVerification{Valid: false, BrokenSeq: broken.Seq, BrokenError: broken.Reason})
	case err != nil:
		return err
	default:
		WriteJSON(w, http.StatusOK, JournalVerification{Valid: true, Report: &rep})
	}
	return nil
}

func roleOfPrincipal(p sessions.Principal) access.Role {
	switch {
	case p.Staff != nil:
		return p.Staff.Role
	case p.Participant != nil:
		return p.Participant.Role
	}
	return ""
}
