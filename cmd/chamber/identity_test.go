package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// console is a browser's view of the console: a cookie jar, and the CSRF
// header every state-changing request of the console's pages carries.
type console struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsole(t *testing.T, base string) *console {
	jar, _ := cookiejar.New(nil)
	return &console{t: t, base: base, c: &http.Client{Jar: jar}}
}

func (c *console) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("X-Chamber-CSRF", "1")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func dialSignal(t *testing.T, base, sessionID, token string) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: "ws" + strings.TrimPrefix(base, "http") + "/api/v1/sessions/" + sessionID + "/signal",
		Token: token, LoopbackOnly: true})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func closedWithin(t *testing.T, who string, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(d):
		t.Fatalf("%s is still connected after %v", who, d)
	}
}

func stillConnected(t *testing.T, who string, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, protocol.TypePing, map[string]any{}); err != nil {
		t.Fatalf("%s lost their connection: %v", who, err)
	}
}

// TestRevokedStaffMidHearing: a clerk revoked by an admin mid-hearing loses
// their console sign-in, API token and every live connection at once; a
// judge revoked from the command line (another process) loses them within
// one sweep; the invitations both issued keep working.
func TestRevokedStaffMidHearing(t *testing.T) {
	dir := t.TempDir()
	admin := addStaff(t, dir, nil, "Admin Aare", "admin")
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk")
	judge := addStaff(t, dir, nil, "Judge Saar", "judge")
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")

	// The clerk signs in to the console (the development sign-in: no provider here).
	browser := newConsole(t, s.URL)
	if code, b := browser.do("POST", "/api/v1/auth/development", `{"staff_id":"`+clerk.ID+`"}`); code != 200 {
		t.Fatalf("development sign-in: %d %s", code, b)
	}
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk.Token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	assign(t, s.URL, sess.ID, clerk.Token, judge.ID)
	var party, witness struct{ Token string }
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk.Token, map[string]any{"name": "Mari Tamm", "role": "party"}, 201, &party)
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", judge.Token, map[string]any{"name": "Jaan Kuusk", "role": "witness"}, 201, &witness)

	// The clerk is in the room from the console and from a script; the
	// judge, the party and the witness too.
	code, b := browser.do("POST", "/api/v1/sessions/"+sess.ID+"/enter", "")
	if code != 200 {
		t.Fatalf("enter from the console: %d %s", code, b)
	}
	consoleTicket := string(b[strings.Index(string(b), `"ticket": "`)+len(`"ticket": "`):])
	consoleTicket = consoleTicket[:strings.IndexByte(consoleTicket, '"')]
	clerkTab, err := dialSignal(t, s.URL, sess.ID, consoleTicket)
	if err != nil {
		t.Fatal(err)
	}
	clerkScript, err := dialSignal(t, s.URL, sess.ID, enter(t, s.URL, sess.ID, clerk.Token).Ticket)
	if err != nil {
		t.Fatal(err)
	}
	judgeConn, err := dialSignal(t, s.URL, sess.ID, enter(t, s.URL, sess.ID, judge.Token).Ticket)
	if err != nil {
		t.Fatal(err)
	}
	partyConn, err := dialSignal(t, s.URL, sess.ID, party.Token)
	if err != nil {
		t.Fatal(err)
	}

	// Revoked by the admin: at once.
	call(t, "POST", s.URL+"/api/v1/staff/"+clerk.ID+"/revoke", admin.Token, nil, 204, nil)
	closedWithin(t, "the revoked clerk's console tab", clerkTab, 10*time.Second)
	closedWithin(t, "the revoked clerk's script", clerkScript, 10*time.Second)
	if code, _ := browser.do("GET", "/api/v1/me", ""); code != 401 {
		t.Fatalf("the revoked clerk's console sign-in: %d", code)
	}
	call(t, "GET", s.URL+"/api/v1/me", clerk.Token, nil, 401, nil)
	if _, err := dialSignal(t, s.URL, sess.ID, consoleTicket); err == nil {
		t.Fatal("the revoked clerk's ticket joined again")
	}
	stillConnected(t, "the party", partyConn)
	stillConnected(t, "the judge", judgeConn)
	call(t, "GET", s.URL+"/api/v1/me", party.Token, nil, 200, nil)

	// Revoked from the command line: the server learns it at its next sweep.
	if out, errOut, code := chamber(t, dir, "staff", "revoke", "--id", judge.ID); code != 0 {
		t.Fatalf("staff revoke: %d %s %s", code, out, errOut)
	}
	call(t, "GET", s.URL+"/api/v1/me", judge.Token, nil, 401, nil)
	closedWithin(t, "the judge revoked from the command line", judgeConn, time.Minute)

	// The invitations they issued were issued for the court: still good.
	stillConnected(t, "the party", partyConn)
	call(t, "GET", s.URL+"/api/v1/me", witness.Token, nil, 200, nil)
	if _, err := dialSignal(t, s.URL, sess.ID, witness.Token); err != nil {
		t.Fatalf("the witness invited by the revoked judge: %v", err)
	}
	if _, err := dialSignal(t, s.URL, sess.ID, party.Token); err != nil {
		t.Fatalf("the party invited by the revoked clerk, a second device: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "chamber.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM journal WHERE action = 'staff.revoked'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("staff.revoked journalled %d times (%v), want 2", n, err)
	}
}

