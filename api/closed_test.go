package api_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// mutation is one changing REST call, made after the close.
type mutation struct {
	route string
	call  func() response
}

// TestClosedSessionRefusesEveryMutation: after a session is closed, every
// REST route that changes it answers 409 conflict — a hearing's and a
// notarial act's — and nothing is journalled after session.closed. The
// legal hold and register corrections are about the record, not the
// session: they stay possible, after the rest has been refused.
func TestClosedSessionRefusesEveryMutation(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		ctx := context.Background()
		clerk, notary := h.staffToken(access.Clerk), h.staffToken(access.Notary)
		pdf := samplePDF(t)

		// A hearing in progress: a waiting party, an interpreter, a
		// document, a public link, a consultation.
		hearing := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Closed hearing", "public": true})
		hp := func(rest string) string { return "/api/v1/sessions/" + hearing.ID.String() + rest }
		judge := h.official(clerk, hearing.ID, "Judge", access.Judge)
		party := h.invite(clerk, hearing.ID, "Party", access.Party)
		interp := h.invite(clerk, hearing.ID, "Interpreter", access.Interpreter)
		// Each is the target of one call, so that no refusal hides behind
		// another call's success.
		revokee, removee := h.invite(clerk, hearing.ID, "Revokee", access.Witness), h.invite(clerk, hearing.ID, "Removee", access.Witness)
		var up api.UploadResponse
		h.must(h.upload(clerk, hearing.ID.String(), "doc.pdf", "application/pdf", pdf), 201).decode(t, &up)
		doc := "/api/v1/documents/" + up.ID.String()
		var link sessions.PublicLink
		h.must(h.do("POST", hp("/public-link"), clerk, nil), 201).decode(t, &link)
		var cons sessions.Consultation
		h.must(h.do("POST", hp("/consultations"), judge.Token, map[string]any{"participant_ids": []uuid.UUID{interp.ParticipantID}}), 201).decode(t, &cons)

		// A notarial act ready to seal, with a pending identity check.
		act := h.createSession(notary, map[string]any{"kind": "notarisation", "title": "Closed act", "act_type": "other"})
		ap := func(rest string) string { return "/api/v1/sessions/" + act.ID.String() + rest }
		officer := h.official(notary, act.ID, "Officer", access.EmbassyOfficer)
		principal := h.invite(notary, act.ID, "Principal", access.Principal)
		var check acts.Check
		h.must(h.do("POST", ap("/identity-checks"), officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": td3("TAMM", "MARI", "K0123456")}), 201).decode(t, &check)
		if _, err := db.ExecContext(ctx, `INSERT INTO acts (session_id, state) VALUES ($1, 'notarised')`, act.ID.String()); err != nil {
			t.Fatal(err)
		}

		h.must(h.do("POST", hp("/close"), clerk, nil), 200)
		h.must(h.do("POST", ap("/close"), notary, nil), 200)

		pid := func(inv sessions.Invitation) string { return inv.ParticipantID.String() }
		for _, m := range []mutation{
			{"POST …/invitations", func() response {
				return h.do("POST", hp("/invitations"), clerk, map[string]any{"name": "Late", "role": access.Witness})
			}},
			{"DELETE …/invitations/{pid}", func() response { return h.do("DELETE", hp("/invitations/"+pid(revokee)), clerk, nil) }},
			{"POST …/public-link", func() response { return h.do("POST", hp("/public-link"), clerk, nil) }},
			{"POST …/public-link/rotate", func() response { return h.do("POST", hp("/public-link/rotate"), clerk, nil) }},
			{"DELETE …/public-link", func() response { return h.do("DELETE", hp("/public-link"), clerk, nil) }},
			{"POST /public/{token}/join", func() response {
				return h.do("POST", "/api/v1/public/"+link.Token+"/join", "", map[string]any{"name": "Latecomer"})
			}},
			{"POST …/admit", func() response { return h.do("POST", hp("/participants/"+pid(party)+"/admit"), judge.Token, nil) }},
			{"POST …/move", func() response {
				return h.do("POST", hp("/participants/"+pid(party)+"/move"), judge.Token, map[string]any{"space": "main"})
			}},
			{"POST …/mute", func() response {
				return h.do("POST", hp("/participants/"+pid(party)+"/mute"), judge.Token, map[string]any{"audio": true})
			}},
			{"POST …/interpreter", func() response {
				return h.do("POST", hp("/participants/"+pid(interp)+"/interpreter"), judge.Token, map[string]any{"for": party.ParticipantID})
			}},
			{"POST …/remove", func() response { return h.do("POST", hp("/participants/"+pid(removee)+"/remove"), judge.Token, nil) }},
			{"POST …/consultations", func() response {
				return h.do("POST", hp("/consultations"), judge.Token, map[string]any{"participant_ids": []uuid.UUID{party.ParticipantID}})
			}},
			{"POST …/consultations/{cid}/close", func() response {
				return h.do("POST", hp("/consultations/"+cons.ID.String()+"/close"), judge.Token, nil)
			}},
			{"POST …/documents", func() response { return h.upload(clerk, hearing.ID.String(), "late.txt", "text/plain", []byte("late")) }},
			{"PATCH /documents/{id}", func() response {
				return h.do("PATCH", doc, clerk, map[string]any{"label": "P-1", "status": "admitted"})
			}},
			{"POST /documents/{id}/signatures", func() response {
				return h.do("POST", doc+"/signatures", judge.Token, map[string]any{"reason": "r", "location": "l"})
			}},
			{"POST …/close", func() response { return h.do("POST", hp("/close"), clerk, nil) }},
			{"POST …/identity-checks", func() response {
				return h.do("POST", ap("/identity-checks"), officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": td3("TAMM", "MARI", "K0123456")})
			}},
			{"POST …/stills", func() response {
				return h.raw("POST", ap("/identity-checks/"+check.ID.String()+"/stills?kind=face"), officer.Token, "image/png", pngBytes(t))
			}},
			{"POST …/outcome", func() response {
				return h.do("POST", ap("/identity-checks/"+check.ID.String()+"/outcome"), officer.Token, map[string]any{"verified": false, "reason": "damaged"})
			}},
			{"POST …/seal", func() response { return h.do("POST", ap("/seal"), notary, nil) }},
		} {
			if r := m.call(); r.Status != 409 || r.errorCode() != "conflict" {
				t.Errorf("%s after close: %d %s, want 409 conflict", m.route, r.Status, r.Body)
			}
		}
		for _, sid := range []uuid.UUID{hearing.ID, act.ID} {
			entries, err := h.jnl.Session(ctx, sid, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if last := entries[len(entries)-1]; last.Action != "session.closed" {
				t.Errorf("journalled after the close: %s %s", last.Action, last.Details)
			}
		}
		// The record itself may still be preserved.
		h.must(h.do("POST", ap("/legal-hold"), notary, map[string]any{"on": true}), 200)
	})
}
