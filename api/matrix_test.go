package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// cell is the world one matrix cell is tested in: a fresh session, the
// caller's token in the role under test (an invitation for a participant,
// an API token of a staff member assigned to the session for an official),
// and someone waiting to be acted on.
type cell struct {
	sid     uuid.UUID
	token   string
	target  sessions.Invitation // a waiting participant
	interp  sessions.Invitation // an interpreter
	staff   string              // the creating staff member's token
	kind    access.Kind
	session sessions.Session
	doc     string // a PDF uploaded by the creating staff member
}

// restAction is one matrix action expressed as a REST call.
type restAction struct {
	action access.Action
	call   func(h *harness, c cell) response
}

func sessionPath(c cell, rest string) string { return "/api/v1/sessions/" + c.sid.String() + rest }

// restActions lists every action the REST API exposes. Actions that only
// exist on the signalling connection (publish, chat, present) are covered
// by the sessions package's tests; later issues add theirs here.
var restActions = []restAction{
	{access.ViewSession, func(h *harness, c cell) response { return h.do("GET", sessionPath(c, ""), c.token, nil) }},
	{access.Invite, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/invitations"), c.token, map[string]any{"name": "New", "role": access.Witness})
	}},
	{access.Reschedule, func(h *harness, c cell) response {
		return h.do("PATCH", sessionPath(c, ""), c.token, map[string]any{"scheduled_at": time.Now().Add(48 * time.Hour)})
	}},
	{access.Invite, func(h *harness, c cell) response { // re-sending a link is inviting again
		return h.do("POST", sessionPath(c, "/invitations/"+c.target.ParticipantID.String()+"/reissue"), c.token, nil)
	}},
	{access.Revoke, func(h *harness, c cell) response {
		return h.do("DELETE", sessionPath(c, "/invitations/"+c.target.ParticipantID.String()), c.token, nil)
	}},
	{access.AssignStaff, func(h *harness, c cell) response {
		role := access.Clerk
		if c.kind == access.Notarisation {
			role = access.EmbassyOfficer
		}
		return h.do("POST", sessionPath(c, "/assignments"), c.token, map[string]any{"staff_id": h.namedStaff("Assignee", role).StaffID})
	}},
	{access.PublicLink, func(h *harness, c cell) response { return h.do("POST", sessionPath(c, "/public-link"), c.token, nil) }},
	{access.PublicLink, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/public-link/rotate"), c.token, nil)
	}},
	{access.PublicLink, func(h *harness, c cell) response { return h.do("DELETE", sessionPath(c, "/public-link"), c.token, nil) }},
	{access.SeeParticipant, func(h *harness, c cell) response { return h.do("GET", sessionPath(c, "/participants"), c.token, nil) }},
	{access.Admit, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/participants/"+c.target.ParticipantID.String()+"/admit"), c.token, nil)
	}},
	{access.Move, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/participants/"+c.target.ParticipantID.String()+"/move"), c.token, map[string]any{"space": "main"})
	}},
	{access.Mute, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/participants/"+c.target.ParticipantID.String()+"/mute"), c.token, map[string]any{"audio": true})
	}},
	{access.Remove, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/participants/"+c.target.ParticipantID.String()+"/remove"), c.token, nil)
	}},
	{access.Consult, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/consultations"), c.token, map[string]any{"participant_ids": []string{c.target.ParticipantID.String()}})
	}},
	{access.LinkInterp, func(h *harness, c cell) response {
		return h.do("POST", sessionPath(c, "/participants/"+c.interp.ParticipantID.String()+"/interpreter"), c.token,
			map[string]any{"for": c.target.ParticipantID.String(), "whisper": true})
	}},
	{access.SeeJournal, func(h *harness, c cell) response { return h.do("GET", sessionPath(c, "/journal"), c.token, nil) }},
	{access.SeeRecording, func(h *harness, c cell) response { return h.do("GET", sessionPath(c, "/recordings"), c.token, nil) }},
	{access.Close, func(h *harness, c cell) response { return h.do("POST", sessionPath(c, "/close"), c.token, nil) }},
	{access.Upload, func(h *harness, c cell) response {
		return h.upload(c.token, c.sid.String(), "note.txt", "text/plain", []byte("a note for the court"))
	}},
	{access.SeeDocuments, func(h *harness, c cell) response { return h.do("GET", sessionPath(c, "/documents"), c.token, nil) }},
	{access.LabelExhibit, func(h *harness, c cell) response {
		return h.do("PATCH", "/api/v1/documents/"+c.doc, c.token, map[string]any{"label": "P-1", "status": "admitted"})
	}},
	{access.Sign, func(h *harness, c cell) response {
		return h.do("POST", "/api/v1/documents/"+c.doc+"/signatures", c.token, map[string]any{"reason": "r", "location": "l"})
	}},
}

