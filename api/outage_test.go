package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/internal/testenv"
)

// postgresBehindProxy opens a migrated PostgreSQL database reached through
// a TCP proxy the test can cut, as a database outage looks to Chamber.
func postgresBehindProxy(t *testing.T) (*database.DB, *testenv.Proxy) {
	t.Helper()
	u, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	db, err := database.Open(t.Context(), u.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), discard); err != nil {
		t.Fatal(err)
	}
	return db, proxy
}

// TestDatabaseOutageIsNotAFailedLogin: while the database is unreachable,
// requests with a good token are answered 503 with Retry-After — never
// 401, and never counted as failed logins that lock the address out (429)
// once the database is back.
func TestDatabaseOutageIsNotAFailedLogin(t *testing.T) {
	db, proxy := postgresBehindProxy(t)
	h := newHarness(t, db)
	clerk := h.staffToken(access.Clerk)
	h.must(h.do("GET", "/api/v1/sessions", clerk, nil), 200)

	proxy.Cut()
	for i := range 15 {
		r := h.do("GET", "/api/v1/sessions", clerk, nil)
		if r.Status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d during the outage: %d %s (Retry-After %q); want 503 unavailable", i, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
		if r.Header.Get("WWW-Authenticate") != "" {
			t.Fatalf("request %d during the outage blames the token: %q", i, r.Header.Get("WWW-Authenticate"))
		}
	}
	proxy.Restore()
	h.must(h.do("GET", "/api/v1/sessions", clerk, nil), 200)
}
