package main

import (
	"archive/zip"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/chamber-court/chamber/internal/testenv"
)

// chamber runs the binary with args in dir and returns stdout, stderr and
// the exit code.
func chamber(t testing.TB, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = testenv.CleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// call makes a JSON request to a running server.
func call(t testing.TB, method, url, token string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/pdf"
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, data, want)
	}
	if out != nil {
		if b, ok := out.(*[]byte); ok {
			*b = data
			return
		}
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
	}
}

// TestOperatorCommands: staff and their API tokens from the CLI drive the
// REST API; a judge's signature passes chamber verify and fails once a byte
// changes; an edited journal row fails chamber journal verify, naming that
// row.
func TestOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	// staff add on an empty data dir: the staff id alone on stdout.
	id, stderr, code := chamber(t, dir, "staff", "add", "--name", "Clerk Mets", "--role", "clerk")
	id = strings.TrimSpace(id)
	if code != 0 || len(id) != 36 || strings.Contains(id, "\n") {
		t.Fatalf("staff add: code %d stdout %q stderr %s", code, id, stderr)
	}
	// token add: the token alone on stdout, shown once.
	token, stderr, code := chamber(t, dir, "token", "add", "--staff", id, "--scope", "sessions:write", "--name", "scripts")
	token = strings.TrimSpace(token)
	if code != 0 || !strings.HasPrefix(token, "cha_") || strings.Contains(token, "\n") {
		t.Fatalf("token add: code %d stdout %q stderr %s", code, token, stderr)
	}
	if out, _, code := chamber(t, dir, "staff", "list"); code != 0 || !strings.Contains(out, "Clerk Mets") || strings.Contains(out, token) {
		t.Fatalf("staff list (code %d):\n%s", code, out)
	}
	if out, _, code := chamber(t, dir, "token", "list", "--staff", id); code != 0 || !strings.Contains(out, "scripts") || !strings.Contains(out, "sessions:write") || strings.Contains(out, token) {
		t.Fatalf("token list (code %d):\n%s", code, out)
	}
	for _, bad := range [][]string{
		{"staff", "add", "--name", "X", "--role", "bailiff"},
		{"token", "add", "--staff", "nobody"},
		{"token", "revoke", "--id", "x"},
	} {
		if _, _, code := chamber(t, dir, bad...); code != 2 {
			t.Fatalf("%v exited %d, want 2", bad, code)
		}
	}
	if _, stderr, code := chamber(t, dir, "token", "add", "--staff", id, "--scope", "staff:admin"); code != 1 || !strings.Contains(stderr, "admin") {
		t.Fatalf("staff:admin for a clerk: code %d %s", code, stderr)
	}
	judge := addStaff(t, dir, nil, "Judge Saar", "judge")

	s := startServer(t, dir, nil)
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	// A clerk cannot mint a judge's token; the clerk assigns the judge,
	// who signs with their own.
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", token, map[string]any{"name": "Judge Saar", "role": "judge"}, 403, nil)
	assign(t, s.URL, sess.ID, token, judge.ID)
	inv := struct{ Token string }{judge.Token}
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/documents?name=judgment.pdf", inv.Token, pdf, 201, &doc)
	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", inv.Token, map[string]any{"reason": "Judgment", "location": "Tallinn"}, 201, nil)
	var signed []byte
	call(t, "GET", s.URL+"/api/v1/documents/"+doc.ID+"/content", inv.Token, nil, 200, &signed)
	// The public verifier agrees.
	var rep struct{ Valid bool }
	call(t, "POST", s.URL+"/api/v1/verify", "", signed, 200, &rep)
	if !rep.Valid {
		t.Fatal("POST /api/v1/verify: not valid")
	}
	// The hearing's record: the bundle verifies offline with the CA alone.
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/close", inv.Token, nil, 200, nil)
	var zipped []byte
	call(t, "GET", s.URL+"/api/v1/sessions/"+sess.ID+"/bundle", inv.Token, nil, 200, &zipped)
	bundleFile := filepath.Join(t.TempDir(), "record.zip")
	os.WriteFile(bundleFile, zipped, 0o644)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	var caPEM []byte
	call(t, "GET", s.URL+"/pki/ca.pem", "", nil, 200, &caPEM)
	os.WriteFile(caFile, caPEM, 0o644)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "signed.pdf")
	os.WriteFile(file, signed, 0o644)
	if out, errOut, code := chamber(t, dir, "verify", file); code != 0 || !strings.Contains(out, "VALID") {
		t.Fatalf("chamber verify of a signed PDF: code %d\n%s%s", code, out, errOut)
	}
	if out, _, code := chamber(t, dir, "verify", file, "--json"); code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("chamber verify --json: code %d %s", code, out)
	}
	// Flip one byte inside the signed range (in the original's body).
	tampered := bytes.Clone(signed)
	i := bytes.Index(tampered, []byte("stream")) + 20
	tampered[i] ^= 0x01
	os.WriteFile(file, tampered, 0o644)
	if out, _, code := chamber(t, dir, "verify", file); code != 1 || !strings.Contains(out, "NOT VALID") {
		t.Fatalf("chamber verify of a tampered PDF: code %d\n%s", code, out)
	}

	offline := t.TempDir() // no data dir, no server: the bundle and the CA only
	if out, errOut, code := chamber(t, offline, "bundle", "verify", bundleFile, "--trust", caFile); code != 0 || !strings.HasPrefix(out, "VALID") {
		t.Fatalf("bundle verify: code %d\n%s%s", code, out, errOut)
	}
	if _, _, code := chamber(t, offline, "bundle", "verify", bundleFile); code != 2 {
		t.Fatalf("bundle verify without a trust root exited %d, want 2", code)
	}
	// Damage the bytes of a file of the record: the largest, the signed
	// PDF. Not a byte anywhere in the zip: a local header's time or
	// version is not evidence and nothing reads it, so a bundle so damaged
	// rightly still verifies (a run flipped one once, at a third of the
	// zip, and the test failed).
	damaged := largestMember(t, zipped)
	off, err := damaged.DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	zipped[off+int64(damaged.CompressedSize64/2)] ^= 0xff
	os.WriteFile(bundleFile, zipped, 0o644)
	if out, _, code := chamber(t, offline, "bundle", "verify", bundleFile, "--trust", caFile); code != 1 || !strings.Contains(out, damaged.Name) {
		t.Fatalf("bundle verify of a bundle with %s damaged: code %d\n%s", damaged.Name, code, out)
	}

	if out, errOut, code := chamber(t, dir, "journal", "verify"); code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("journal verify: code %d %s %s", code, out, errOut)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "chamber.db"))
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM journal WHERE action = 'document.uploaded'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE journal SET details = replace(details, 'judgment.pdf', 'forged.pdf') WHERE seq = $1`, seq); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, _, code := chamber(t, dir, "journal", "verify")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("entry %d", seq)) {
		t.Fatalf("journal verify after editing entry %d: code %d %s", seq, code, out)
	}
}

func httpNewRequest(method, url string, body []byte) (*http.Request, error) {
	return http.NewRequest(method, url, bytes.NewReader(body))
}

func httpDo(req *http.Request) (*http.Response, error) { return http.DefaultClient.Do(req) }

// largestMember is the zip's largest file.
func largestMember(t *testing.T, zipped []byte) *zip.File {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	var largest *zip.File
	for _, f := range zr.File {
		if largest == nil || f.CompressedSize64 > largest.CompressedSize64 {
			largest = f
		}
	}
	if largest == nil || largest.CompressedSize64 == 0 {
		t.Fatal("the bundle holds no file with content")
	}
	return largest
}
