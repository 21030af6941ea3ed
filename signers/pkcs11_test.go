//go:build cgo

package signers_test

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence/evidencetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/signers"
	"github.com/chamber-court/chamber/signers/signerstest"
)

var discard = slog.New(slog.DiscardHandler)

// tsaName signs the document timestamp (B-LTA) after every signature.
const tsaName = "Chamber development timestamp authority"

// bench is the signing identities service over a real database, the
// development CA and a SoftHSM2 of the test's own, with a document service
// that signs through it.
type bench struct {
	db   *database.DB
	jnl  *journal.Journal
	ca   *pki.Authority
	hsm  *testenv.SoftHSM
	svc  *signers.Service
	docs *documents.Service
	pdf  []byte
}

func newBench(t testing.TB, db *database.DB) *bench {
	t.Helper()
	hsm := testenv.NewSoftHSM(t)
	ca, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	kek, _, err := signers.LoadOrCreateKEK(filepath.Join(t.TempDir(), "signer.kek"))
	if err != nil {
		t.Fatal(err)
	}
	jnl := journal.New(journal.Config{DB: db, Timestamper: ca.TSA()})
	svc := signers.New(signers.Config{DB: db, Journal: jnl, Logger: discard, KEK: kek, CA: ca, Modules: []string{hsm.Module}})
	docs := documents.New(documents.Config{DB: db, Journal: jnl, Store: evidencetest.Local(t), Logger: discard, MaxUpload: 8 << 20,
		Retention: time.Hour, TempDir: t.TempDir(),
		Signing: &documents.Signing{Signers: signerstest.ForDocuments(svc), Principals: ca, Check: ca.CheckCertificate,
			TSA: ca.TSA(), Certificates: []*x509.Certificate{ca.Root()}}})
	pdf, err := os.ReadFile("../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	return &bench{db: db, jnl: jnl, ca: ca, hsm: hsm, svc: svc, docs: docs, pdf: pdf}
}

// official is a staff member who presides.
type official struct {
	id   uuid.UUID
	name string
	role access.Role
}

func (b *bench) official(t testing.TB, name string, role access.Role) official {
	t.Helper()
	id := uuid.New()
	if _, err := b.db.ExecContext(t.Context(), `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, 0)`,
		id.String(), name, string(role), "none:"+id.String()); err != nil {
		t.Fatal(err)
	}
	return official{id: id, name: name, role: role}
}

func (o official) caller() documents.Caller {
	return documents.Caller{Actor: "staff:" + o.id.String(), Name: o.name, Role: o.role}
}

// tokenWithKey makes a token holding a P-256 key generated on it: the
// private key never leaves the token.
func (b *bench) tokenWithKey(t testing.TB, label, pin, keyLabel string) signers.Token {
	t.Helper()
	b.hsm.InitToken(t, label, pin)
	c, err := crypto11.Configure(&crypto11.Config{Path: b.hsm.Module, TokenLabel: label, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GenerateECDSAKeyPairWithLabel([]byte{1}, []byte(keyLabel), elliptic.P256()); err != nil {
		t.Fatal(err)
	}
	return signers.Token{Module: b.hsm.Module, TokenLabel: label, KeyLabel: keyLabel}
}

// putCertificate has the CA certify the token's key and stores the
// certificate on the token beside it, as a card issuer would.
func (b *bench) putCertificate(t *testing.T, tok signers.Token, pin string, o official) {
	t.Helper()
	c, err := crypto11.Configure(&crypto11.Config{Path: tok.Module, TokenLabel: tok.TokenLabel, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k, err := c.FindKeyPair(nil, []byte(tok.KeyLabel))
	if err != nil || k == nil {
		t.Fatalf("key on the token: %v, %v", k, err)
	}
	cert, _, err := b.ca.IssueStaff(t.Context(), o.name, o.id, k.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportCertificateWithLabel([]byte{1}, []byte(tok.KeyLabel), cert); err != nil {
		t.Fatal(err)
	}
}

func (b *bench) session(t *testing.T, kind access.Kind, by official) documents.Session {
	t.Helper()
	sid := uuid.New()
	if _, err := b.db.ExecContext(t.Context(), `INSERT INTO sessions (id, kind, title, state, created_by, created_at) VALUES ($1, $2, 'Tamm v Kask', 'open', $3, 0)`,
		sid.String(), string(kind), by.id.String()); err != nil {
		t.Fatal(err)
	}
	return documents.Session{ID: sid, Kind: kind, Title: "Tamm v Kask"}
}

// sign uploads the sample PDF into sess and has o sign it.
func (b *bench) sign(t *testing.T, sess documents.Session, o official, pin string) (documents.Document, documents.SignatureRecord, error) {
	t.Helper()
	d, _, err := b.docs.Upload(t.Context(), o.caller(), sess, documents.Upload{Name: "judgment.pdf", ContentType: documents.TypePDF,
		Size: int64(len(b.pdf)), Body: bytes.NewReader(b.pdf)})
	if err != nil {
		t.Fatal(err)
	}
	doc, rec, err := b.docs.Sign(t.Context(), o.caller(), sess, d.ID, documents.SignRequest{Reason: "Judgment", Location: "Tallinn", PIN: pin}, nil)
	if err != nil {
		if after, gerr := b.docs.Get(t.Context(), d.ID); gerr != nil || after.Version != d.Version {
			t.Fatalf("a refused signature left version %d (was %d), %v", after.Version, d.Version, gerr)
		}
	}
	return doc, rec, err
}

// pdfsigSigners are the signers' common names pdfsig (poppler, NSS) reads
// from the newest version of d, the document timestamp's authority last.
func (b *bench) pdfsigSigners(t *testing.T, d documents.Document) []string {
	t.Helper()
	pdfsig := testenv.Command(t, "pdfsig")
	r, _, err := b.docs.Open(t.Context(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signed.pdf")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(pdfsig, path).CombinedOutput()
	var names []string
	for _, m := range regexp.MustCompile(`Signer Certificate Common Name: (.*)`).FindAllSubmatch(out, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Fatalf("pdfsig found no signer:\n%s", out)
	}
	return names
}

// journalled is the signature as the session's journal recorded it.
func (b *bench) journalled(t *testing.T, sess documents.Session) documents.SignatureRecord {
	t.Helper()
	entries, err := b.jnl.Session(t.Context(), sess.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "document.signed" {
			var d struct {
				Signed documents.SignatureRecord `json:"signed_version"`
			}
			if err := json.Unmarshal(e.Details, &d); err != nil {
				t.Fatal(err)
			}
			return d.Signed
		}
	}
	t.Fatal("no document.signed entry in the journal")
	return documents.SignatureRecord{}
}

func wantCode(t *testing.T, err error, kind fault.Kind, code string) {
	t.Helper()
	got, _, _ := fault.Describe(err)
	if err == nil || fault.KindOf(err) != kind || got != code {
		t.Fatalf("error %v: kind %s, code %q; want %s, %q", err, fault.KindOf(err), got, kind, code)
	}
}

func TestOfficialsSignWithTheirOwnTokenKeys(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		b := newBench(t, db)
		ctx := t.Context()
		judge, notary := b.official(t, "Judge Saar", access.Judge), b.official(t, "Notary Kask", access.Notary)

		// The judge's key is certified by the CA at enrolment; the
		// notary's token carries its certificate, read from it.
		jtok := b.tokenWithKey(t, "judge-card", "1111", "signing")
		jid, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: judge.id, Token: &jtok, PIN: "1111", Certify: true})
		if err != nil {
			t.Fatal(err)
		}
		ntok := b.tokenWithKey(t, "notary-card", "2222", "signing")
		b.putCertificate(t, ntok, "2222", notary)
		nid, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: notary.id, Token: &ntok, PIN: "2222", StorePIN: true})
		if err != nil {
			t.Fatal(err)
		}

		hearing, act := b.session(t, access.Hearing, judge), b.session(t, access.Notarisation, notary)
		jdoc, jrec, err := b.sign(t, hearing, judge, "1111")
		if err != nil {
			t.Fatal(err)
		}
		// The notary's PIN is stored: the request needs none.
		ndoc, nrec, err := b.sign(t, act, notary, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := b.pdfsigSigners(t, jdoc); !slices.Equal(got, []string{"Judge Saar", tsaName}) {
			t.Errorf("pdfsig names %q as the judgment's signer", got)
		}
		if got := b.pdfsigSigners(t, ndoc); !slices.Equal(got, []string{"Notary Kask", tsaName}) {
			t.Errorf("pdfsig names %q as the deed's signer", got)
		}
		for _, c := range []struct {
			session  documents.Session
			rec      documents.SignatureRecord
			identity signers.Identity
		}{{hearing, jrec, jid}, {act, nrec, nid}} {
			j := b.journalled(t, c.session)
			if j.SigningIdentity != c.identity.ID.String() || j.CertificateSHA256 != c.identity.CertSHA256 ||
				j.CertificateSerial != c.identity.Serial || j.CertificateSubject != c.identity.Subject || j != c.rec {
				t.Errorf("journalled %+v; want identity %s, certificate %s, serial %s, subject %s", j, c.identity.ID, c.identity.CertSHA256, c.identity.Serial, c.identity.Subject)
			}
			if c.identity.Certificate().Equal(b.ca.Seal().Certificate) {
				t.Error("an official signed with the institution's seal")
			}
		}
		if jid.CertSHA256 == nid.CertSHA256 {
			t.Error("the judge and the notary share a certificate")
		}
	})
}

func TestNobodySignsWithAnotherOfficialsIdentity(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	ctx := t.Context()
	saar, mets := b.official(t, "Judge Saar", access.Judge), b.official(t, "Judge Mets", access.Judge)
	tok := b.tokenWithKey(t, "saar-card", "1111", "signing")
	saarID, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: saar.id, Token: &tok, PIN: "1111", Certify: true})
	if err != nil {
		t.Fatal(err)
	}
	hearing := b.session(t, access.Hearing, saar)

	// Judge Mets has no identity; Judge Saar's PIN does not lend him hers.
	_, _, err = b.sign(t, hearing, mets, "1111")
	wantCode(t, err, fault.Conflict, signers.CodeNoIdentity)
	if signers.CodeNoIdentity != documents.CodeNoSigningIdentity {
		t.Fatal("documents and signers disagree on the no-identity code")
	}

	// Once he has his own, he signs as himself.
	mtok := b.tokenWithKey(t, "mets-card", "3333", "signing")
	metsID, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: mets.id, Token: &mtok, PIN: "3333", Certify: true})
	if err != nil {
		t.Fatal(err)
	}
	doc, rec, err := b.sign(t, hearing, mets, "3333")
	if err != nil {
		t.Fatal(err)
	}
	if rec.SigningIdentity != metsID.ID.String() || rec.SigningIdentity == saarID.ID.String() {
		t.Fatalf("Judge Mets signed with identity %s", rec.SigningIdentity)
	}
	if got := b.pdfsigSigners(t, doc); !slices.Equal(got, []string{"Judge Mets", tsaName}) {
		t.Fatalf("pdfsig names %q", got)
	}
	// Her PIN on his token is wrong.
	_, _, err = b.sign(t, hearing, mets, "1111")
	wantCode(t, err, fault.Forbidden, signers.CodeWrongPIN)
}

func TestWrongPINIsTheSignersToCorrect(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	judge := b.official(t, "Judge Saar", access.Judge)
	tok := b.tokenWithKey(t, "judge-card", "1111", "signing")
	if _, err := b.svc.Enroll(t.Context(), "system", signers.Enrolment{StaffID: judge.id, Token: &tok, PIN: "1111", Certify: true}); err != nil {
		t.Fatal(err)
	}
	hearing := b.session(t, access.Hearing, judge)
	_, _, err := b.sign(t, hearing, judge, "9999")
	wantCode(t, err, fault.Forbidden, signers.CodeWrongPIN)
	_, _, err = b.sign(t, hearing, judge, "")
	wantCode(t, err, fault.Invalid, signers.CodePINRequired)
	if _, _, err := b.sign(t, hearing, judge, "1111"); err != nil {
		t.Fatalf("the right PIN after wrong ones: %v", err)
	}
	// Enrolment checks the PIN too.
	other := b.official(t, "Judge Mets", access.Judge)
	_, err = b.svc.Enroll(t.Context(), "system", signers.Enrolment{StaffID: other.id, Token: &tok, PIN: "0000", Certify: true})
	wantCode(t, err, fault.Forbidden, signers.CodeWrongPIN)
}

func TestRevokedCertificateIsRefusedBeforeSigning(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	ctx := t.Context()
	judge := b.official(t, "Judge Saar", access.Judge)
	tok := b.tokenWithKey(t, "judge-card", "1111", "signing")
	id, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: judge.id, Token: &tok, PIN: "1111", StorePIN: true, Certify: true})
	if err != nil {
		t.Fatal(err)
	}
	hearing := b.session(t, access.Hearing, judge)

	// Revoked at the CA alone (a revocation list another process wrote,
	// say): the certificate check refuses it.
	if err := b.ca.Revoke(ctx, id.Certificate().SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.sign(t, hearing, judge, "")
	wantCode(t, err, fault.Conflict, "certificate_refused")

	// Revoked through the service: the identity itself is refused, and
	// is not replaced by another on the quiet.
	if _, err := b.svc.Revoke(ctx, "system", judge.id, 1); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.sign(t, hearing, judge, "")
	wantCode(t, err, fault.Conflict, signers.CodeNoIdentity)
	entries, err := b.jnl.Session(ctx, hearing.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "document.signed" {
			t.Fatalf("a refused signature was journalled: %s", e.Details)
		}
	}
}

