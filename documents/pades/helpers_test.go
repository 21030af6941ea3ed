package pades

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/pki"
	"github.com/google/uuid"
)

// testPKI is a development authority served over HTTP the way Chamber
// serves it: /pki/ca.crl for the CRL distribution points and /tsa.
type testPKI struct {
	auth  *pki.Authority
	srv   *httptest.Server
	tsa   *pki.TSAClient
	roots *x509.CertPool

	nssOnce sync.Once
	nssBase string // created with the testPKI, so it outlives subtests
	nssDir  string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a, err := pki.LoadOrCreateDev(filepath.Join(t.TempDir(), "pki"), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/pki/", a.Handler())
	mux.Handle("/tsa", a.TSA())
	return &testPKI{auth: a, srv: srv, tsa: &pki.TSAClient{URL: srv.URL + "/tsa"}, roots: a.Roots(), nssBase: t.TempDir()}
}

func (p *testPKI) principal(t testing.TB, name string) pki.Signer {
	t.Helper()
	id, err := p.auth.IssuePrincipal(context.Background(), name, uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id.AsSigner()
}

// ltv are the options Chamber signs with: its root as the trust anchor
// and added to the /DSS, revocation data only from the test server, which
// stands in for Chamber's own public URL.
func (p *testPKI) ltv() LTVOptions {
	return LTVOptions{Timestamper: p.tsa, HTTPClient: p.egress().Client(), Certificates: []*x509.Certificate{p.auth.Root()}}
}

func (p *testPKI) egress() pki.Egress {
	u, _ := url.Parse(p.srv.URL)
	return pki.Egress{AllowHosts: []string{u.Host}}
}

// nss builds an NSS database trusting the development root, for pdfsig.
func (p *testPKI) nss(t testing.TB) string {
	t.Helper()
	certutil := testenv.Command(t, "certutil")
	p.nssOnce.Do(func() {
		dir := p.nssBase
		ca := filepath.Join(dir, "ca.pem")
		os.WriteFile(ca, pki.CertificatePEM(p.auth.Root()), 0o644)
		for _, args := range [][]string{
			{"-N", "-d", "sql:" + dir, "--empty-password"},
			{"-A", "-d", "sql:" + dir, "-n", "chamber-dev-ca", "-t", "CT,C,C", "-i", ca},
		} {
			if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
				t.Fatalf("certutil %v: %v\n%s", args, err, out)
			}
		}
		p.nssDir = dir
	})
	return p.nssDir
}

// pdfsigResult is one signature as poppler's pdfsig reports it.
type pdfsigResult struct {
	Valid       bool   // "Signature Validation: Signature is Valid."
	Trusted     bool   // "Certificate Validation: Certificate is Trusted."
	TotalDoc    bool   // "Signed Ranges ... Total document signed"
	Validation  string // the raw validation line
	Certificate string
	SignerCN    string
	Raw         string
	IsTimestamp bool
}

// pdfsig runs poppler's pdfsig offline against the NSS database trusting
// the development CA and parses its per-signature verdicts.
func (p *testPKI) pdfsig(t testing.TB, pdf []byte) []pdfsigResult {
	t.Helper()
	bin := testenv.Command(t, "pdfsig")
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, "-nssdir", p.nss(t), "-no-ocsp", f).CombinedOutput()
	return parsePdfsig(string(out))
}

func parsePdfsig(out string) []pdfsigResult {
	var res []pdfsigResult
	for _, block := range strings.Split(out, "\nSignature #")[1:] {
		r := pdfsigResult{Raw: block}
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
			switch {
			case strings.HasPrefix(line, "Signature Validation:"):
				r.Validation = line
				r.Valid = strings.Contains(line, "Signature is Valid")
			case strings.HasPrefix(line, "Certificate Validation:"):
				r.Certificate = line
				r.Trusted = strings.Contains(line, "Certificate is Trusted")
			case line == "Total document signed":
				r.TotalDoc = true
			case strings.HasPrefix(line, "Signer Certificate Common Name:"):
				r.SignerCN = strings.TrimSpace(strings.TrimPrefix(line, "Signer Certificate Common Name:"))
			case strings.Contains(line, "Signature Type: ETSI.RFC3161"):
				r.IsTimestamp = true
			}
		}
		res = append(res, r)
	}
	return res
}

func qpdfCheck(t testing.TB, pdf []byte) {
	t.Helper()
	bin := testenv.Command(t, "qpdf")
	f := filepath.Join(t.TempDir(), "doc.pdf")
	os.WriteFile(f, pdf, 0o644)
	out, err := exec.Command(bin, "--check", f).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
}

// genPDF is Chamber's own minimal PDF writer for tests: pages of text, an
// optional incompressible padding stream to reach a size, and either a
// classic xref table or a cross-reference stream.
func genPDF(pages, padding int, xrefStream bool) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	var offsets []int
	obj := func(body string) int {
		offsets = append(offsets, b.Len())
		id := len(offsets)
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", id, body)
		return id
	}
	// 1 catalog, 2 pages, 3 font, 4 info; pages from 5.
	kids := make([]string, pages)
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 5+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	obj("<< /Producer (Chamber test writer) /Title (Power of attorney) >>")
	for i := range pages {
		content := fmt.Sprintf("BT /F1 18 Tf 72 720 Td (Power of attorney, page %d of %d) Tj ET", i+1, pages)
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 6+2*i))
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	}
	if padding > 0 {
		data := make([]byte, padding)
		rng := rand.NewChaCha8([32]byte{1})
		rng.Read(data)
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n<< /Length %d >>\nstream\n", len(offsets), padding)
		b.Write(data)
		b.WriteString("\nendstream\nendobj\n")
	}
	xref := b.Len()
	if !xrefStream {
		fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f\r\n", len(offsets)+1)
		for _, o := range offsets {
			fmt.Fprintf(&b, "%010d 00000 n\r\n", o)
		}
		fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
		return b.Bytes()
	}
	self := len(offsets) + 1
	var data bytes.Buffer
	data.Write([]byte{0, 0, 0, 0, 0xff, 0xff})
	for _, o := range append(offsets, xref) {
		data.Write([]byte{1, byte(o >> 24), byte(o >> 16), byte(o >> 8), byte(o), 0})
	}
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 1] /Root 1 0 R /Info 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] /Length %d >>\nstream\n", self, self+1, data.Len())
	b.Write(data.Bytes())
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// samples are PDFs from different producers.
func samples(t testing.TB) map[string][]byte {
	t.Helper()
	s := map[string][]byte{
		"go-table":  genPDF(2, 0, false),
		"go-stream": genPDF(2, 0, true),
	}
	for _, f := range []string{"libreoffice-will.pdf", "ghostscript-contract.pdf", "qpdf-objstm-will.pdf"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		s[strings.TrimSuffix(f, ".pdf")] = b
	}
	return s
}

func signBytes(t testing.TB, in []byte, opts SignOptions) ([]byte, *SignResult) {
	t.Helper()
	var out bytes.Buffer
	res, err := Sign(context.Background(), bytes.NewReader(in), int64(len(in)), &out, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res
}
