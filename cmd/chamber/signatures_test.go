package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/pki"
)

// signedElsewhere signs the LibreOffice sample with a signer of its own
// and the given timestamper, and returns the signed file's path.
func signedElsewhere(t *testing.T, dir string, signer pki.Signer, tsa pades.Timestamper) string {
	t.Helper()
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := pades.Sign(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), &out, pades.SignOptions{
		Signer: signer, Kind: pades.Approval, Permissions: pades.FormFillingAndSigning, Timestamper: tsa, Reason: "Judgment",
	}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "signed.pdf")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// issueFrom makes a certificate of tmpl signed by a new CA and returns
// the identity and the CA.
func issueFrom(t *testing.T, tmpl *x509.Certificate) (pki.Identity, *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Web CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(2)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return pki.Identity{Certificate: cert, Chain: []*x509.Certificate{ca}, Key: key}, ca
}

// chamberEnv is chamber with extra environment variables.
func chamberEnv(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(testenv.CleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// chamber verify trusts --trust and the data dir's CA, never the system's
// roots, refuses certificates that do not sign documents, and labels or
// (with --production) refuses development timestamps.
func TestVerifyCommandTrust(t *testing.T) {
	dir := t.TempDir()
	dev, err := pki.LoadOrCreateDev(filepath.Join(dir, "pki"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pki.CertificatePEM(dev.Root()), 0o644)
	devSigned := signedElsewhere(t, t.TempDir(), dev.Seal().AsSigner(), dev.TSA())

	out, code := chamberEnv(t, dir, nil, "verify", "--data-dir", "", "--trust", caFile, devSigned)
	if code != 0 || !strings.Contains(out, "Verdict: VALID (DEVELOPMENT CERTIFICATE AND TIMESTAMP)") {
		t.Fatalf("development document: exit %d\n%s", code, out)
	}
	out, code = chamberEnv(t, dir, nil, "verify", "--data-dir", "", "--trust", caFile, "--production", devSigned)
	if code != 1 || !strings.Contains(out, "[development_timestamp]") {
		t.Fatalf("--production accepted a development timestamp: exit %d\n%s", code, out)
	}
	// The system roots (SSL_CERT_FILE) hold the CA: still not trusted.
	out, code = chamberEnv(t, dir, []string{"SSL_CERT_FILE=" + caFile}, "verify", "--data-dir", "", devSigned)
	if code != 1 || !strings.Contains(out, "[chain_untrusted]") {
		t.Fatalf("trusted through the system roots: exit %d\n%s", code, out)
	}

	// A TLS server certificate named like a judge, from a trusted CA.
	tls, webCA := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Judge Kaur"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	webFile := filepath.Join(dir, "web.pem")
	os.WriteFile(webFile, pki.CertificatePEM(webCA), 0o644)
	tlsSigned := signedElsewhere(t, t.TempDir(), tls.AsSigner(), dev.TSA())
	out, code = chamberEnv(t, dir, nil, "verify", "--data-dir", "", "--trust", caFile, "--trust", webFile, "--json", tlsSigned)
	var rep pades.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d: %v\n%s", code, err, out)
	}
	s := rep.Signatures[0]
	if code != 1 || rep.Valid || s.SignerName != "Judge Kaur" || s.Status != pades.StatusUntrusted || s.Reasons[0].Code != pades.ReasonExtKeyUsage {
		t.Fatalf("TLS server certificate: exit %d, %s %+v", code, s.Status, s.Reasons)
	}
}

// The development TSA is served only while it is the TSA, rate-limited;
// a server configured with --tsa-url refuses development timestamps in
// POST /api/v1/verify.
func TestDevelopmentTSAAndProductionVerify(t *testing.T) {
	other, err := pki.LoadOrCreateDev(filepath.Join(t.TempDir(), "pki"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pki.CertificatePEM(other.Root()), 0o644)
	signed, err := os.ReadFile(signedElsewhere(t, t.TempDir(), other.Seal().AsSigner(), other.TSA()))
	if err != nil {
		t.Fatal(err)
	}
	dev := startServer(t, "", nil, "--trust", caFile)
	prod := startServer(t, "", nil, "--trust", caFile, "--tsa-url", "http://127.0.0.1:9/tsa")

	digest := sha256.Sum256([]byte("exhibit P-1"))
	query, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest[:], Certificates: true}).Marshal()
	post := func(url string) *http.Response {
		resp, err := http.Post(url+"/tsa", pki.ContentTypeTimestampQuery, bytes.NewReader(query))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post(dev.URL); resp.StatusCode != http.StatusOK {
		t.Fatalf("development server: POST /tsa = %d", resp.StatusCode)
	}
	limited := false
	for range pki.DevTSALimit.Burst + 5 {
		if resp := post(dev.URL); resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("%d quick queries were all stamped", pki.DevTSALimit.Burst+5)
	}
	if resp := post(prod.URL); resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusTooManyRequests {
		t.Errorf("server with --tsa-url: POST /tsa = %d", resp.StatusCode)
	}
	_, body := get(t, prod.URL+"/api/v1/openapi.json")
	if strings.Contains(body, `"/tsa"`) {
		t.Error("openapi.json of a server with --tsa-url lists /tsa")
	}

	var devRep, prodRep pades.Report
	call(t, "POST", dev.URL+"/api/v1/verify", "", signed, 200, &devRep)
	if !devRep.Valid || !devRep.Development || devRep.Verdict != "valid (development certificate and timestamp)" || !devRep.Signatures[0].Timestamp.Development {
		t.Errorf("development server: %+v", devRep)
	}
	call(t, "POST", prod.URL+"/api/v1/verify", "", signed, 200, &prodRep)
	if prodRep.Valid || prodRep.Signatures[0].Reasons[len(prodRep.Signatures[0].Reasons)-1].Code != pades.ReasonDevelopmentTimestamp {
		t.Errorf("production server accepted a development timestamp: %+v", prodRep)
	}
}

// A party uploads a PDF whose signature carries certificates naming an
// attacker's OCSP and CRL URLs; the judge signs it. The server contacts
// neither, even with the attacker's host on the allow-list, and the
// document is signed.
func TestSigningUploadedDocumentFetchesNothingItNames(t *testing.T) {
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer attacker.Close()
	evil, _ := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Mallory"}, KeyUsage: x509.KeyUsageDigitalSignature,
		OCSPServer: []string{attacker.URL + "/ocsp"}, CRLDistributionPoints: []string{attacker.URL + "/crl"}})
	dev, err := pki.LoadOrCreateDev(filepath.Join(t.TempDir(), "pki"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	upload, err := os.ReadFile(signedElsewhere(t, t.TempDir(), evil.AsSigner(), dev.TSA()))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	s := startServer(t, dir, nil, "--revocation-allow-host", strings.TrimPrefix(attacker.URL, "http://"))
	clerk := addStaff(t, dir, nil, "Clerk Mets", "clerk")
	judgeStaff := addStaff(t, dir, nil, "Judge Saar", "judge")
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk.Token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	assign(t, s.URL, sess.ID, clerk.Token, judgeStaff.ID)
	var inv struct{ Token string }
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk.Token, map[string]any{"name": "Mari Tamm", "role": "party"}, 201, &inv)
	var doc struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/documents?name=exhibit.pdf", inv.Token, upload, 201, &doc)
	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", judgeStaff.Token, map[string]any{"reason": "Judgment"}, 201, nil)
	if hits.Load() != 0 {
		t.Fatalf("signing made %d requests to the URLs the uploaded document names", hits.Load())
	}
	var signed []byte
	call(t, "GET", s.URL+"/api/v1/documents/"+doc.ID+"/content", judgeStaff.Token, nil, 200, &signed)
	var rep pades.Report
	call(t, "POST", s.URL+"/api/v1/verify", "", signed, 200, &rep)
	// The judge signs with their own identity, never the seal.
	var judge *pades.SignatureReport
	for i := range rep.Signatures {
		if rep.Signatures[i].SignerName == "Judge Saar" {
			judge = &rep.Signatures[i]
		}
	}
	if judge == nil || !judge.Valid || !strings.HasPrefix(judge.Revocation, "good (embedded CRL") {
		t.Fatalf("the judge's signature: %+v", rep)
	}
}