func TestEnrollingAgainSupersedes(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	ctx := t.Context()
	judge := b.official(t, "Judge Saar", access.Judge)
	first, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: judge.id, Issue: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := b.tokenWithKey(t, "judge-card", "1111", "signing")
	second, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: judge.id, Token: &tok, PIN: "1111", Certify: true})
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.svc.List(ctx, judge.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != first.ID || list[0].Current() || list[0].SupersededAt == nil || !list[1].Current() || list[1].ID != second.ID {
		t.Fatalf("identities after rotation: %+v", list)
	}
	_, rec, err := b.sign(t, b.session(t, access.Hearing, judge), judge, "1111")
	if err != nil {
		t.Fatal(err)
	}
	if rec.SigningIdentity != second.ID.String() {
		t.Fatalf("signed with %s, not the current identity %s", rec.SigningIdentity, second.ID)
	}
}

func TestModuleOutsideTheAllowListIsRefused(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	judge := b.official(t, "Judge Saar", access.Judge)
	tok := b.tokenWithKey(t, "judge-card", "1111", "signing")
	// The same library under another name: the allow-list is of paths
	// the operator gave, not of what they resolve to.
	link := filepath.Join(t.TempDir(), "libother.so")
	if err := os.Symlink(b.hsm.Module, link); err != nil {
		t.Fatal(err)
	}
	tok.Module = link
	_, err := b.svc.Enroll(t.Context(), "system", signers.Enrolment{StaffID: judge.id, Token: &tok, PIN: "1111", Certify: true})
	if err == nil || fault.KindOf(err) != fault.Conflict {
		t.Fatalf("a module not on the allow-list: %v", err)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want a fault, got %v", err)
	}
}

