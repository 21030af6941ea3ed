package pades

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/pki"
)

// attackerIdentity is a signing identity from a CA nobody configured,
// whose certificates name OCSP and CRL URLs on the attacker's server.
func attackerIdentity(t testing.TB, base string) (pki.Identity, *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Attacker CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, OCSPServer: []string{base + "/ca-ocsp"}, CRLDistributionPoints: []string{base + "/ca.crl"}}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Judge Kaur"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		OCSPServer: []string{base + "/ocsp"}, CRLDistributionPoints: []string{base + "/crl"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	cert, _ := x509.ParseCertificate(der)
	return pki.Identity{Certificate: cert, Chain: []*x509.Certificate{ca}, Key: key}, ca
}

// rawStream is the body of an unfiltered stream object.
func rawStream(data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< /Length %d >>\nstream\n", len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	return b.Bytes()
}

// A party uploads a PDF whose earlier signature and /DSS carry
// certificates naming the attacker's OCSP and CRL URLs (the attacker's
// server answers with a redirect to a cloud-metadata stand-in). Chamber
// signs it, B-LTA, and contacts neither.
func TestSigningFetchesNothingTheDocumentNames(t *testing.T) {
	p := newTestPKI(t)
	var metadataHits, attackerHits atomic.Int64
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { metadataHits.Add(1) }))
	t.Cleanup(metadata.Close)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		http.Redirect(w, r, metadata.URL+"/latest/meta-data/", http.StatusFound)
	}))
	t.Cleanup(attacker.Close)

	evil, evilCA := attackerIdentity(t, attacker.URL)
	doc, _ := signBytes(t, genPDF(1, 0, false), SignOptions{Signer: evil.AsSigner(), Kind: Approval,
		Permissions: FormFillingAndSigning, Timestamper: p.tsa})
	doc = appendDSS(t, doc, [][]byte{rawStream(evil.Certificate.Raw), rawStream(evilCA.Raw)}, map[string][]int{"Certs": {0, 1}})

	// Signed as the documents service signs: SignLTA, Chamber's root as
	// the anchor, an egress that would even allow the attacker's host.
	ltv := p.ltv()
	ltv.HTTPClient = pki.Egress{AllowHosts: []string{hostOf(p.srv), hostOf(attacker), hostOf(metadata)}}.Client()
	var out bytes.Buffer
	_, lres, err := SignLTA(context.Background(), bytes.NewReader(doc), int64(len(doc)), &out, SignOptions{
		Signer: p.principal(t, "Anna"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
	}, ltv, t.TempDir())
	if err != nil {
		t.Fatalf("the document is no longer signable: %v", err)
	}
	if attackerHits.Load() != 0 || metadataHits.Load() != 0 {
		t.Fatalf("signing made %d requests to the document's URLs and %d to the metadata service", attackerHits.Load(), metadataHits.Load())
	}
	if lres.CRLs != 1 {
		t.Errorf("%d CRLs in the /DSS, want Chamber's own", lres.CRLs)
	}
	rep := verifyBytes(t, p, out.Bytes())
	var ours *SignatureReport
	for i := range rep.Signatures {
		if rep.Signatures[i].SignerName == "Anna" {
			ours = &rep.Signatures[i]
		}
	}
	if ours == nil || !ours.Valid || ours.Revocation == "no revocation data in the document" {
		t.Fatalf("Chamber's signature:\n%s", reportText(rep))
	}
}

func hostOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }
