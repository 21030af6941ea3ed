package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
)

// TestPresentedDocument: a document presented to the main room may be read
// by everyone there while it is shown — a witness (no see_documents) and a
// party (an exhibit not admitted) — its newest version only, and by nobody
// in the waiting room or after the presentation ends.
func TestPresentedDocument(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	ctx := context.Background()
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Presented"})
	sid := s.ID.String()
	judge := h.official(clerk, s.ID, "Judge", access.Judge)
	party := h.invite(clerk, s.ID, "Party", access.Party)
	witness := h.invite(clerk, s.ID, "Witness", access.Witness)
	waiting := h.invite(clerk, s.ID, "Second witness", access.Witness)
	for _, inv := range []string{judge.ParticipantID.String(), party.ParticipantID.String(), witness.ParticipantID.String(), waiting.ParticipantID.String()} {
		if _, err := h.svc.Connected(ctx, s.ID, uuid.MustParse(inv)); err != nil {
			t.Fatal(err)
		}
	}
	for _, inv := range []string{party.ParticipantID.String(), witness.ParticipantID.String()} {
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/participants/"+inv+"/admit", judge.Token, nil), 200)
	}
	var up api.UploadResponse
	h.must(h.upload(judge.Token, sid, "lease.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &up)
	doc := "/api/v1/documents/" + up.ID.String()

	type check struct {
		who    string
		token  string
		path   string
		status int
	}
	run := func(when string, checks []check) {
		t.Helper()
		for _, c := range checks {
			if r := h.do("GET", c.path, c.token, nil); r.Status != c.status {
				t.Errorf("%s: %s GET %s = %d, want %d (%s)", when, c.who, c.path, r.Status, c.status, r.Body)
			}
		}
	}
	hidden := []check{
		{"witness", witness.Token, doc + "/content", 403},
		{"party", party.Token, doc + "/content", 404},
		{"party", party.Token, doc, 404},
	}
	run("before presenting", hidden)

	present := func(doc *uuid.UUID) {
		t.Helper()
		payload, _ := json.Marshal(map[string]any{"document_id": doc, "page": 1})
		if _, err := h.svc.RoomMessage(ctx, s.ID, judge.ParticipantID, "present", payload); err != nil {
			t.Fatal(err)
		}
	}
	present(&up.ID)
	run("while presented", []check{
		{"witness", witness.Token, doc + "/content", 200},
		{"witness", witness.Token, doc + "/content?version=1", 200},
		{"witness", witness.Token, doc, 200},
		{"party", party.Token, doc + "/content?inline=1", 200},
		{"witness in the waiting room", waiting.Token, doc + "/content", 403},
		{"witness, another version", witness.Token, doc + "/content?version=2", 404},
		{"witness, the list", witness.Token, "/api/v1/sessions/" + sid + "/documents", 403},
	})
	var meta documents.Document
	h.must(h.do("GET", doc, witness.Token, nil), 200).decode(t, &meta)
	if len(meta.Versions) != 0 {
		t.Fatalf("a presented document shows its history: %+v", meta.Versions)
	}
	present(nil)
	run("after the presentation", hidden)
}
