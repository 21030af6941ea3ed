package pades

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/pki"
)

// testCA is a certificate authority of the test's own, outside Chamber's
// development PKI.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, next: 1}
}

// issue makes a certificate from tmpl (subject, usages, validity filled
// in when absent) and returns it as an identity with its chain.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, above ...*x509.Certificate) pki.Identity {
	t.Helper()
	ca.next++
	tmpl.SerialNumber = big.NewInt(ca.next)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return pki.Identity{Certificate: cert, Chain: append([]*x509.Certificate{ca.cert}, above...), Key: key}
}

// A certificate's purpose decides whether its signature is trusted: a TLS
// server certificate named "Judge Kaur", from a CA the verifier trusts,
// does not sign court documents.
func TestSignerCertificatePurpose(t *testing.T) {
	p := newTestPKI(t)
	ca := newTestCA(t, "Court CA")
	sign := x509.KeyUsageDigitalSignature
	tests := []struct {
		name string
		tmpl x509.Certificate
		code string // "" for valid
	}{
		{"TLS server only", x509.Certificate{KeyUsage: sign | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ReasonExtKeyUsage},
		{"code signing", x509.Certificate{KeyUsage: sign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, ReasonExtKeyUsage},
		{"key encipherment only", x509.Certificate{KeyUsage: x509.KeyUsageKeyEncipherment}, ReasonKeyUsage},
		{"no key usage", x509.Certificate{}, ReasonKeyUsage},
		{"expired", x509.Certificate{KeyUsage: sign, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, ReasonCertificateExpired},
		{"no extended key usage", x509.Certificate{KeyUsage: sign}, ""},
		{"non-repudiation only", x509.Certificate{KeyUsage: x509.KeyUsageContentCommitment}, ""},
		{"any purpose", x509.Certificate{KeyUsage: sign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, ""},
		{"email protection", x509.Certificate{KeyUsage: sign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, ""},
		{"TLS server and email protection", x509.Certificate{KeyUsage: sign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageEmailProtection}}, ""},
		{"Microsoft document signing", x509.Certificate{KeyUsage: sign, UnknownExtKeyUsage: []asn1.ObjectIdentifier{OIDMicrosoftDocumentSigning}}, ""},
		{"Adobe authentic documents", x509.Certificate{KeyUsage: sign, UnknownExtKeyUsage: []asn1.ObjectIdentifier{OIDAdobeAuthenticDocuments}}, ""},
		{"id-kp-documentSigning", x509.Certificate{KeyUsage: sign, UnknownExtKeyUsage: []asn1.ObjectIdentifier{pki.OIDExtKeyUsageDocumentSigning}}, ""},
	}
	roots := TrustStore(ca.cert, p.auth.Root())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := tt.tmpl
			tmpl.Subject = pkix.Name{CommonName: "Judge Kaur"}
			id := ca.issue(t, &tmpl)
			doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{Signer: id.AsSigner(), Kind: Approval,
				Permissions: FormFillingAndSigning, Timestamper: p.tsa})
			rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots})
			if err != nil {
				t.Fatal(err)
			}
			s := rep.Signatures[0]
			if tt.code == "" {
				if !s.Valid {
					t.Fatalf("refused:\n%s", reportText(rep))
				}
				return
			}
			if s.Valid || rep.Valid || s.Status != StatusUntrusted || !s.Intact || len(s.Reasons) == 0 || s.Reasons[0].Code != tt.code {
				t.Fatalf("want untrusted with %s, got %s %+v", tt.code, s.Status, s.Reasons)
			}
			if s.SignerName != "Judge Kaur" || s.Reasons[0].Text == "" {
				t.Errorf("report %+v", s)
			}
		})
	}

	// An issuing certificate that restricts its purposes to TLS cannot
	// lend a signer its trust either.
	inter := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "TLS issuing CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	interCA := &testCA{cert: inter.Certificate, key: inter.Key.(*ecdsa.PrivateKey), next: 100}
	id := interCA.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Judge Kaur"}, KeyUsage: sign}, ca.cert)
	doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{Signer: id.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
	rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Signatures[0]; s.Valid || len(s.Reasons) == 0 || s.Reasons[0].Code != ReasonExtKeyUsage {
		t.Errorf("signer under a TLS-only issuing CA: %s %+v", s.Status, s.Reasons)
	}
	// And a CA nobody configured is untrusted, with its own code.
	other := newTestCA(t, "Unknown CA")
	stranger := other.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Judge Kaur"}, KeyUsage: sign})
	doc, _ = signBytes(t, genPDF(1, 0, false), SignOptions{Signer: stranger.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
	rep, _ = Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots})
	if s := rep.Signatures[0]; s.Valid || len(s.Reasons) == 0 || s.Reasons[0].Code != ReasonChainUntrusted {
		t.Errorf("signer from an unknown CA: %s %+v", s.Status, s.Reasons)
	}
}

