package pades

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/pki"
)

func verifyBytes(t testing.TB, p *testPKI, doc []byte) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// ltvBytes adds the /DSS and a document timestamp to a document the test
// signed itself, so every certificate in its signatures is Chamber's own
// (what SignLTA passes as LTVOptions.Own).
func ltvBytes(t testing.TB, p *testPKI, doc []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	opts := p.ltv()
	opts.Own = ownCertificates(t, doc)
	if _, err := AddLTV(context.Background(), bytes.NewReader(doc), int64(len(doc)), &out, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// ownCertificates are the certificates in the signatures of doc.
func ownCertificates(t testing.TB, doc []byte) []*x509.Certificate {
	t.Helper()
	size := int64(len(doc))
	b := newBudget(context.Background(), bytes.NewReader(doc), requestLimits(size, false))
	rdr, err := openReader(b, b, size)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := signatureFields(rdr)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for _, f := range fields {
		_, value := f.resolve(rdr)
		certs = append(certs, signatureCertificates(value)...)
	}
	return certs
}

func reportText(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// requireAllValid checks that Chamber's verifier and pdfsig agree that
// every signature is valid (pdfsig cannot validate document timestamps:
// it lists them as not verified, and Chamber must find them valid).
func requireAllValid(t *testing.T, p *testPKI, doc []byte, wantSigs, wantDocTS int) {
	t.Helper()
	rep := verifyBytes(t, p, doc)
	if !rep.Valid {
		t.Fatalf("Chamber: not valid:\n%s", reportText(rep))
	}
	sigs, dts := 0, 0
	for _, s := range rep.Signatures {
		if s.Kind == "document timestamp" {
			dts++
		} else {
			sigs++
			if s.Timestamp == nil || !s.Timestamp.Valid {
				t.Errorf("signature %s has no valid timestamp", s.Field)
			}
		}
	}
	if sigs != wantSigs || dts != wantDocTS {
		t.Fatalf("Chamber found %d signatures and %d document timestamps, want %d and %d", sigs, dts, wantSigs, wantDocTS)
	}
	ps := p.pdfsig(t, doc)
	if len(ps) != wantSigs+wantDocTS {
		t.Fatalf("pdfsig found %d signatures, want %d", len(ps), wantSigs+wantDocTS)
	}
	for i, s := range ps {
		if rep.Signatures[i].Kind == "document timestamp" {
			continue
		}
		if !s.Valid || !s.Trusted {
			t.Errorf("pdfsig signature #%d: %s / %s", i+1, s.Validation, s.Certificate)
		}
		if s.SignerCN != rep.Signatures[i].SignerName {
			t.Errorf("pdfsig signature #%d signer %q, Chamber says %q", i+1, s.SignerCN, rep.Signatures[i].SignerName)
		}
	}
	qpdfCheck(t, doc)
}

func TestSignProducers(t *testing.T) {
	p := newTestPKI(t)
	for name, in := range samples(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("one signature", func(t *testing.T) {
				signed, res := signBytes(t, in, SignOptions{
					Signer: p.principal(t, "Anna Maria Eriksson"), Kind: Approval, Permissions: FormFillingAndSigning,
					Timestamper: p.tsa, Reason: "I agree to this will", Location: "Embassy in Paris",
					Role: "Principal", Act: "Act 2026-0042", Appearance: &Appearance{Page: 1, X: 72, Y: 72, Width: 220, Height: 80},
				})
				if since := time.Since(res.TimestampTime); since < 0 || since > time.Minute || res.Serial == "" || res.Size != int64(len(signed)) {
					t.Errorf("result %+v", res)
				}
				if want := p.auth.TSA().Certificate().Subject.String(); res.TimestampAuthority != want {
					t.Errorf("timestamp authority %q, want %q", res.TimestampAuthority, want)
				}
				if !bytes.HasPrefix(signed, in) {
					t.Fatal("signing did not append: the original bytes changed")
				}
				requireAllValid(t, p, signed, 1, 0)
				requireAllValid(t, p, ltvBytes(t, p, signed), 1, 1)
			})
			t.Run("three signatures", func(t *testing.T) {
				doc := in
				signers := []struct {
					who  pki.Signer
					role string
				}{
					{p.principal(t, "Anna Maria Eriksson"), "Principal"},
					{p.principal(t, "Jüri Õunapuu"), "Principal"},
					{p.auth.Seal().AsSigner(), "Notary"},
				}
				for i, s := range signers {
					doc, _ = signBytes(t, doc, SignOptions{
						Signer: s.who, Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
						Reason: "Signed", Location: "Tallinn", Role: s.role, Act: "Act 2026-0042",
						Appearance: &Appearance{Page: 1, X: 40 + float64(i)*180, Y: 40, Width: 170, Height: 60},
					})
				}
				requireAllValid(t, p, doc, 3, 0)
				requireAllValid(t, p, ltvBytes(t, p, doc), 3, 1)
			})
		})
	}
}

// Each version of an act is B-LTA on its own: signature, /DSS and document
// timestamp, then the next signature on top, three times.
func TestSignAfterDocumentTimestamp(t *testing.T) {
	p := newTestPKI(t)
	doc := genPDF(1, 0, true)
	for i := range 3 {
		doc, _ = signBytes(t, doc, SignOptions{
			Signer: p.principal(t, fmt.Sprintf("Principal %d", i+1)), Kind: Approval, Permissions: FormFillingAndSigning,
			Timestamper: p.tsa, Reason: "Signed",
		})
		doc = ltvBytes(t, p, doc)
	}
	requireAllValid(t, p, doc, 3, 3)
	rep := verifyBytes(t, p, doc)
	if rep.Revisions != 1+3*3 {
		t.Errorf("%d revisions, want 10", rep.Revisions)
	}
}

func TestCertificationSignature(t *testing.T) {
	p := newTestPKI(t)
	doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: p.auth.Seal().AsSigner(), Kind: Certification, Permissions: FormFillingAndSigning,
		Timestamper: p.tsa, Reason: "Court order",
	})
	rep := verifyBytes(t, p, doc)
	if !rep.Valid || !strings.Contains(rep.Signatures[0].Certification, "P=2") {
		t.Fatalf("certified document:\n%s", reportText(rep))
	}
	// P=2 allows a later approval signature; a second certification is refused.
	doc2, _ := signBytes(t, doc, SignOptions{
		Signer: p.principal(t, "Bob"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	})
	requireAllValid(t, p, ltvBytes(t, p, doc2), 2, 1)
	_, err := Sign(context.Background(), bytes.NewReader(doc), int64(len(doc)), &bytes.Buffer{}, SignOptions{
		Signer: p.auth.Seal().AsSigner(), Kind: Certification, Permissions: NoChanges, Timestamper: p.tsa,
	})
	if !errors.Is(err, ErrCertificationNotLast) {
		t.Errorf("second certification: %v", err)
	}

	// P=1 forbids the later approval signature, not the /DSS and timestamp.
	locked, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: p.auth.Seal().AsSigner(), Kind: Certification, Permissions: NoChanges, Timestamper: p.tsa,
	})
	if rep := verifyBytes(t, p, ltvBytes(t, p, locked)); !rep.Valid {
		t.Fatalf("P=1 with /DSS and document timestamp:\n%s", reportText(rep))
	}
	after, _ := signBytes(t, locked, SignOptions{
		Signer: p.principal(t, "Bob"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	})
	rep = verifyBytes(t, p, after)
	if rep.Valid || rep.Signatures[0].Status != StatusModified {
		t.Fatalf("P=1 followed by a signature:\n%s", reportText(rep))
	}
}

func TestSignOptionsValidation(t *testing.T) {
	p := newTestPKI(t)
	seal := p.auth.Seal().AsSigner()
	in := genPDF(2, 0, false)
	tests := []struct {
		name string
		opts SignOptions
		want error
	}{
		{"no signer", SignOptions{Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa}, ErrOptions},
		{"zero kind", SignOptions{Signer: seal, Permissions: FormFillingAndSigning, Timestamper: p.tsa}, ErrOptions},
		{"zero permissions", SignOptions{Signer: seal, Kind: Approval, Timestamper: p.tsa}, ErrOptions},
		{"no timestamper", SignOptions{Signer: seal, Kind: Approval, Permissions: FormFillingAndSigning}, ErrOptions},
		{"visible certification", SignOptions{Signer: seal, Kind: Certification, Permissions: NoChanges, Timestamper: p.tsa,
			Appearance: &Appearance{Page: 1, X: 1, Y: 1, Width: 100, Height: 50}}, ErrOptions},
		{"page out of range", SignOptions{Signer: seal, Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
			Appearance: &Appearance{Page: 3, X: 1, Y: 1, Width: 100, Height: 50}}, ErrOptions},
		{"tiny seal", SignOptions{Signer: seal, Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
			Appearance: &Appearance{Page: 1, X: 1, Y: 1, Width: 10, Height: 5}}, ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Sign(context.Background(), bytes.NewReader(in), int64(len(in)), &out, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if out.Len() != 0 {
				t.Error("output written despite the error")
			}
		})
	}
}

