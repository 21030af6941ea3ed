package main

import (
	"crypto/x509"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/internal/testenv"
)

// signResult is what POST /api/v1/documents/{id}/signatures answers, or
// its error.
type signResult struct {
	Signature struct {
		Signer             string `json:"signer"`
		SigningIdentity    string `json:"signing_identity"`
		CertificateSHA256  string `json:"certificate_sha256"`
		CertificateSerial  string `json:"certificate_serial"`
		CertificateSubject string `json:"certificate_subject"`
	} `json:"signature"`
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

// judgeWithDocument makes a hearing with judge assigned and a PDF
// uploaded, and returns the document's signatures URL.
func judgeWithDocument(t *testing.T, base string, clerk, judge staffMember) string {
	t.Helper()
	var sess struct{ ID string }
	call(t, "POST", base+"/api/v1/sessions", clerk.Token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	assign(t, base, sess.ID, clerk.Token, judge.ID)
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ ID string }
	call(t, "POST", base+"/api/v1/sessions/"+sess.ID+"/documents?name=judgment.pdf", clerk.Token, pdf, 201, &doc)
	return base + "/api/v1/documents/" + doc.ID + "/signatures"
}

// An operator enrols, rotates and revokes a judge's identity with chamber
// signer while the server runs; the server signs with the current one and
// refuses the revoked one at once, and its CRL lists it.
func TestSignerCommands(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	db := []string{"--public-url", s.URL}
	clerk := addStaff(t, dir, nil, "Clerk Mets", "clerk")
	judge := addStaff(t, dir, nil, "Judge Saar", "judge")

	out, errOut, code := chamber(t, dir, append([]string{"signer", "enroll", "--staff", judge.ID, "--issue"}, db...)...)
	if code != 0 {
		t.Fatalf("signer enroll: exit %d\n%s", code, errOut)
	}
	first := strings.TrimSpace(out)
	var rec signResult
	call(t, "POST", judgeWithDocument(t, s.URL, clerk, judge), judge.Token, map[string]any{"reason": "Judgment"}, 201, &rec)
	if rec.Signature.SigningIdentity != first || !strings.Contains(rec.Signature.CertificateSubject, "CN=Judge Saar") ||
		len(rec.Signature.CertificateSHA256) != 64 {
		t.Fatalf("signed as %+v; want identity %s, Judge Saar", rec.Signature, first)
	}

	out, errOut, code = chamber(t, dir, append([]string{"signer", "enroll", "--staff", judge.ID, "--issue"}, db...)...)
	if code != 0 {
		t.Fatalf("signer enroll (rotation): exit %d\n%s", code, errOut)
	}
	second := strings.TrimSpace(out)
	list, _, code := chamber(t, dir, "signer", "list", "--staff", judge.ID)
	if code != 0 || !strings.Contains(list, first) || !strings.Contains(list, second) || strings.Count(list, "superseded") != 1 || strings.Count(list, "current") != 1 {
		t.Fatalf("signer list after rotation: exit %d\n%s", code, list)
	}
	call(t, "POST", judgeWithDocument(t, s.URL, clerk, judge), judge.Token, map[string]any{"reason": "Judgment"}, 201, &rec)
	if rec.Signature.SigningIdentity != second {
		t.Fatalf("signed with %s after rotation; want %s", rec.Signature.SigningIdentity, second)
	}
	serial := rec.Signature.CertificateSerial

	if _, errOut, code := chamber(t, dir, append([]string{"signer", "revoke", "--staff", judge.ID, "--reason", "1"}, db...)...); code != 0 {
		t.Fatalf("signer revoke: exit %d\n%s", code, errOut)
	}
	// Not silently replaced by a development identity either.
	rec = signResult{}
	call(t, "POST", judgeWithDocument(t, s.URL, clerk, judge), judge.Token, map[string]any{"reason": "Judgment"}, 409, &rec)
	if rec.Error.Code != "no_signing_identity" {
		t.Fatalf("signing after revocation: %+v", rec)
	}
	var crlDER []byte
	call(t, "GET", s.URL+"/pki/ca.crl", "", nil, 200, &crlDER)
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, e := range crl.RevokedCertificateEntries {
		listed = listed || strings.EqualFold(e.SerialNumber.Text(16), serial)
	}
	if !listed {
		t.Fatalf("the running server's CRL does not list %s, revoked by chamber signer revoke", serial)
	}
}

// Zero-config development: an official who never had an identity gets one
// at their first signature, naming them, never the seal.
func TestDevelopmentIdentityOnFirstSignature(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	clerk := addStaff(t, dir, nil, "Clerk Mets", "clerk")
	judge := addStaff(t, dir, nil, "Judge Tamm", "judge")
	var rec signResult
	call(t, "POST", judgeWithDocument(t, s.URL, clerk, judge), judge.Token, map[string]any{"reason": "Judgment"}, 201, &rec)
	if !strings.Contains(rec.Signature.CertificateSubject, "CN=Judge Tamm") || rec.Signature.SigningIdentity == "" {
		t.Fatalf("the development identity: %+v", rec.Signature)
	}
	list, _, code := chamber(t, dir, "signer", "list")
	if code != 0 || !strings.Contains(list, judge.ID) || !strings.Contains(list, "issued") {
		t.Fatalf("signer list: exit %d\n%s", code, list)
	}
}

// The development PKI keeps its first public URL in its certificates; a
// server started again on another port (a port that was taken, or
// changed) must still sign: the old CRL location is answered in process,
// where it was fetched and refused by the egress policy (500).
func TestSigningAfterThePublicURLChanged(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir, nil)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir, nil)
	if s.URL == first.URL {
		t.Fatalf("the second start kept the URL %s", s.URL)
	}
	clerk := addStaff(t, dir, nil, "Clerk Mets", "clerk")
	judge := addStaff(t, dir, nil, "Judge Tamm", "judge")
	var rec signResult
	call(t, "POST", judgeWithDocument(t, s.URL, clerk, judge), judge.Token, map[string]any{"reason": "Judgment"}, 201, &rec)
}