// TestPermissionMatrix checks every cell of the matrix that the REST API
// exposes: for each role and action, a fresh session, one real request,
// and 403 naming the action exactly when the matrix forbids it.
func TestPermissionMatrix(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	notary := h.staffToken(access.Notary)
	admin := h.staffToken(access.Admin)
	pdf := samplePDF(t)

	newCell := func(t *testing.T, role access.Role) cell {
		kind := access.Hearing
		creator := clerk
		if role.InKind(access.Notarisation) && !role.InKind(access.Hearing) {
			kind, creator = access.Notarisation, notary
		}
		body := map[string]any{"kind": kind, "title": "Matrix " + string(role)}
		if kind == access.Notarisation {
			body["act_type"] = "contract"
		} else {
			body["public"] = true
		}
		s := h.createSession(creator, body)
		c := cell{sid: s.ID, staff: creator, kind: kind, session: s}
		waiting := access.Party
		if kind == access.Notarisation {
			waiting = access.Principal
		}
		c.target = h.invite(creator, s.ID, "Target", waiting)
		c.interp = h.invite(creator, s.ID, "Interpreter", access.Interpreter)
		var up api.UploadResponse
		h.must(h.upload(creator, s.ID.String(), "doc.pdf", "application/pdf", pdf), 201).decode(t, &up)
		c.doc = up.ID.String()
		switch {
		case role == access.Admin:
			c.token = admin
		case role == access.Notary:
			c.token = creator // the notary who created the act presides over it
		case role.IsOfficial():
			c.token = h.official(creator, s.ID, "Caller", role).Token
		default:
			c.token = h.invite(creator, s.ID, "Caller", role).Token
		}
		return c
	}
	for _, role := range access.MatrixRoles {
		for _, ra := range restActions {
			t.Run(fmt.Sprintf("%s/%s", role, ra.action), func(t *testing.T) {
				c := newCell(t, role)
				r := ra.call(h, c)
				allowed := access.Allowed(role, ra.action)
				switch {
				case allowed && (r.Status == http.StatusForbidden || r.Status == http.StatusUnauthorized || r.Status == http.StatusNotFound):
					t.Fatalf("%s may %s but got %d %s", role, ra.action, r.Status, r.Body)
				case allowed && r.Status >= 500:
					t.Fatalf("%s %s: server error %d %s", role, ra.action, r.Status, r.Body)
				case !allowed && r.Status != http.StatusForbidden:
					t.Fatalf("%s may not %s but got %d %s", role, ra.action, r.Status, r.Body)
				case !allowed && !strings.Contains(string(r.Body), string(ra.action)):
					t.Fatalf("403 does not name the action %s: %s", ra.action, r.Body)
				}
			})
		}
	}
}

// TestStaffScope: staff act in the sessions they created, admins in all;
// another staff member's session, and another session's resources, are 404.
func TestStaffScope(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerkA, clerkB := h.staffToken(access.Clerk), h.staffToken(access.Clerk)
	s := h.createSession(clerkA, map[string]any{"kind": "hearing", "title": "A's"})
	other := h.createSession(clerkB, map[string]any{"kind": "hearing", "title": "B's"})
	h.must(h.do("GET", "/api/v1/sessions/"+s.ID.String(), clerkB, nil), 404)
	h.must(h.do("GET", "/api/v1/sessions/"+s.ID.String(), h.staffToken(access.Admin), nil), 200)
	party := h.invite(clerkA, s.ID, "P", access.Party)
	judgeB := h.official(clerkB, other.ID, "J", access.Judge)
	// B's judge tries to admit A's party, through either session's path.
	h.must(h.do("POST", "/api/v1/sessions/"+s.ID.String()+"/participants/"+party.ParticipantID.String()+"/admit", judgeB.Token, nil), 404)
	h.must(h.do("POST", "/api/v1/sessions/"+other.ID.String()+"/participants/"+party.ParticipantID.String()+"/admit", judgeB.Token, nil), 404)
	// Kinds: a notary cannot schedule a hearing, a clerk cannot create a notarial act.
	h.must(h.do("POST", "/api/v1/sessions", h.staffToken(access.Notary), map[string]any{"kind": "hearing", "title": "x"}), 403)
	h.must(h.do("POST", "/api/v1/sessions", clerkA, map[string]any{"kind": "notarisation", "title": "x", "act_type": "will"}), 403)
	h.must(h.do("POST", "/api/v1/sessions", h.staffToken(access.EmbassyOfficer), map[string]any{"kind": "notarisation", "title": "x", "act_type": "will"}), 403)
	// Invitation tokens cannot create sessions, whatever their role.
	h.must(h.do("POST", "/api/v1/sessions", h.invite(clerkA, s.ID, "P", access.Party).Token, map[string]any{"kind": "hearing", "title": "x"}), 403)
	// Assigned, a judge acts in the session; withdrawn, no longer.
	h.must(h.do("GET", "/api/v1/sessions/"+other.ID.String(), judgeB.Token, nil), 200)
	h.must(h.do("DELETE", "/api/v1/sessions/"+other.ID.String()+"/assignments/"+judgeB.StaffID.String(), clerkB, nil), 204)
	h.must(h.do("GET", "/api/v1/sessions/"+other.ID.String(), judgeB.Token, nil), 404)
}