type failingTimestamper struct{ err error }

func (f failingTimestamper) Timestamp(ctx context.Context, _ []byte) ([]byte, error) {
	return nil, f.err
}

type slowTimestamper struct{}

func (slowTimestamper) Timestamp(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestTimestampFailures(t *testing.T) {
	p := newTestPKI(t)
	in := genPDF(1, 0, false)
	base := SignOptions{Signer: p.auth.Seal().AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning}

	opts := base
	opts.Timestamper = failingTimestamper{errors.New("TSA on fire")}
	var out bytes.Buffer
	_, err := Sign(context.Background(), bytes.NewReader(in), int64(len(in)), &out, opts)
	if err == nil || !strings.Contains(err.Error(), "TSA on fire") || out.Len() != 0 {
		t.Errorf("failing TSA: %v (%d bytes out)", err, out.Len())
	}

	// An outage of the TSA keeps its kind through pdfsign, which sees it
	// only as an HTTP answer: the signer is told to retry (503), not that
	// Chamber failed. The document timestamp of B-LTA too.
	down := failingTimestamper{fault.Wrap(fault.Unavailable, errors.New("connection refused"), "the timestamp authority cannot be reached; retry")}
	opts.Timestamper = down
	_, err = Sign(context.Background(), bytes.NewReader(in), int64(len(in)), &out, opts)
	if k := fault.KindOf(err); k != fault.Unavailable || out.Len() != 0 {
		t.Errorf("TSA down: %v (kind %s, %d bytes out), want unavailable", err, k, out.Len())
	}
	ltv := p.ltv()
	ltv.Timestamper = down
	opts.Timestamper = p.tsa
	signed, _ := signBytes(t, in, opts)
	_, err = AddLTV(context.Background(), bytes.NewReader(signed), int64(len(signed)), &out, ltv)
	if k := fault.KindOf(err); k != fault.Unavailable || out.Len() != 0 {
		t.Errorf("TSA down for the document timestamp: %v (kind %s, %d bytes out), want unavailable", err, k, out.Len())
	}

	opts.Timestamper = slowTimestamper{}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Sign(ctx, bytes.NewReader(in), int64(len(in)), &out, opts)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("hanging TSA: %v after %v", err, time.Since(start))
	}

	// A real TSA through HTTP and Chamber's own in-process TSA both work.
	opts.Timestamper = p.auth.TSA()
	signed, _ = signBytes(t, in, opts)
	if rep := verifyBytes(t, p, signed); !rep.Valid {
		t.Errorf("in-process TSA:\n%s", reportText(rep))
	}
}

func TestLTVRevocationUnavailable(t *testing.T) {
	p := newTestPKI(t)
	signed, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: p.principal(t, "Bob"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	})
	opts := p.ltv()
	opts.Own = ownCertificates(t, signed)
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("network unreachable")
	})}
	_, err := AddLTV(context.Background(), bytes.NewReader(signed), int64(len(signed)), &bytes.Buffer{}, opts)
	if !errors.Is(err, ErrRevocationUnavailable) {
		t.Errorf("err %v, want ErrRevocationUnavailable", err)
	}
	// The network's failure is an outage: the signer retries (503).
	if k := fault.KindOf(err); k != fault.Unavailable {
		t.Errorf("kind %s, want unavailable", k)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// nextSecond waits until the clock's second has turned: a time recorded
// with a one-second grain (a revocation) then falls after every earlier
// time.
func nextSecond(t *testing.T) {
	t.Helper()
	now := time.Now().Unix()
	wait.For(t, 2*time.Second, "the clock's next second", func() bool { return time.Now().Unix() > now })
}

func TestRevokedSigner(t *testing.T) {
	p := newTestPKI(t)
	ctx := context.Background()
	id, err := p.auth.IssuePrincipal(ctx, "Mallory", [16]byte{1}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: id.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	})
	// Revoked after the timestamped signature: the signature stands, and
	// the report says so. (Revocation times have a one-second grain.)
	nextSecond(t)
	if err := p.auth.Revoke(ctx, id.Certificate.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	rep := verifyBytes(t, p, ltvBytes(t, p, signed))
	s := rep.Signatures[0]
	if !s.Valid || !strings.Contains(s.Revocation, "after the timestamped signing time") {
		t.Fatalf("revoked after signing:\n%s", reportText(rep))
	}
	// Signing with it now is refused by the certificate check, and a
	// signature made anyway (clock before the revocation is impossible
	// here) would show the revocation before its timestamp.
	if _, err := p.auth.CheckCertificate(ctx, id.Certificate, id.Chain); err == nil {
		t.Error("revoked certificate passed the check before signing")
	}
	nextSecond(t)
	late, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: id.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	})
	rep = verifyBytes(t, p, ltvBytes(t, p, late))
	if rep.Valid || rep.Signatures[0].Status != StatusRevoked {
		t.Fatalf("signed after revocation:\n%s", reportText(rep))
	}
}

