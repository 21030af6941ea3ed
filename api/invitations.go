package api

import (
	"net/http"
	"time"

	"github.com/chamber-court/chamber/sessions"
)

// invitationRoutes are the routes that reach invited people: setting a
// session's time (which e-mails the change), re-sending a link, and the
// e-mail contacts with their delivery state.
func (a *API) invitationRoutes() {
	tags := []string{"sessions"}
	a.route("PATCH /api/v1/sessions/{id}", Op{Summary: "Set the session's time; everyone with an e-mail contact receives the change with an updated calendar event",
		Tags: tags, Auth: "bearer", Request: SessionPatch{}, Response: sessions.Session{}, Errors: bodyErrors},
		a.auth(a.handlePatchSession))
	a.route("POST /api/v1/sessions/{id}/invitations/{pid}/reissue", Op{Summary: "Re-send a link: a new token replaces the old one at once; returned once, and e-mailed when there is a contact",
		Tags: tags, Auth: "bearer", Request: sessions.Reissue{}, Response: sessions.Invitation{}, Errors: bodyErrors},
		a.auth(a.handleReissue))
	a.route("GET /api/v1/sessions/{id}/invitations", Op{Summary: "E-mail contacts of the session's invitations and how their e-mail fared (pending, sent, failed)",
		Tags: tags, Auth: "bearer", Response: []sessions.InvitationMail{}, Errors: authErrors},
		a.auth(a.handleInvitationMails))
}

// SessionPatch is the body of PATCH /api/v1/sessions/{id}.
type SessionPatch struct {
	ScheduledAt *time.Time `json:"scheduled_at"`
}

func (a *API) handlePatchSession(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	var in SessionPatch
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ScheduledAt == nil {
		return BadRequest("nothing_to_change", "give scheduled_at (RFC 3339), the one field that can change")
	}
	sess, err := a.sessions.Reschedule(r.Context(), principal(r.Context()), sid, *in.ScheduledAt)
	return reply(w, http.StatusOK, sess, err)
}

func (a *API) handleReissue(w http.ResponseWriter, r *http.Request) error {
	sid, pid, err := ids(r, "pid")
	if err != nil {
		return err
	}
	var in sessions.Reissue
	// The body is optional: without one the link is re-sent as it was.
	if r.ContentLength != 0 {
		if err := DecodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	inv, err := a.sessions.ReissueInvitation(r.Context(), principal(r.Context()), sid, pid, in)
	return reply(w, http.StatusOK, inv, err)
}

func (a *API) handleInvitationMails(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	list, err := a.sessions.InvitationMails(r.Context(), principal(r.Context()), sid)
	return reply(w, http.StatusOK, list, err)
}
