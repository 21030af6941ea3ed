package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// world is what one staff member's sessions hold: a hearing with a
// participant, a document and a consultation; a notarial act with an
// identity check and a register entry.
type world struct {
	staffClerk, staffNotary string
	hearing, act            uuid.UUID
	judge, officer          person
	party                   sessions.Invitation
	doc, consultation       uuid.UUID
	check, entry            uuid.UUID
}

func newWorld(t *testing.T, h *harness) world {
	t.Helper()
	ctx := context.Background()
	w := world{staffClerk: h.staffToken(access.Clerk), staffNotary: h.staffToken(access.Notary)}
	w.hearing = h.createSession(w.staffClerk, map[string]any{"kind": "hearing", "title": "Hearing " + randomSuffix()}).ID
	w.judge = h.official(w.staffClerk, w.hearing, "Judge", access.Judge)
	w.party = h.invite(w.staffClerk, w.hearing, "Party", access.Party)
	var up api.UploadResponse
	h.must(h.upload(w.staffClerk, w.hearing.String(), "doc.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &up)
	w.doc = up.ID
	var c sessions.Consultation
	h.must(h.do("POST", "/api/v1/sessions/"+w.hearing.String()+"/consultations", w.judge.Token,
		map[string]any{"participant_ids": []uuid.UUID{w.party.ParticipantID}}), 201).decode(t, &c)
	w.consultation = c.ID

	w.act = h.createSession(w.staffNotary, map[string]any{"kind": "notarisation", "title": "Act " + randomSuffix(), "act_type": "other"}).ID
	w.officer = h.official(w.staffNotary, w.act, "Officer", access.EmbassyOfficer)
	principal := h.invite(w.staffNotary, w.act, "Principal", access.Principal)
	var ch acts.Check
	h.must(h.do("POST", "/api/v1/sessions/"+w.act.String()+"/identity-checks", w.officer.Token,
		map[string]any{"participant_id": principal.ParticipantID, "mrz": td3("TAMM", "MARI", "K0123456")}), 201).decode(t, &ch)
	w.check = ch.ID
	if _, err := h.db.ExecContext(ctx, `INSERT INTO acts (session_id, state) VALUES ($1, 'notarised')`, w.act.String()); err != nil {
		t.Fatal(err)
	}
	var sealed api.SealResponse
	h.must(h.do("POST", "/api/v1/sessions/"+w.act.String()+"/seal", w.staffNotary, nil), 200).decode(t, &sealed)
	w.entry = sealed.Entry.ID
	return w
}

// TestNotFoundRevealsNothing: asking for another session's things — the
// session, its participants, documents, consultations, identity checks,
// journal, register entries — answers exactly what asking for things that
// do not exist answers: 404 with the same body, naming neither the other
// session nor the thing.
func TestNotFoundRevealsNothing(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	mine, theirs := newWorld(t, h), newWorld(t, h)
	s := func(id uuid.UUID, rest string) string { return "/api/v1/sessions/" + id.String() + rest }
	type probe struct {
		what          string
		method, token string
		path          func(w world) string // the path naming w's things
		body          any
	}
	probes := []probe{
		{"a session", "GET", mine.judge.Token, func(w world) string { return s(w.hearing, "") }, nil},
		{"a session, by staff", "GET", mine.staffClerk, func(w world) string { return s(w.hearing, "") }, nil},
		{"a session's participants", "GET", mine.judge.Token, func(w world) string { return s(w.hearing, "/participants") }, nil},
		{"a session's journal", "GET", mine.staffClerk, func(w world) string { return s(w.hearing, "/journal") }, nil},
		{"a session's documents", "GET", mine.judge.Token, func(w world) string { return s(w.hearing, "/documents") }, nil},
		{"a participant, through my session", "POST", mine.judge.Token,
			func(w world) string { return s(mine.hearing, "/participants/"+w.party.ParticipantID.String()+"/admit") }, nil},
		{"a participant, through theirs", "POST", mine.judge.Token,
			func(w world) string { return s(w.hearing, "/participants/"+w.party.ParticipantID.String()+"/admit") }, nil},
		{"an invitation", "DELETE", mine.staffClerk,
			func(w world) string { return s(mine.hearing, "/invitations/"+w.party.ParticipantID.String()) }, nil},
		{"a document", "GET", mine.judge.Token, func(w world) string { return "/api/v1/documents/" + w.doc.String() }, nil},
		{"a document's content", "GET", mine.judge.Token, func(w world) string { return "/api/v1/documents/" + w.doc.String() + "/content" }, nil},
		{"a document to label", "PATCH", mine.staffClerk, func(w world) string { return "/api/v1/documents/" + w.doc.String() },
			map[string]any{"label": "P-1", "status": "admitted"}},
		{"a consultation", "POST", mine.judge.Token,
			func(w world) string { return s(mine.hearing, "/consultations/"+w.consultation.String()+"/close") }, nil},
		{"an identity check", "POST", mine.officer.Token,
			func(w world) string { return s(mine.act, "/identity-checks/"+w.check.String()+"/outcome") }, map[string]any{"verified": false, "reason": "x"}},
		{"an act's checks", "GET", mine.officer.Token, func(w world) string { return s(w.act, "/identity-checks") }, nil},
		{"a register entry", "POST", mine.staffNotary, func(w world) string { return "/api/v1/register/" + w.entry.String() + "/corrections" },
			map[string]any{"reason": "typo"}},
	}
	nobody := world{hearing: uuid.New(), act: uuid.New(), doc: uuid.New(), consultation: uuid.New(), check: uuid.New(), entry: uuid.New(),
		party: sessions.Invitation{ParticipantID: uuid.New()}}
	for _, p := range probes {
		t.Run(p.what, func(t *testing.T) {
			absent := h.do(p.method, p.path(nobody), p.token, p.body)
			foreign := h.do(p.method, p.path(theirs), p.token, p.body)
			if absent.Status != 404 || foreign.Status != 404 {
				t.Fatalf("%d for nothing, %d for another session's: want 404 for both (%s / %s)", absent.Status, foreign.Status, absent.Body, foreign.Body)
			}
			if string(absent.Body) != string(foreign.Body) {
				t.Errorf("another session's answers %s, nothing answers %s", foreign.Body, absent.Body)
			}
			for _, id := range []uuid.UUID{theirs.hearing, theirs.act, theirs.doc, theirs.consultation, theirs.check, theirs.entry, theirs.party.ParticipantID} {
				if strings.Contains(string(foreign.Body), id.String()) {
					t.Errorf("the 404 names %s: %s", id, foreign.Body)
				}
			}
		})
	}
}
