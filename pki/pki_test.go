package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/google/uuid"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/chamber-court/chamber/internal/testenv"
)

// newTestAuthority starts an HTTP server serving a fresh development
// authority's /pki/ artefacts and /tsa, as Chamber does.
func newTestAuthority(t *testing.T) (*Authority, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a, err := LoadOrCreateDev(filepath.Join(t.TempDir(), "pki"), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/pki/", a.Handler())
	mux.Handle("/tsa", a.TSA())
	return a, srv
}

// allowServer is an egress policy that allows the test server alone.
func allowServer(srv *httptest.Server) Egress {
	return Egress{AllowHosts: []string{strings.TrimPrefix(srv.URL, "http://")}}
}

func TestLoadOrCreateDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	a, err := LoadOrCreateDev(dir, "https://chamber.example/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{fileCAKey, fileSealKey, fileTSAKey} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	for name, c := range map[string]*x509.Certificate{"ca": a.Root(), "seal": a.Seal().Certificate, "tsa": a.TSAIdentity().Certificate} {
		if !strings.Contains(c.Subject.String(), DevMarker) {
			t.Errorf("%s subject %q lacks the development marker", name, c.Subject)
		}
		if name != "ca" {
			if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != "https://chamber.example/pki/ca.crl" {
				t.Errorf("%s CRL distribution points %v", name, c.CRLDistributionPoints)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: a.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s does not chain to the root: %v", name, err)
			}
		}
	}
	critical := false
	for _, e := range a.TSAIdentity().Certificate.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			critical = e.Critical
		}
	}
	if !critical {
		t.Error("TSA extended key usage is not critical")
	}

	b, err := LoadOrCreateDev(dir, "https://chamber.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Root().Equal(a.Root()) || !b.Seal().Certificate.Equal(a.Seal().Certificate) || !b.TSAIdentity().Certificate.Equal(a.TSAIdentity().Certificate) {
		t.Error("second start did not reuse the authority")
	}

	if err := os.Remove(filepath.Join(dir, fileSealKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDev(dir, "", nil); err == nil {
		t.Error("a half-present authority was accepted")
	}
}

func TestIssuePrincipal(t *testing.T) {
	a, _ := newTestAuthority(t)
	ctx := context.Background()
	act := uuid.New()
	id, err := a.IssuePrincipal(ctx, "Anna Maria Eriksson", act, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := id.Certificate
	if c.Subject.CommonName != "Anna Maria Eriksson" || !strings.Contains(c.Subject.String(), act.String()) {
		t.Errorf("subject %q does not name the principal and the act", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: a.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("principal certificate does not verify for signing: %v", err)
	}
	if c.NotAfter.Sub(time.Now()) > time.Hour+time.Minute {
		t.Errorf("lifetime too long: %v", c.NotAfter)
	}
	if !publicKeysEqual(c.PublicKey, id.Key.Public()) {
		t.Error("key does not match certificate")
	}
	other, err := a.IssuePrincipal(ctx, "Anna Maria Eriksson", act, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if publicKeysEqual(other.Certificate.PublicKey, c.PublicKey) {
		t.Error("two issues share a key")
	}
	for _, bad := range []string{"", "  ", strings.Repeat("x", 65), "Eve\nMallory"} {
		if _, err := a.IssuePrincipal(ctx, bad, act, time.Hour); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: err %v, want ErrInvalidName", bad, err)
		}
	}
	if _, err := a.IssuePrincipal(ctx, "Bob", act, 0); err == nil {
		t.Error("zero lifetime accepted")
	}
}

func TestRevocationAndCheck(t *testing.T) {
	a, srv := newTestAuthority(t)
	ctx := context.Background()
	id, err := a.IssuePrincipal(ctx, "Bob", uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.CheckCertificate(ctx, id.Certificate, id.Chain)
	if err != nil {
		t.Fatal(err)
	}
	if st.Serial != SerialHex(id.Certificate) || st.Revocation != "good (issuing authority)" {
		t.Errorf("status %+v", st)
	}

	// Another Chamber's certificate is checked through its CRL over HTTP,
	// once its root is a configured trust root and its host allowed.
	b, bsrv := newTestAuthority(t)
	foreign, err := b.IssuePrincipal(ctx, "Carol", uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.SetRevocationChecks(RevocationChecks{Client: allowServer(bsrv).Client(), Roots: []*x509.Certificate{b.Root()}})
	st, err = a.CheckCertificate(ctx, foreign.Certificate, foreign.Chain)
	if err != nil || st.Revocation != "good (CRL)" {
		t.Fatalf("foreign before revocation: %+v %v", st, err)
	}
	if err := b.Revoke(ctx, foreign.Certificate.SerialNumber, 1); err != nil {
		t.Fatal(err)
	}
	_, err = a.CheckCertificate(ctx, foreign.Certificate, foreign.Chain)
	var ce *CertificateError
	if !errors.As(err, &ce) || ce.Problem != ProblemRevoked {
		t.Fatalf("foreign after revocation: %v", err)
	}

	if err := a.Revoke(ctx, id.Certificate.SerialNumber, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CheckCertificate(ctx, id.Certificate, id.Chain); !errors.As(err, &ce) || ce.Problem != ProblemRevoked {
		t.Fatalf("own after revocation: %v", err)
	}
	// The served CRL lists it and is signed by the root.
	der, err := Fetch(ctx, allowServer(srv).Client(), srv.URL+PathCRL)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(a.Root()); err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(id.Certificate.SerialNumber) != 0 {
		t.Errorf("CRL entries %v", crl.RevokedCertificateEntries)
	}
	// Revocations survive a restart.
	again, err := LoadOrCreateDev(a.Dir(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.CheckCertificate(ctx, id.Certificate, id.Chain); !errors.As(err, &ce) {
		t.Errorf("revocation lost on restart: %v", err)
	}

	// Expired and wrongly chained certificates.
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	fresh, _ := b.IssuePrincipal(ctx, "Dan", uuid.New(), time.Hour)
	if _, err := a.CheckCertificate(ctx, fresh.Certificate, fresh.Chain); !errors.As(err, &ce) || ce.Problem != ProblemExpired {
		t.Errorf("expired: %v", err)
	}
	a.now = time.Now
	if _, err := a.CheckCertificate(ctx, fresh.Certificate, []*x509.Certificate{a.Root()}); !errors.As(err, &ce) || ce.Problem != ProblemBadChain {
		t.Errorf("bad chain: %v", err)
	}
}

func TestLoadPEMAndPKCS12(t *testing.T) {
	a, _ := newTestAuthority(t)
	dir := t.TempDir()
	seal := a.Seal()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, CertificatePEM(append([]*x509.Certificate{seal.Certificate}, seal.Chain...)...), 0o644)
	os.WriteFile(keyFile, keyPEM(seal.Key), 0o600)
	id, err := LoadPEM(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Certificate.Equal(seal.Certificate) || len(id.Chain) != 1 {
		t.Errorf("loaded %v with chain %d", id.Certificate.Subject, len(id.Chain))
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	os.WriteFile(keyFile, keyPEM(other), 0o600)
	if _, err := LoadPEM(certFile, keyFile); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatched key: %v", err)
	}

	p12, err := pkcs12.Modern.Encode(seal.Key, seal.Certificate, seal.Chain, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	p12File := filepath.Join(dir, "id.p12")
	os.WriteFile(p12File, p12, 0o600)
	id, err = LoadPKCS12(p12File, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !id.Certificate.Equal(seal.Certificate) || len(id.Chain) != 1 {
		t.Error("PKCS#12 identity differs")
	}
	if _, err := LoadPKCS12(p12File, "wrong"); err == nil {
		t.Error("wrong PKCS#12 password accepted")
	}
	sig, err := CryptoSigner(context.Background(), id.AsSigner()).Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(id.Certificate.PublicKey.(*ecdsa.PublicKey), make([]byte, 32), sig) {
		t.Errorf("signing through the adapter: %v", err)
	}
}

func TestTSAClientAndOpenSSL(t *testing.T) {
	a, srv := newTestAuthority(t)
	ctx := context.Background()
	digest := sha256.Sum256([]byte("the will of Anna Maria Eriksson"))
	c := &TSAClient{URL: srv.URL + "/tsa"}
	token, err := c.Timestamp(ctx, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	when, tsaCert, err := VerifyTimestamp(token, digest[:], a.Roots())
	if err != nil {
		t.Fatal(err)
	}
	if !tsaCert.Equal(a.TSAIdentity().Certificate) || time.Since(when) > time.Minute || when.After(time.Now()) {
		t.Errorf("token from %v at %v", tsaCert.Subject, when)
	}
	other := sha256.Sum256([]byte("another will"))
	if _, _, err := VerifyTimestamp(token, other[:], a.Roots()); err == nil {
		t.Error("token verified for another digest")
	}
	b, _ := newTestAuthority(t)
	var te *TimestampError
	if _, _, err := VerifyTimestamp(token, digest[:], b.Roots()); !errors.As(err, &te) {
		t.Errorf("token verified under another root: %v", err)
	}
	// In-process stamping gives an equivalent token.
	local, err := a.TSA().Timestamp(ctx, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyTimestamp(local, digest[:], a.Roots()); err != nil {
		t.Fatal(err)
	}

	openssl := testenv.Command(t, "openssl")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, CertificatePEM(a.Root()), 0o644)
	tokFile := filepath.Join(dir, "token.der")
	os.WriteFile(tokFile, token, 0o644)
	out, err := exec.Command(openssl, "ts", "-verify", "-digest", hex.EncodeToString(digest[:]),
		"-token_in", "-in", tokFile, "-CAfile", caFile).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verification: OK")) {
		t.Fatalf("openssl ts -verify: %v\n%s", err, out)
	}
	out, err = exec.Command(openssl, "ts", "-verify", "-digest", hex.EncodeToString(other[:]),
		"-token_in", "-in", tokFile, "-CAfile", caFile).CombinedOutput()
	if err == nil {
		t.Fatalf("openssl accepted the token for another digest:\n%s", out)
	}

	// A query made by openssl itself, answered over HTTP, verified by openssl.
	dataFile := filepath.Join(dir, "data.txt")
	os.WriteFile(dataFile, []byte("exhibit P-1"), 0o644)
	queryFile := filepath.Join(dir, "q.tsq")
	if out, err := exec.Command(openssl, "ts", "-query", "-data", dataFile, "-sha256", "-cert", "-out", queryFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl ts -query: %v\n%s", err, out)
	}
	q, _ := os.ReadFile(queryFile)
	resp, err := http.Post(srv.URL+"/tsa", ContentTypeTimestampQuery, bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != ContentTypeTimestampReply {
		t.Errorf("content type %q", ct)
	}
	replyFile := filepath.Join(dir, "r.tsr")
	os.WriteFile(replyFile, reply, 0o644)
	out, err = exec.Command(openssl, "ts", "-verify", "-queryfile", queryFile, "-in", replyFile, "-CAfile", caFile).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verification: OK")) {
		t.Fatalf("openssl ts -verify of the reply: %v\n%s", err, out)
	}
}

func TestTSAHandlerRejects(t *testing.T) {
	_, srv := newTestAuthority(t)
	sha1Query, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA1, HashedMessage: make([]byte, 20)}).Marshal()
	shortQuery, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: make([]byte, 5)}).Marshal()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantStatus  int
		wantReject  bool
	}{
		{"get", http.MethodGet, "", nil, http.StatusMethodNotAllowed, false},
		{"wrong media type", http.MethodPost, "text/plain", []byte("x"), http.StatusUnsupportedMediaType, false},
		{"too large", http.MethodPost, ContentTypeTimestampQuery, make([]byte, maxTimestampQuery+1), http.StatusRequestEntityTooLarge, false},
		{"garbage", http.MethodPost, ContentTypeTimestampQuery, []byte("\x30\x82\xff\xff garbage"), http.StatusOK, true},
		{"empty", http.MethodPost, ContentTypeTimestampQuery, nil, http.StatusOK, true},
		{"sha1", http.MethodPost, ContentTypeTimestampQuery, sha1Query, http.StatusOK, true},
		{"short digest", http.MethodPost, ContentTypeTimestampQuery, shortQuery, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"/tsa", bytes.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantReject {
				var r struct {
					Status struct {
						Status int
					}
				}
				if _, err := asn1.Unmarshal(body, &r); err != nil {
					t.Fatalf("reply is not a TimeStampResp: %v", err)
				}
				if r.Status.Status != int(timestamp.Rejection) {
					t.Errorf("PKIStatus %d, want rejection", r.Status.Status)
				}
				if _, err := timestamp.ParseResponse(body); err == nil {
					t.Error("rejection parsed as a token")
				}
			}
		})
	}
	c := &TSAClient{URL: srv.URL + "/nowhere"}
	if _, err := c.Timestamp(context.Background(), make([]byte, 32)); err == nil {
		t.Error("client accepted a 404")
	}
}

func FuzzTSAQuery(f *testing.F) {
	q, _ := marshalQuery(make([]byte, 32), big.NewInt(42))
	f.Add(q)
	f.Add([]byte{0x30, 0x00})
	a, err := LoadOrCreateDev(filepath.Join(f.TempDir(), "pki"), "", nil)
	if err != nil {
		f.Fatal(err)
	}
	tsa := a.TSA()
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, _, err := tsa.answer(body)
		if err == nil {
			if _, err := timestamp.ParseResponse(resp); err != nil {
				t.Fatalf("granted reply does not parse: %v", err)
			}
		}
	})
}

// TestCRLURLsAfterThePublicURLChanged: a development PKI made under one
// public URL and loaded under another names both locations of its CRL,
// so that the egress policy answers the old one (in its certificates) in
// process too; before, signing fetched it and was refused.
func TestCRLURLsAfterThePublicURLChanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := LoadOrCreateDev(dir, "http://127.0.0.1:43201", nil); err != nil {
		t.Fatal(err)
	}
	a, err := LoadOrCreateDev(dir, "http://127.0.0.1:33407", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:33407" + PathCRL, "http://127.0.0.1:43201" + PathCRL}
	if got := a.CRLURLs(); !slices.Equal(got, want) {
		t.Fatalf("CRLURLs = %q, want %q", got, want)
	}
	same, err := LoadOrCreateDev(dir, "http://127.0.0.1:43201", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := same.CRLURLs(); len(got) != 1 {
		t.Fatalf("CRLURLs under the URL it was made for = %q, want one", got)
	}
}
