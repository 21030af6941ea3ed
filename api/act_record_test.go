package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/sessions"
)

// act is a notarial act under way over REST.
type act struct {
	h               *harness
	sid             string
	notary, officer person
	principal       sessions.Invitation
	notaryStaff     string
	doc             api.UploadResponse
}

var signBody = map[string]any{"reason": "I agree", "location": "London"}

// newAct creates a notarial act with one principal and uploads its PDF.
func newAct(t *testing.T, h *harness) *act {
	t.Helper()
	a := &act{h: h, notaryStaff: h.staffToken(access.Notary)}
	s := h.createSession(a.notaryStaff, map[string]any{"kind": "notarisation", "title": "Will of Mari Tamm", "act_type": "will"})
	a.sid = s.ID.String()
	a.notary = h.self(a.notaryStaff, s.ID)
	a.officer = h.official(a.notaryStaff, s.ID, "Consul Jaan Saar", access.EmbassyOfficer)
	a.principal = h.invite(a.notaryStaff, s.ID, "Mari Tamm", access.Principal)
	h.must(h.upload(a.notary.Token, a.sid, "will.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &a.doc)
	return a
}

func (a *act) designate(docID uuid.UUID) response {
	return a.h.do("PUT", "/api/v1/sessions/"+a.sid+"/act/document", a.notary.Token, map[string]any{"document_id": docID})
}

func (a *act) sign(token string, docID uuid.UUID) response {
	return a.h.do("POST", "/api/v1/documents/"+docID.String()+"/signatures", token, signBody)
}

// verify runs the embassy officer's identity check of the principal.
func (a *act) verify(t *testing.T) {
	t.Helper()
	h := a.h
	checks := "/api/v1/sessions/" + a.sid + "/identity-checks"
	var check acts.Check
	h.must(h.do("POST", checks, a.officer.Token, map[string]any{"participant_id": a.principal.ParticipantID, "mrz": td3("TAMM", "MARI", "K0123456")}), 201).decode(t, &check)
	img := pngBytes(t)
	h.must(h.raw("POST", checks+"/"+check.ID.String()+"/stills?kind=face", a.officer.Token, "image/png", img), 201)
	h.must(h.raw("POST", checks+"/"+check.ID.String()+"/stills?kind=document", a.officer.Token, "image/png", append(img, 0)), 201)
	h.must(h.do("POST", checks+"/"+check.ID.String()+"/outcome", a.officer.Token, map[string]any{"verified": true, "address": "1 Kensington Court"}), 200)
}

func (a *act) state(t *testing.T) acts.Act {
	t.Helper()
	var v api.SessionView
	a.h.must(a.h.do("GET", "/api/v1/sessions/"+a.sid, a.notary.Token, nil), 200).decode(t, &v)
	return *v.Act
}

func (a *act) document(t *testing.T, id uuid.UUID) documents.Document {
	t.Helper()
	var d documents.Document
	a.h.must(a.h.do("GET", "/api/v1/documents/"+id.String(), a.notary.Token, nil), 200).decode(t, &d)
	return d
}

// TestActDocumentIsDesignated: the notary designates the act's document
// before anyone signs; nobody signs before that, nobody signs another
// document of the act, and once a signature is recorded the choice is
// fixed. Before, a principal's first signature chose the act's document:
// a principal signing a draft kept the notary from signing the final text.
func TestActDocumentIsDesignated(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		a := newAct(t, h)
		var draft, text api.UploadResponse
		h.must(h.upload(a.notary.Token, a.sid, "draft.pdf", "application/pdf", append(samplePDF(t), '\n')), 201).decode(t, &draft)
		h.must(h.upload(a.notary.Token, a.sid, "notes.txt", "text/plain", []byte("notes")), 201).decode(t, &text)
		a.verify(t)

		if r := a.sign(a.principal.Token, draft.ID); r.Status != 409 || !strings.Contains(string(r.Body), "designated") {
			t.Fatalf("signing before designation: %d %s", r.Status, r.Body)
		}
		h.must(h.do("PUT", "/api/v1/sessions/"+a.sid+"/act/document", a.principal.Token, map[string]any{"document_id": a.doc.ID}), 403)
		h.must(a.designate(text.ID), 422)
		h.must(a.designate(uuid.New()), 422)
		var designated acts.Act
		h.must(a.designate(a.doc.ID), 200).decode(t, &designated)
		if designated.DocumentID == nil || *designated.DocumentID != a.doc.ID {
			t.Fatalf("designated %+v", designated)
		}
		h.must(a.sign(a.principal.Token, draft.ID), 409)
		h.must(a.sign(a.principal.Token, a.doc.ID), 201)
		// Fixed now: the notary cannot switch to the draft, and signs the
		// designated document.
		h.must(a.designate(draft.ID), 409)
		h.must(a.sign(a.notary.Token, draft.ID), 409)
		h.must(a.sign(a.notary.Token, a.doc.ID), 201)
		if st := a.state(t); st.State != acts.Notarised || *st.DocumentID != a.doc.ID {
			t.Fatalf("act after both signatures: %+v", st)
		}
		if d := a.document(t, draft.ID); d.Signatures != 0 {
			t.Fatalf("the draft carries %d signatures", d.Signatures)
		}
	})
}

// TestSignatureAndActStateCommitTogether: when the transaction recording
// the notary's signature fails — PostgreSQL: the backend waiting for the
// act's row is terminated; SQLite: the disk is full — neither the signed
// version nor the act's new state is recorded; signing again records one
// notary signature and notarises the act. Before, the signature and the
// act's state were two transactions: the signature stayed recorded, the
// act stayed signed_by_principals, and signing again added a second
// notary signature.
func TestSignatureAndActStateCommitTogether(t *testing.T) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db, fail := databasetest.Failing(t, engine)
			h := newHarness(t, db)
			a := newAct(t, h)
			h.must(a.designate(a.doc.ID), 200)
			a.verify(t)
			h.must(a.sign(a.principal.Token, a.doc.ID), 201)
			if st := a.state(t); st.State != acts.SignedByPrincipals {
				t.Fatalf("after the principal's signature the act is %s", st.State)
			}

			var r response
			call := func() error {
				r = a.sign(a.notary.Token, a.doc.ID)
				return nil
			}
			if engine == database.Postgres {
				// Only the act's row is held: the signed version alone
				// could commit, as it did before.
				release := databasetest.Lock(t, db, `SELECT state FROM acts WHERE session_id = $1 FOR UPDATE`, a.sid)
				done := make(chan struct{})
				go func() { defer close(done); call() }()
				databasetest.TerminateWaiter(t, db)
				<-done
				release()
			} else {
				fail(call)
			}
			if r.Status != http.StatusServiceUnavailable && r.Status != http.StatusInsufficientStorage {
				t.Fatalf("notary's signature during the failure: %d %s; want 503 or 507", r.Status, r.Body)
			}
			if st, d := a.state(t), a.document(t, a.doc.ID); st.State != acts.SignedByPrincipals || d.Signatures != 1 {
				t.Fatalf("after the failed signature: act %s, document signatures %d; want signed_by_principals and 1", st.State, d.Signatures)
			}

			h.must(a.sign(a.notary.Token, a.doc.ID), 201)
			if st, d := a.state(t), a.document(t, a.doc.ID); st.State != acts.Notarised || d.Signatures != 2 {
				t.Fatalf("after signing again: act %s, document signatures %d; want notarised and 2", st.State, d.Signatures)
			}
			var notarySignatures int
			if err := db.DB.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM act_signatures WHERE session_id = $1 AND role = 'notary'`,
				a.sid).Scan(&notarySignatures); err != nil || notarySignatures != 1 {
				t.Fatalf("notary signatures recorded in the act: %d, %v", notarySignatures, err)
			}
			h.must(a.sign(a.notary.Token, a.doc.ID), 409)
		})
	}
}

// TestSealWaitsForRecording: sealing is refused (409) while a recording
// runs, and succeeds once it is stopped and stored; the register then
// names the stored manifest and the bundle carries it. Before, sealing
// during a recording wrote a register entry with files: 0 and an empty
// manifest hash, and the bundle lacked the recording.
func TestSealWaitsForRecording(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		a := newAct(t, h)
		h.must(a.designate(a.doc.ID), 200)
		a.verify(t)
		h.must(a.sign(a.principal.Token, a.doc.ID), 201)
		h.must(a.sign(a.notary.Token, a.doc.ID), 201)

		rec := "/api/v1/sessions/" + a.sid + "/recording"
		h.must(h.do("POST", rec, a.notary.Token, map[string]any{"action": "start"}), 200)
		seal := "/api/v1/sessions/" + a.sid + "/seal"
		if r := h.do("POST", seal, a.notary.Token, map[string]any{"fee": "EUR 45.00"}); r.Status != 409 || !strings.Contains(string(r.Body), "recording") {
			t.Fatalf("sealing while recording: %d %s", r.Status, r.Body)
		}
		var stopped struct {
			ManifestKey    string `json:"manifest_key"`
			ManifestSHA256 string `json:"manifest_sha256"`
			StoragePending bool   `json:"storage_pending"`
		}
		h.must(h.do("POST", rec, a.notary.Token, map[string]any{"action": "stop"}), 200).decode(t, &stopped)
		if stopped.ManifestKey == "" || stopped.StoragePending {
			t.Fatalf("stopped: %+v", stopped)
		}
		var sealed api.SealResponse
		h.must(h.do("POST", seal, a.notary.Token, map[string]any{"fee": "EUR 45.00"}), 200).decode(t, &sealed)
		if len(sealed.Entry.Recordings) != 1 {
			t.Fatalf("register entry recordings: %+v", sealed.Entry.Recordings)
		}
		for _, r := range sealed.Entry.Recordings {
			if r.ManifestKey != stopped.ManifestKey || r.ManifestSHA256 != stopped.ManifestSHA256 {
				t.Fatalf("register names recording %+v; want the stored manifest %s", r, stopped.ManifestKey)
			}
		}
		z := h.must(h.do("GET", "/api/v1/sessions/"+a.sid+"/bundle", a.notary.Token, nil), 200).Body
		rep, err := bundle.Verify(bytes.NewReader(z), int64(len(z)), h.roots)
		if err != nil || !rep.Valid {
			t.Fatalf("bundle: %v %+v", err, rep)
		}
		want := "evidence/" + strings.TrimPrefix(stopped.ManifestKey, "sessions/"+a.sid+"/")
		if !contains(zipNames(t, z), want) {
			t.Fatalf("bundle lacks the recording's manifest %s: %v", want, zipNames(t, z))
		}
	})
}
