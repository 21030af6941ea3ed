package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/journal"
)

func samplePDF(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) upload(token, sid, name, contentType string, body []byte) response {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/sessions/"+sid+"/documents?name="+name, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

func TestDocumentsOverREST(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Exhibits"})
	sid := s.ID.String()
	judge := h.official(clerk, s.ID, "Judge", access.Judge)
	party := h.invite(clerk, s.ID, "Party", access.Party)
	other := h.invite(clerk, s.ID, "Other party", access.Party)
	witness := h.invite(clerk, s.ID, "Witness", access.Witness)
	pdf := samplePDF(t)
	sum := sha256.Sum256(pdf)

	var up api.UploadResponse
	h.must(h.upload(party.Token, sid, "contract.pdf", "application/pdf", pdf), 201).decode(t, &up)
	if up.SHA256 != hex.EncodeToString(sum[:]) || up.Size != int64(len(pdf)) || up.Version != 1 || up.ContentType != "application/pdf" || up.Status != "submitted" {
		t.Fatalf("upload response %+v", up)
	}
	// The same bytes again from the same uploader: the same document,
	// reported, not stored twice.
	var dup api.UploadResponse
	h.must(h.upload(party.Token, sid, "again.pdf", "application/pdf", pdf), 200).decode(t, &dup)
	if !dup.Duplicate || dup.ID != up.ID {
		t.Fatalf("duplicate upload %+v", dup)
	}
	// The same bytes from someone else: a document of their own, with
	// their name for it (storage is shared, visibility is not).
	var judges api.UploadResponse
	h.must(h.upload(judge.Token, sid, "judgment-annex.pdf", "application/pdf", pdf), 201).decode(t, &judges)
	if judges.Duplicate || judges.ID == up.ID || judges.Name != "judgment-annex.pdf" || judges.SHA256 != up.SHA256 {
		t.Fatalf("another uploader's identical upload %+v", judges)
	}

	tests := []struct {
		name, token, file, ct string
		body                  []byte
		status                int
		code                  string
	}{
		{"claims pdf, is png", party.Token, "x.pdf", "application/pdf", []byte("\x89PNG\r\n\x1a\n0000000000000000"), 415, "unsupported_media_type"},
		{"executable", party.Token, "x.bin", "", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), 415, "unsupported_media_type"},
		{"text claiming jpeg", party.Token, "notes.jpg", "", []byte("hello, court"), 415, "unsupported_media_type"},
		{"too large", party.Token, "big.txt", "text/plain", bytes.Repeat([]byte("a"), 9<<20), 413, "too_large"},
		{"empty", party.Token, "e.txt", "text/plain", nil, 415, "unsupported_media_type"},
		{"truncated pdf", party.Token, "t.pdf", "application/pdf", pdf[:len(pdf)/2], 422, "malformed_pdf"},
		{"pdf nesting bomb", party.Token, "b.pdf", "application/pdf", append([]byte("%PDF-1.7\n1 0 obj\n"), bytes.Repeat([]byte("["), 1<<20)...), 422, "malformed_pdf"},
		{"no name", party.Token, "", "text/plain", []byte("x"), 422, "invalid"},
		{"witness may not upload", witness.Token, "w.txt", "text/plain", []byte("x"), 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.upload(tt.token, sid, tt.file, tt.ct, tt.body)
			if r.Status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
		})
	}

	// Multipart upload of a text file.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "statement.txt")
	fw.Write([]byte("I saw the defendant at 9 o'clock.\n"))
	mw.Close()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/sessions/"+sid+"/documents", &mp)
	req.Header.Set("Authorization", "Bearer "+other.Token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("multipart upload: %d", resp.StatusCode)
	}

	// Visibility: the other party sees only their own until an exhibit is admitted.
	var list []documents.Document
	h.must(h.do("GET", "/api/v1/sessions/"+sid+"/documents", other.Token, nil), 200).decode(t, &list)
	if len(list) != 1 || list[0].Name != "statement.txt" {
		t.Fatalf("other party sees %d documents", len(list))
	}
	h.must(h.do("GET", "/api/v1/documents/"+up.ID.String(), other.Token, nil), 404)
	h.must(h.do("PATCH", "/api/v1/documents/"+up.ID.String(), party.Token, map[string]any{"label": "P-1"}), 403)
	h.must(h.do("PATCH", "/api/v1/documents/"+up.ID.String(), clerk, map[string]any{"label": "p1"}), 422)
	h.must(h.do("PATCH", "/api/v1/documents/"+up.ID.String(), clerk, map[string]any{"label": "P-1", "status": "admitted"}), 200)
	h.must(h.do("GET", "/api/v1/documents/"+up.ID.String(), other.Token, nil), 200)
	h.must(h.do("GET", "/api/v1/sessions/"+sid+"/documents", witness.Token, nil), 403)

	// Content: ETag, ranges, disposition.
	req, _ = http.NewRequest("GET", h.srv.URL+"/api/v1/documents/"+up.ID.String()+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+other.Token)
	req.Header.Set("Range", "bytes=0-4")
	resp, err = h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(part) != "%PDF-" || resp.Header.Get("ETag") != `"`+up.SHA256+`"` ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "contract.pdf") {
		t.Fatalf("range read: %d %q etag %q disposition %q", resp.StatusCode, part, resp.Header.Get("ETag"), resp.Header.Get("Content-Disposition"))
	}

	// The judge signs: a new version; the original stays retrievable.
	var signed api.SignResponse
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", judge.Token,
		map[string]any{"reason": "Admitted as exhibit P-1", "location": "Tallinn",
			"visible": map[string]any{"page": 1, "x": 50, "y": 50, "width": 220, "height": 80}}), 201).decode(t, &signed)
	if signed.Document.Version != 2 || signed.Signature.CertificateSerial == "" || signed.Signature.TimestampTime.IsZero() {
		t.Fatalf("signature %+v", signed.Signature)
	}
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", party.Token, map[string]any{"reason": "x"}), 403)
	orig := h.do("GET", "/api/v1/documents/"+up.ID.String()+"/content?version=1", judge.Token, nil)
	if !bytes.Equal(orig.Body, pdf) {
		t.Fatal("version 1 changed after signing")
	}
	v2 := h.must(h.do("GET", "/api/v1/documents/"+up.ID.String()+"/content", judge.Token, nil), 200).Body
	if !bytes.HasPrefix(v2, pdf) {
		t.Fatal("the signed version does not extend the original (incremental update)")
	}
	f := filepath.Join(t.TempDir(), "signed.pdf")
	os.WriteFile(f, v2, 0o644)
	out, _ := exec.Command(testenv.Command(t, "pdfsig"), "-nocert", "-no-ocsp", f).CombinedOutput()
	if !strings.Contains(string(out), "Signature is Valid") {
		t.Fatalf("pdfsig on the signed version:\n%s", out)
	}

	var entries []journal.Entry
	h.must(h.do("GET", "/api/v1/sessions/"+sid+"/journal", judge.Token, nil), 200).decode(t, &entries)
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Action] = true
		if e.Action == "document.uploaded" && !strings.Contains(string(e.Details), `"sha256"`) {
			t.Errorf("upload journalled without its SHA-256: %s", e.Details)
		}
	}
	for _, want := range []string{"document.uploaded", "document.upload_duplicate", "exhibit.updated", "document.signed"} {
		if !seen[want] {
			t.Errorf("journal lacks %s", want)
		}
	}
}