// The operating system's roots are never trusted: in a child process
// whose system roots (SSL_CERT_FILE) hold the signer's CA, a signature
// chaining to that CA alone is not trusted.
func TestNoSystemRoots(t *testing.T) {
	if dir := os.Getenv("CHAMBER_SYSTEM_ROOTS_CHILD"); dir != "" {
		doc, err := os.ReadFile(filepath.Join(dir, "doc.pdf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, roots := range []*x509.CertPool{nil, TrustStore()} {
			rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots})
			if err != nil {
				t.Fatal(err)
			}
			if s := rep.Signatures[0]; s.Trusted || !hasReason(s, ReasonChainUntrusted) {
				t.Fatalf("trusted through the system roots:\n%s", reportText(rep))
			}
		}
		return
	}
	p := newTestPKI(t)
	ca := newTestCA(t, "Web PKI root")
	id := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Judge Kaur"}, KeyUsage: x509.KeyUsageDigitalSignature})
	doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{Signer: id.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "doc.pdf"), doc, 0o600)
	os.WriteFile(filepath.Join(dir, "roots.pem"), pki.CertificatePEM(ca.cert, p.auth.Root()), 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoSystemRoots$", "-test.v")
	cmd.Env = append(os.Environ(), "CHAMBER_SYSTEM_ROOTS_CHILD="+dir, "SSL_CERT_FILE="+filepath.Join(dir, "roots.pem"), "SSL_CERT_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// Timestamps of the development TSA are never more than
// development-grade: the verdict says so, and a production trust setup
// does not accept them at all; a production TSA gets a plain verdict.
func TestDevelopmentTimestamps(t *testing.T) {
	p := newTestPKI(t)
	dev := ltvBytes(t, p, signedForHostile(t, p, false))
	verify := func(doc []byte, roots *x509.CertPool, reject bool) *Report {
		t.Helper()
		rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots, RejectDevelopment: reject})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	rep := verify(dev, p.roots, false)
	if !rep.Valid || !rep.Development || rep.Verdict != "valid (development certificate and timestamp)" {
		t.Fatalf("development setup:\n%s", reportText(rep))
	}
	want := map[string]string{KindSignature: "development certificate and timestamp", KindDocumentTimestamp: "development timestamp"}
	for _, s := range rep.Signatures {
		if s.Timestamp == nil || !s.Timestamp.Development || s.Development != want[s.Kind] {
			t.Errorf("%s %s: timestamp %+v, development %q", s.Kind, s.Field, s.Timestamp, s.Development)
		}
	}
	if text := reportText(rep); !strings.Contains(text, "DEVELOPMENT authority") || !strings.Contains(text, "not evidence for court") {
		t.Errorf("the text does not say so:\n%s", text)
	}

	rep = verify(dev, p.roots, true)
	if rep.Valid || rep.Development || !strings.HasPrefix(rep.Verdict, "not valid") {
		t.Fatalf("production trust setup accepted development timestamps:\n%s", reportText(rep))
	}
	for _, s := range rep.Signatures {
		if s.Status != StatusUntrusted || s.Reasons[len(s.Reasons)-1].Code != ReasonDevelopmentTimestamp || s.Timestamp.Valid {
			t.Errorf("%s %s: %s %+v", s.Kind, s.Field, s.Status, s.Reasons)
		}
	}

	// A production authority: its own CA, a policy other than the
	// development one, and a signer outside the development PKI.
	ca := newTestCA(t, "Qualified TSA CA")
	tsaID := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Production TSA"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}})
	tsa, err := pki.NewTSA(tsaID, nil)
	if err != nil {
		t.Fatal(err)
	}
	tsa = tsa.WithPolicy(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})
	signer := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Registry Court"}, KeyUsage: x509.KeyUsageDigitalSignature})
	prod, _ := signBytes(t, genPDF(1, 0, false), SignOptions{Signer: signer.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: tsa})
	for _, reject := range []bool{false, true} {
		rep := verify(prod, TrustStore(ca.cert), reject)
		if !rep.Valid || rep.Development || rep.Verdict != "valid" || rep.Signatures[0].Timestamp.Development {
			t.Errorf("production TSA (reject %v):\n%s", reject, reportText(rep))
		}
	}
}

// Two signers and two document timestamps are counted as such: not as
// "4 signatures".
func TestReportCounts(t *testing.T) {
	p := newTestPKI(t)
	doc := genPDF(1, 0, false)
	for _, name := range []string{"Anna Maria Eriksson", "Jüri Õunapuu"} {
		doc, _ = signBytes(t, doc, SignOptions{Signer: p.principal(t, name), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
		doc = ltvBytes(t, p, doc)
	}
	rep := verifyBytes(t, p, doc)
	if rep.SignatureCount != 2 || rep.DocumentTimestampCount != 2 || rep.ValidSignatureCount != 2 || rep.ValidDocumentTimestampCount != 2 {
		t.Fatalf("counts %d/%d signatures, %d/%d document timestamps", rep.ValidSignatureCount, rep.SignatureCount, rep.ValidDocumentTimestampCount, rep.DocumentTimestampCount)
	}
	if rep.Summary != "2 signatures, 2 document timestamps: all valid" {
		t.Errorf("summary %q", rep.Summary)
	}
	var names []string
	for _, s := range rep.Signatures {
		if s.Kind == KindSignature {
			names = append(names, s.SignerName)
		}
	}
	if strings.Join(names, ", ") != "Anna Maria Eriksson, Jüri Õunapuu" {
		t.Errorf("signers %v", names)
	}
	text := reportText(rep)
	for _, want := range []string{"Signature #2", "Document timestamp #2", "Signer:                Jüri Õunapuu"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	bad := bytes.Clone(doc)
	bad[10] ^= 1 // in the header's binary comment, signed by both
	rep = verifyBytes(t, p, bad)
	if rep.Valid || !strings.Contains(rep.Summary, "2 of 2 signatures are not valid") {
		t.Errorf("summary of a damaged document %q", rep.Summary)
	}
}

func hasReason(s SignatureReport, code string) bool {
	for _, r := range s.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}