// TestConfirmationOfHeldAndTypedIdentities: under the confirmation policy
// sign-in, a token identity whose PIN the official types is confirmed by
// that PIN — over an API token or a stale sign-in alike — while identities
// Chamber holds (a token with a stored PIN, a CA-issued key sealed under
// the KEK) sign only with a console sign-in recent enough; a refusal
// stores nothing. The journal says how each signature was confirmed.
func TestConfirmationOfHeldAndTypedIdentities(t *testing.T) {
	b := newBench(t, databasetest.Open(t, database.SQLite))
	ctx := t.Context()
	b.docs = documents.New(documents.Config{DB: b.db, Journal: b.jnl, Store: evidencetest.Local(t), Logger: discard, MaxUpload: 8 << 20,
		Retention: time.Hour, TempDir: t.TempDir(),
		Signing: &documents.Signing{Signers: signerstest.ForDocuments(b.svc), Principals: b.ca, Check: b.ca.CheckCertificate,
			TSA: b.ca.TSA(), Certificates: []*x509.Certificate{b.ca.Root()},
			Confirmation: documents.ConfirmSignIn, ReauthMaxAge: time.Minute}})
	typed, stored, issued := b.official(t, "Judge Saar", access.Judge), b.official(t, "Notary Kask", access.Notary), b.official(t, "Judge Mets", access.Judge)
	ttok := b.tokenWithKey(t, "typed-card", "1111", "signing")
	if _, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: typed.id, Token: &ttok, PIN: "1111", Certify: true}); err != nil {
		t.Fatal(err)
	}
	stok := b.tokenWithKey(t, "stored-card", "2222", "signing")
	if _, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: stored.id, Token: &stok, PIN: "2222", StorePIN: true, Certify: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Enroll(ctx, "system", signers.Enrolment{StaffID: issued.id, Issue: true}); err != nil {
		t.Fatal(err)
	}
	apiToken := documents.Credential{APIToken: true}
	stale := documents.Credential{Console: true, AuthTime: time.Now().Add(-time.Hour)}
	never := documents.Credential{Console: true}
	fresh := documents.Credential{Console: true, AuthTime: time.Now().Add(-10 * time.Second).Truncate(time.Second)}

	sign := func(o official, pin string, cred documents.Credential) (documents.Session, documents.SignatureRecord, error) {
		t.Helper()
		sess := b.session(t, access.Hearing, o)
		d, _, err := b.docs.Upload(ctx, o.caller(), sess, documents.Upload{Name: "judgment.pdf", ContentType: documents.TypePDF,
			Size: int64(len(b.pdf)), Body: bytes.NewReader(b.pdf)})
		if err != nil {
			t.Fatal(err)
		}
		_, rec, err := b.docs.Sign(ctx, o.caller(), sess, d.ID, documents.SignRequest{Reason: "Judgment", Location: "Tallinn", PIN: pin, Credential: cred}, nil)
		if err != nil {
			after, gerr := b.docs.Get(ctx, d.ID)
			entries, jerr := b.jnl.Session(ctx, sess.ID, 0, 100)
			if gerr != nil || jerr != nil || after.Version != d.Version {
				t.Fatalf("a refused signature left version %d (was %d): %v %v", after.Version, d.Version, gerr, jerr)
			}
			for _, e := range entries {
				if e.Action == "document.signed" {
					t.Fatal("a refused signature was journalled")
				}
			}
		}
		return sess, rec, err
	}

	// The PIN the judge types confirms, whatever the request came with.
	for name, cred := range map[string]documents.Credential{"API token": apiToken, "stale sign-in": stale} {
		sess, rec, err := sign(typed, "1111", cred)
		if err != nil {
			t.Fatalf("%s with a typed PIN: %v", name, err)
		}
		if rec.Confirmation != documents.ConfirmedByPIN || !rec.ConfirmationAuthTime.IsZero() || b.journalled(t, sess).Confirmation != documents.ConfirmedByPIN {
			t.Fatalf("%s with a typed PIN: confirmation %q", name, rec.Confirmation)
		}
	}
	// Identities Chamber holds need a recent sign-in.
	for _, o := range []official{stored, issued} {
		_, _, err := sign(o, "", apiToken)
		wantCode(t, err, fault.Forbidden, documents.CodeConfirmationRequired)
		_, _, err = sign(o, "", stale)
		wantCode(t, err, fault.Forbidden, documents.CodeReauthRequired)
		_, _, err = sign(o, "", never)
		wantCode(t, err, fault.Forbidden, documents.CodeReauthRequired)
		_, _, err = sign(o, "", documents.Credential{})
		wantCode(t, err, fault.Forbidden, documents.CodeConfirmationRequired)
		sess, rec, err := sign(o, "", fresh)
		if err != nil {
			t.Fatalf("%s with a fresh sign-in: %v", o.name, err)
		}
		j := b.journalled(t, sess)
		if rec.Confirmation != documents.ConfirmedBySignIn || !rec.ConfirmationAuthTime.Equal(fresh.AuthTime) ||
			j.Confirmation != documents.ConfirmedBySignIn || !j.ConfirmationAuthTime.Equal(fresh.AuthTime) {
			t.Fatalf("%s with a fresh sign-in: %+v, journalled %+v", o.name, rec, j)
		}
	}
}