// minioStore is an evidence store in a fresh bucket of the test MinIO.
func minioStore(t *testing.T) evidence.Store {
	t.Helper()
	m := testenv.MinIO(t)
	name := strings.ToLower(strings.NewReplacer("/", "-", "+", "-").Replace(t.Name()))
	store, err := evidence.NewS3(t.Context(), evidence.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Insecure: true, Bucket: "api-test-" + name[:min(20, len(name))] + "-" + randomSuffix(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// TestDocumentsOnPostgresAndMinIO runs an upload and a signature through
// the real servers CI runs.
func TestDocumentsOnPostgresAndMinIO(t *testing.T) {
	h := newHarnessWithStore(t, databasetest.Open(t, database.Postgres), minioStore(t), 8<<20)
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Exhibits on MinIO"})
	n := h.official(clerk, s.ID, "Judge Mets", access.Judge)
	pdf := samplePDF(t)
	var up api.UploadResponse
	h.must(h.upload(n.Token, s.ID.String(), "judgment.pdf", "application/pdf", pdf), 201).decode(t, &up)
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", n.Token, map[string]any{"reason": "Judgment", "location": "Tallinn"}), 201)
	got := h.must(h.do("GET", "/api/v1/documents/"+up.ID.String()+"/content?version=1", n.Token, nil), 200).Body
	if !bytes.Equal(got, pdf) {
		t.Fatal("MinIO round trip changed the original")
	}
}

// TestVerifyEndpoint: the public verifier answers every kind of bad PDF
// with its own 4xx, and a document Chamber signed as valid.
func TestVerifyEndpoint(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Verify"})
	judge := h.official(clerk, s.ID, "Judge Mets", access.Judge)
	var up api.UploadResponse
	h.must(h.upload(judge.Token, s.ID.String(), "judgment.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &up)
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", judge.Token, map[string]any{"reason": "Judgment", "location": "Tallinn"}), 201)
	signedPDF := h.must(h.do("GET", "/api/v1/documents/"+up.ID.String()+"/content", judge.Token, nil), 200).Body

	qpdf := testenv.Command(t, "qpdf")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "enc.pdf")
	if err := os.WriteFile(in, samplePDF(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(qpdf, "--encrypt", "", "owner", "256", "--", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --encrypt: %v\n%s", err, b)
	}
	encrypted, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"empty", nil, 400, "empty"},
		{"not a PDF", []byte("hello, world"), 422, "malformed_pdf"},
		{"truncated", signedPDF[:len(signedPDF)/2], 422, "malformed_pdf"},
		{"encrypted", encrypted, 422, "encrypted_pdf"},
		{"too large", make([]byte, 8<<20+1), 413, "too_large"},
		{"signed", signedPDF, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.raw("POST", "/api/v1/verify", "", "application/pdf", c.body)
			if r.Status != c.status || r.errorCode() != c.code {
				t.Fatalf("%d %s, want %d %q", r.Status, r.Body, c.status, c.code)
			}
			if c.status == 200 {
				var rep pades.Report
				r.decode(t, &rep)
				if !rep.Valid || len(rep.Signatures) == 0 {
					t.Fatalf("signed document reported %+v", rep)
				}
			}
		})
	}
}