// A judge's key on a PKCS#11 token (SoftHSM2, the key made by opensc's
// pkcs11-tool): enrolled with the PIN in the environment, the server asks
// the judge for it at each signature; a wrong one is 403 wrong_pin.
func TestSignerOnPKCS11Token(t *testing.T) {
	// PINs no log line could hold by chance (hex, numbers).
	const pin, wrong = "pin-of-judge-saar", "pin-of-someone-else"
	hsm := testenv.NewSoftHSM(t)
	hsm.InitToken(t, "judge-card", pin)
	tool := testenv.Command(t, "pkcs11-tool")
	if out, err := exec.Command(tool, "--module", hsm.Module, "--token-label", "judge-card", "--login", "--pin", pin,
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "signing", "--id", "01").CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --keypairgen: %v\n%s", err, out)
	}
	dir := t.TempDir()
	s := startServer(t, dir, nil, "--pkcs11-module", hsm.Module)
	clerk := addStaff(t, dir, nil, "Clerk Mets", "clerk")
	judge := addStaff(t, dir, nil, "Judge Saar", "judge")
	out, code := chamberEnv(t, dir, []string{"CHAMBER_SIGNER_PIN=" + pin}, "signer", "enroll", "--staff", judge.ID, "--public-url", s.URL,
		"--pkcs11-module", hsm.Module, "--token-label", "judge-card", "--key-label", "signing", "--certify")
	if code != 0 {
		t.Fatalf("signer enroll: exit %d\n%s", code, out)
	}
	if strings.Contains(out, pin) {
		t.Fatal("the enrol command printed the PIN")
	}
	url := judgeWithDocument(t, s.URL, clerk, judge)
	var rec signResult
	call(t, "POST", url, judge.Token, map[string]any{"reason": "Judgment"}, 422, &rec)
	if rec.Error.Code != "pin_required" {
		t.Fatalf("no PIN: %+v", rec)
	}
	call(t, "POST", url, judge.Token, map[string]any{"reason": "Judgment", "pin": wrong}, 403, &rec)
	if rec.Error.Code != "wrong_pin" {
		t.Fatalf("wrong PIN: %+v", rec)
	}
	call(t, "POST", url, judge.Token, map[string]any{"reason": "Judgment", "pin": pin}, 201, &rec)
	if !strings.Contains(rec.Signature.CertificateSubject, "CN=Judge Saar") {
		t.Fatalf("signed as %+v", rec.Signature)
	}
	if strings.Contains(s.Log(), pin) || strings.Contains(s.Log(), wrong) {
		t.Fatal("the server logged a PIN")
	}
}