func TestUntrustedSigner(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	signed, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: other.principal(t, "Eve"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: other.tsa,
	})
	rep := verifyBytes(t, p, signed)
	if rep.Valid || rep.Signatures[0].Status != StatusUntrusted || !rep.Signatures[0].Intact {
		t.Fatalf("foreign CA:\n%s", reportText(rep))
	}
	ps := p.pdfsig(t, signed)
	if len(ps) != 1 || !ps[0].Valid || ps[0].Trusted {
		t.Errorf("pdfsig on a foreign CA: %+v", ps)
	}
}

func TestReportRendering(t *testing.T) {
	p := newTestPKI(t)
	signed, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: p.principal(t, "Anna"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
		Reason: "I agree", Location: "Paris",
	})
	rep := verifyBytes(t, p, ltvBytes(t, p, signed))
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"valid": true`, `"kind": "document timestamp"`, `"signer_name": "Anna"`, `"reason": "I agree"`,
		`"covers_revision": true`, `"modified_after_signing": false`, `"certification": "approval"`, `"authority": "CN=Chamber development timestamp authority`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
	text := reportText(rep)
	for _, want := range []string{"Verdict: VALID", "1 signature, 1 document timestamp: all valid", "Signature #1", "Document timestamp #1",
		"Reason:", "I agree", "Timestamp:", "Revocation:", "good (embedded CRL"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	empty := verifyBytes(t, p, genPDF(1, 0, false))
	if empty.Valid || len(empty.Signatures) != 0 || !slices.Contains([]string{"the document has no signatures"}, empty.Summary) {
		t.Errorf("unsigned document: %+v", empty)
	}
}

func TestSignLTA(t *testing.T) {
	p := newTestPKI(t)
	in := genPDF(1, 0, false)
	var out bytes.Buffer
	sres, lres, err := SignLTA(context.Background(), bytes.NewReader(in), int64(len(in)), &out, SignOptions{
		Signer: p.principal(t, "Anna"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	}, p.ltv(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if lres.Size != int64(out.Len()) || lres.CRLs != 1 || lres.Certificates != 3 || sres.TimestampTime.IsZero() {
		t.Errorf("results %+v %+v", sres, lres)
	}
	requireAllValid(t, p, out.Bytes(), 1, 1)
}

// A configured RSA identity (--signing-cert/--signing-key) from another CA.
func TestRSAIdentity(t *testing.T) {
	p := newTestPKI(t)
	caKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Court CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Registry Court of Tartu"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	cert, _ := x509.ParseCertificate(der)
	id := pki.Identity{Certificate: cert, Chain: []*x509.Certificate{ca}, Key: key}
	doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{
		Signer: id.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa, Reason: "Judgment",
	})
	doc = ltvBytes(t, p, doc) // no CRL distribution point: certificates only
	roots := TrustStore(ca, p.auth.Root())
	rep, err := Verify(context.Background(), bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid || rep.Signatures[0].Hash != "SHA-256" || rep.Signatures[0].SignerName != "Registry Court of Tartu" {
		t.Fatalf("RSA identity:\n%s", reportText(rep))
	}
	if rep.Signatures[0].Revocation != "no revocation data in the document" {
		t.Errorf("revocation %q", rep.Signatures[0].Revocation)
	}
}