// TestJoinFailuresAreLimited: a signalling join's token failures spend the
// client address's budget with the REST API's; a valid token still joins.
func TestJoinFailuresAreLimited(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk")
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk.Token, map[string]any{"kind": "hearing", "title": "Limits"}, 201, &sess)
	var party struct{ Token string }
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk.Token, map[string]any{"name": "Mari Tamm", "role": "party"}, 201, &party)
	bad := "chi_" + strings.Repeat("B", 43)
	var last error
	for range 12 {
		_, last = dialSignal(t, s.URL, sess.ID, bad)
	}
	var pe *protocol.Error
	if !errors.As(last, &pe) || pe.Code != protocol.CodeRateLimited {
		t.Fatalf("the 12th join with a bad token: %v, want rate_limited", last)
	}
	// The budget is the REST API's too.
	call(t, "GET", s.URL+"/api/v1/sessions", bad, nil, 429, nil)
	// A valid token is never refused.
	if _, err := dialSignal(t, s.URL, sess.ID, party.Token); err != nil {
		t.Fatalf("a valid invitation from the blocked address: %v", err)
	}
	call(t, "GET", s.URL+"/api/v1/sessions", clerk.Token, nil, 200, nil)
}

// TestBootstrapLink: a first start with no staff says how staff sign in
// here and prints, once, the link that makes the first administrator; the
// link works once, then the server has staff and says so.
func TestBootstrapLink(t *testing.T) {
	s := startServer(t, "", nil)
	// Logged before the server answers, so startServer has waited for it.
	var link string
	if logs := s.Log(); strings.Contains(logs, "bootstrap_url=") {
		link = strings.Fields(logs[strings.Index(logs, "bootstrap_url=")+len("bootstrap_url="):])[0]
	}
	if !strings.HasPrefix(link, s.URL+"/#/bootstrap/") || strings.Count(s.Log(), "bootstrap_url=") != 1 {
		t.Fatalf("bootstrap link %q in the log:\n%s", link, s.Log())
	}
	if !strings.Contains(s.Log(), "DEVELOPMENT SIGN-IN") {
		t.Fatal("the log does not say the development sign-in is on")
	}
	secret := strings.TrimPrefix(link, s.URL+"/#/bootstrap/")
	browser := newConsole(t, s.URL)
	if code, b := browser.do("GET", "/api/v1/auth/config", ""); code != 200 || !strings.Contains(string(b), `"bootstrap": true`) {
		t.Fatalf("config before the bootstrap: %d %s", code, b)
	}
	if code, _ := browser.do("POST", "/api/v1/auth/bootstrap", `{"token":"wrong-secret-wrong-secret","name":"Mallory"}`); code != 401 {
		t.Fatalf("a wrong bootstrap secret: %d", code)
	}
	if code, b := browser.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+secret+`","name":"Aare Admin"}`); code != 200 {
		t.Fatalf("the bootstrap: %d %s", code, b)
	}
	if code, b := browser.do("GET", "/api/v1/me", ""); code != 200 || !strings.Contains(string(b), `"role": "admin"`) {
		t.Fatalf("the first administrator: %d %s", code, b)
	}
	other := newConsole(t, s.URL)
	if code, _ := other.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+secret+`","name":"Second"}`); code == 200 {
		t.Fatal("the bootstrap link worked twice")
	}
	if code, b := other.do("GET", "/api/v1/auth/config", ""); code != 200 || !strings.Contains(string(b), `"bootstrap": false`) {
		t.Fatalf("config after the bootstrap: %d %s", code, b)
	}
}
