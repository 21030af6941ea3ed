package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
)

// TestNoCredentialSpendsNoBudget: a request without any credential (the
// console asking /me before its user signed in) is 401 however often it
// comes, and does not use up the address's failure budget; a wrong token
// from the same address still does.
func TestNoCredentialSpendsNoBudget(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	for i := range 30 {
		if r := h.do("GET", "/api/v1/me", "", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("request %d without a credential: %d %s", i+1, r.Status, r.Body)
		}
	}
	var last response
	for range 12 {
		last = h.do("GET", "/api/v1/me", "cha_"+strings.Repeat("A", 43), nil)
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("after 12 wrong tokens: %d %s", last.Status, last.Body)
	}
}

// TestDeadSignInCookieIsDropped: a sign-in cookie that no longer signs in
// is cleared by the 401 that says so, so the browser stops presenting it
// (each time would spend the address's failure budget); a live one is kept.
func TestDeadSignInCookieIsDropped(t *testing.T) {
	h := identityHarness(t, nil)
	b := newBrowser(t, h)
	h.must(b.do("POST", "/api/v1/auth/development", `{"name":"Kadri Kask","role":"clerk"}`, nil), 200)
	if r := b.do("GET", "/api/v1/me", "", nil); r.Status != 200 || len(r.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("a live sign-in: %d, Set-Cookie %q", r.Status, r.Header.Values("Set-Cookie"))
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/me", nil)
	req.AddCookie(&http.Cookie{Name: "chamber_session", Value: "chb_" + strings.Repeat("A", 43)})
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cleared bool
	for _, c := range res.Cookies() {
		cleared = cleared || (c.Name == "chamber_session" && c.MaxAge < 0)
	}
	if res.StatusCode != http.StatusUnauthorized || !cleared {
		t.Fatalf("a dead sign-in cookie: %d, Set-Cookie %q", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
}
