package documents_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence/evidencetest"
)

// events records what the service pushes to rooms.
type events struct {
	mu  sync.Mutex
	got []string // session/type/document
}

func (e *events) Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage) {
	var p struct {
		DocumentID uuid.UUID `json:"document_id"`
	}
	json.Unmarshal(payload, &p)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, sessionID.String()+"/"+typ+"/"+p.DocumentID.String())
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

// TestChangesAreNotified: an upload, a label and a signature each tell the
// session's room which document changed — the event names the document
// only; a duplicate upload and a refused change tell nothing.
func TestChangesAreNotified(t *testing.T) {
	db, fail := databasetest.Failing(t, database.SQLite)
	fx := newFixture(t, db, evidencetest.Local(t), fail)
	var ev events
	fx.svc.SetNotifier(&ev)
	want := func(step string, doc uuid.UUID) {
		t.Helper()
		got := ev.take()
		if doc == uuid.Nil {
			if len(got) != 0 {
				t.Errorf("%s: events %v, want none", step, got)
			}
			return
		}
		if w := fx.sess.ID.String() + "/" + documents.EventChanged + "/" + doc.String(); len(got) != 1 || got[0] != w {
			t.Errorf("%s: events %v, want [%s]", step, got, w)
		}
	}
	body, mari := samplePDF(t), party("Mari Tamm")
	d, _, err := fx.upload(t, mari, "will.pdf", body)
	if err != nil {
		t.Fatal(err)
	}
	want("upload", d.ID)
	if _, dup, err := fx.upload(t, mari, "will.pdf", body); err != nil || !dup {
		t.Fatalf("the same upload again: dup %v, %v", dup, err)
	}
	want("duplicate upload", uuid.Nil)
	label := "P-1"
	if _, err := fx.svc.Label(t.Context(), fx.judge, fx.sess, d.ID, documents.ExhibitChange{Label: &label}); err != nil {
		t.Fatal(err)
	}
	want("label", d.ID)
	bad := "not a label"
	if _, err := fx.svc.Label(t.Context(), fx.judge, fx.sess, d.ID, documents.ExhibitChange{Label: &bad}); err == nil {
		t.Fatal("a malformed label was taken")
	}
	want("refused label", uuid.Nil)
	if _, _, err := fx.svc.Sign(t.Context(), fx.judge, fx.sess, d.ID, documents.SignRequest{Reason: "Approved"}, nil); err != nil {
		t.Fatal(err)
	}
	want("signature", d.ID)
}
