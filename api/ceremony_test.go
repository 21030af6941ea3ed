package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/acts/mrz"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/bundle/bundletest"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
)

// td3 builds a valid passport MRZ expiring in five years.
func td3(surname, given, number string) string {
	text, err := mrz.FormatTD3(mrz.Document{Type: "P", IssuingState: "EST", Surname: surname, GivenNames: given, Number: number,
		Nationality: "EST", BirthDate: "1985-03-15", Sex: "F", ExpiryDate: time.Now().AddDate(5, 0, 0).Format(time.DateOnly),
		OptionalData: "38503150123"})
	if err != nil {
		panic(err)
	}
	return text
}

func pngBytes(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range 32 {
		img.Set(i, i, color.RGBA{200, 10, 10, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestNotarialActLifecycle walks a notarial act through every step over
// REST on both engines, refusing each step taken out of order, and checks
// the register and the evidence bundle; once more on PostgreSQL with the
// evidence in MinIO, where retention and legal hold are S3 Object Lock.
func TestNotarialActLifecycle(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		notarialActLifecycle(t, newHarness(t, db))
	})
	t.Run("postgres+minio", func(t *testing.T) {
		notarialActLifecycle(t, newHarnessWithStore(t, databasetest.Open(t, database.Postgres), minioStore(t), 8<<20))
	})
}

func notarialActLifecycle(t *testing.T, h *harness) {
	notaryStaff := h.namedStaff("Notary Kadri Mets", access.Notary).Token
	s := h.createSession(notaryStaff, map[string]any{"kind": "notarisation", "title": "Will of Mari Tamm", "act_type": "will"})
	sid := s.ID.String()
	notary := h.self(notaryStaff, s.ID)
	officer := h.official(notaryStaff, s.ID, "Consul Jaan Saar", access.EmbassyOfficer)
	principal := h.invite(notaryStaff, s.ID, "Mari Tamm", access.Principal)

	var act api.SessionView
	h.must(h.do("GET", "/api/v1/sessions/"+sid, notary.Token, nil), 200).decode(t, &act)
	if act.Act == nil || act.Act.State != acts.Draft {
		t.Fatalf("new act: %+v", act.Act)
	}
	var draft api.UploadResponse
	h.must(h.upload(notary.Token, sid, "will.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &draft)
	docPath := "/api/v1/documents/" + draft.ID.String()
	signBody := map[string]any{"reason": "I agree", "location": "London"}

	// The notary designates the act's document before anyone signs.
	designate := "/api/v1/sessions/" + sid + "/act/document"
	h.must(h.do("POST", docPath+"/signatures", principal.Token, signBody), 409)
	h.must(h.do("PUT", designate, principal.Token, map[string]any{"document_id": draft.ID}), 403)
	h.must(h.do("PUT", designate, notary.Token, map[string]any{"document_id": draft.ID}), 200).decode(t, &act.Act)
	if act.Act.DocumentID == nil || *act.Act.DocumentID != draft.ID {
		t.Fatalf("designated act: %+v", act.Act)
	}

	// Out of order: signing before identity verification, the notary
	// before the principal, sealing before the notary.
	if r := h.do("POST", docPath+"/signatures", principal.Token, signBody); r.Status != 409 || !strings.Contains(string(r.Body), "identity") {
		t.Fatalf("principal signing before identity check: %d %s", r.Status, r.Body)
	}
	h.must(h.do("POST", docPath+"/signatures", notary.Token, signBody), 409)
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/seal", notary.Token, nil), 409)

	// The officer checks the passport: a bad MRZ gets field errors.
	checks := "/api/v1/sessions/" + sid + "/identity-checks"
	good := td3("TAMM", "MARI ANNE", "K0123456")
	bad := strings.Replace(good, "K0123456", "K0123457", 1)
	r := h.do("POST", checks, officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": bad})
	var e api.ErrorBody
	r.decode(t, &e)
	if r.Status != 422 || e.Error.Code != "invalid_mrz" || e.Error.Fields["number"] == "" {
		t.Fatalf("bad MRZ: %d %s", r.Status, r.Body)
	}
	specimen := "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
	r = h.do("POST", checks, officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": specimen})
	r.decode(t, &e)
	if r.Status != 422 || !strings.Contains(e.Error.Fields["expiry_date"], "expired") {
		t.Fatalf("expired specimen: %d %s", r.Status, r.Body)
	}
	h.must(h.do("POST", checks, notary.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": good}), 403)
	h.must(h.do("POST", checks, officer.Token, map[string]any{"participant_id": notary.ParticipantID, "mrz": good}), 422)
	var check acts.Check
	h.must(h.do("POST", checks, officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": good, "embassy": "Embassy of Estonia in London"}), 201).decode(t, &check)
	if check.Status != "pending" || check.Document.Surname != "TAMM" || check.Document.GivenNames != "MARI ANNE" || check.Document.Number != "K0123456" {
		t.Fatalf("check: %+v", check)
	}
	stills := checks + "/" + check.ID.String() + "/stills?kind="
	// Verifying needs both stills.
	h.must(h.do("POST", checks+"/"+check.ID.String()+"/outcome", officer.Token, map[string]any{"verified": true}), 409)
	img := pngBytes(t)
	h.must(h.raw("POST", stills+"face", officer.Token, "image/png", img), 201)
	h.must(h.raw("POST", stills+"document", officer.Token, "image/png", []byte("GIF89a not a still")), 415)
	h.must(h.raw("POST", stills+"selfie", officer.Token, "image/png", img), 422)
	h.must(h.raw("POST", stills+"document", officer.Token, "image/png", append(img, 0)), 201)
	h.must(h.do("POST", checks+"/"+check.ID.String()+"/outcome", notary.Token, map[string]any{"verified": true}), 403)
	h.must(h.do("POST", checks+"/"+check.ID.String()+"/outcome", officer.Token,
		map[string]any{"verified": true, "address": "1 Kensington Court, London W8 5DL"}), 200)
	h.must(h.do("GET", "/api/v1/sessions/"+sid, notary.Token, nil), 200).decode(t, &act)
	if act.Act.State != acts.IdentityVerified {
		t.Fatalf("after verification the act is %s", act.Act.State)
	}

	// The principal signs, then the notary; the act is notarised.
	var signed api.SignResponse
	h.must(h.do("POST", docPath+"/signatures", principal.Token, signBody), 201).decode(t, &signed)
	if !strings.Contains(signed.Signature.CertificateSubject, "MARI ANNE TAMM") {
		t.Fatalf("principal's certificate does not carry the verified name: %s", signed.Signature.CertificateSubject)
	}
	h.must(h.do("POST", docPath+"/signatures", principal.Token, signBody), 409)
	h.must(h.do("POST", docPath+"/signatures", notary.Token, map[string]any{"reason": "Notarised", "location": "Tallinn"}), 201)
	h.must(h.do("GET", "/api/v1/sessions/"+sid, notary.Token, nil), 200).decode(t, &act)
	if act.Act.State != acts.Notarised {
		t.Fatalf("after both signatures the act is %s", act.Act.State)
	}
	var sealed api.SealResponse
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/seal", principal.Token, nil), 403)
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/seal", notary.Token, map[string]any{"fee": "EUR 45.00"}), 200).decode(t, &sealed)
	want := fmt.Sprintf("%04d/000001", time.Now().Year())
	if sealed.Act.State != acts.Sealed || sealed.Act.Number != want {
		t.Fatalf("sealed act %+v, want number %s", sealed.Act, want)
	}
	// After sealing nothing changes.
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/seal", notary.Token, nil), 409)
	h.must(h.upload(notary.Token, sid, "late.txt", "text/plain", []byte("late")), 409)
	h.must(h.do("POST", docPath+"/signatures", notary.Token, signBody), 409)
	h.must(h.do("POST", checks, officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": good}), 409)

	// A legal hold covers every object of the act.
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/legal-hold", principal.Token, map[string]any{"on": true}), 403)
	var held struct{ Objects int }
	h.must(h.do("POST", "/api/v1/sessions/"+sid+"/legal-hold", notary.Token, map[string]any{"on": true}), 200).decode(t, &held)
	objs, err := h.store.List(t.Context(), "sessions/"+sid+"/")
	if err != nil || held.Objects != len(objs) || len(objs) < 5 {
		t.Fatalf("legal hold on %d objects of %d (%v)", held.Objects, len(objs), err)
	}
	for _, o := range objs {
		if !o.LegalHold {
			t.Errorf("%s is not under legal hold", o.Key)
		}
		if err := h.store.Delete(t.Context(), o.Key); err == nil {
			t.Errorf("%s was deleted under legal hold", o.Key)
		}
	}

	// The register entry holds what the statutes ask for.
	var reg []acts.RegisterEntry
	h.must(h.do("GET", "/api/v1/register", notaryStaff, nil), 200).decode(t, &reg)
	if len(reg) != 1 {
		t.Fatalf("register has %d entries", len(reg))
	}
	e0 := reg[0]
	p0 := e0.Principals[0]
	if e0.Number != want || e0.ActType != "will" || e0.Fee != "EUR 45.00" || e0.Notary != "Notary Kadri Mets" || e0.Document.SHA256 == "" ||
		p0.Name != "Mari Tamm" || p0.Address == "" || p0.Identity == nil || p0.Identity.DocumentNumber != "K0123456" ||
		p0.Identity.Embassy != "Embassy of Estonia in London" || p0.Identity.Officer != "Consul Jaan Saar" || p0.Identity.FaceStillSHA256 == "" {
		t.Fatalf("register entry: %+v", e0)
	}
	h.must(h.do("GET", "/api/v1/register", principal.Token, nil), 403)
	csvResp := h.must(h.do("GET", "/api/v1/register?format=csv", h.staffToken(access.Admin), nil), 200)
	rows, err := csv.NewReader(bytes.NewReader(csvResp.Body)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][1] != want {
		t.Fatalf("register csv: %v %q", err, csvResp.Body)
	}
	var corrected acts.RegisterEntry
	h.must(h.do("POST", "/api/v1/register/"+e0.ID.String()+"/corrections", notary.Token, map[string]any{"reason": "Fee typo", "fee": "EUR 54.00"}), 201).decode(t, &corrected)
	h.must(h.do("GET", "/api/v1/register", notaryStaff, nil), 200).decode(t, &reg)
	if len(reg) != 2 || reg[0].Fee != "EUR 45.00" || reg[1].Corrects == nil || *reg[1].Corrects != e0.ID || reg[1].Fee != "EUR 54.00" {
		t.Fatalf("after correction: %+v", reg)
	}

	// The bundle verifies offline, and any changed byte is named.
	z := h.must(h.do("GET", "/api/v1/sessions/"+sid+"/bundle", notary.Token, nil), 200).Body
	h.must(h.do("GET", "/api/v1/sessions/"+sid+"/bundle", principal.Token, nil), 403)
	rep, err := bundle.Verify(bytes.NewReader(z), int64(len(z)), h.roots)
	if err != nil || !rep.Valid {
		t.Fatalf("bundle: %v %+v", err, rep)
	}
	names := zipNames(t, z)
	for _, want := range []string{"manifest.json", "manifest.json.p7s", "journal.json", "chat.json", "session.json"} {
		if !contains(names, want) {
			t.Errorf("bundle lacks %s", want)
		}
	}
	var docs, stillsIn int
	for _, n := range names {
		if strings.HasPrefix(n, "evidence/documents/") {
			docs++
		}
		if strings.HasPrefix(n, "evidence/identity/") {
			stillsIn++
		}
	}
	if docs != 3 || stillsIn != 2 {
		t.Fatalf("bundle has %d document versions and %d stills: %v", docs, stillsIn, names)
	}
	for _, name := range names {
		tampered := bundletest.Flip(t, z, name)
		rep, err := bundle.Verify(bytes.NewReader(tampered), int64(len(tampered)), h.roots)
		if err == nil && rep.Valid {
			t.Errorf("bundle with %s changed still verifies", name)
			continue
		}
		if err == nil && !namesProblem(rep, name) {
			t.Errorf("bundle with %s changed: problems %+v do not name it", name, rep.Problems)
		}
	}
}

func namesProblem(rep *bundle.Report, name string) bool {
	for _, p := range rep.Problems {
		if p.Path == name || strings.Contains(p.Reason, name) {
			return true
		}
		// A changed signature or manifest shows as a failed signature.
		if (name == bundle.SignatureName || name == bundle.ManifestName) && (p.Path == bundle.SignatureName || p.Path == bundle.ManifestName) {
			return true
		}
	}
	return false
}

func zipNames(t testing.TB, z []byte) []string {
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range zr.File {
		out = append(out, f.Name)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
