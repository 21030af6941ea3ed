package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
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

// TestFullStoreIs507: with the evidence store's disk full an upload is
// answered 507 insufficient_storage (not a bare 500), nothing is recorded,
// and /readyz fails on the store's write probe while the store still
// answers; freeing space brings both back.
func TestFullStoreIs507(t *testing.T) {
	dir := testenv.SmallFS(t, 4<<20)
	store, err := evidence.NewLocal(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWithStore(t, databasetest.Open(t, database.SQLite), store, 8<<20)
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Full disk"})
	party := h.invite(clerk, s.ID, "Mari Tamm", access.Party)
	if code, _ := readiness(t, h); code != 200 {
		t.Fatalf("/readyz before the disk filled: %d", code)
	}

	free := testenv.Fill(t, dir)
	r := h.upload(party.Token, s.ID.String(), "contract.pdf", "application/pdf", samplePDF(t))
	if r.Status != http.StatusInsufficientStorage || r.errorCode() != "insufficient_storage" {
		t.Fatalf("upload to a full store: %d %s; want 507 insufficient_storage", r.Status, r.Body)
	}
	var list []documents.Document
	h.must(h.do("GET", "/api/v1/sessions/"+s.ID.String()+"/documents", clerk, nil), 200).decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("documents after the failed upload: %v", list)
	}
	h.storeProbe.Refresh(t.Context())
	if code, checks := readiness(t, h); code != http.StatusServiceUnavailable || !strings.HasPrefix(checks["evidence"], "down") || checks["database"] != "ok" {
		t.Fatalf("/readyz with the store full: %d %v", code, checks)
	}

	free()
	h.storeProbe.Refresh(t.Context())
	if code, checks := readiness(t, h); code != 200 {
		t.Fatalf("/readyz after freeing space: %d %v", code, checks)
	}
	h.must(h.upload(party.Token, s.ID.String(), "contract.pdf", "application/pdf", samplePDF(t)), 201)
}

func readiness(t *testing.T, h *harness) (int, map[string]string) {
	t.Helper()
	r := h.do("GET", "/readyz", "", nil)
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	r.decode(t, &body)
	return r.Status, body.Checks
}

// TestStoreOutageIs503: an upload while MinIO is frozen (SIGSTOP) or dead
// is answered 503 unavailable with Retry-After within about the store's
// operation timeout — before, a frozen MinIO held the request for 64 s and
// a dead one took 10–12 s to give a 500.
func TestStoreOutageIs503(t *testing.T) {
	m := testenv.StartMinIO(t, "")
	const opTimeout = 2 * time.Second
	store, err := evidence.NewS3(t.Context(), evidence.S3Config{Endpoint: m.Endpoint, Bucket: "api-outage", AccessKey: m.AccessKey,
		SecretKey: m.SecretKey, Insecure: true, OpTimeout: opTimeout, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWithStore(t, databasetest.Open(t, database.SQLite), store, 8<<20)
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Store outage"})
	party := h.invite(clerk, s.ID, "Mari Tamm", access.Party)
	for _, outage := range []struct {
		name         string
		start, after func()
	}{
		{"frozen", m.Freeze, m.Thaw},
		{"dead", m.Kill, m.Start},
	} {
		outage.start()
		start := time.Now()
		r := h.upload(party.Token, s.ID.String(), "contract.pdf", "application/pdf", samplePDF(t))
		took := time.Since(start)
		if r.Status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("upload with MinIO %s: %d %s; want 503 unavailable with Retry-After", outage.name, r.Status, r.Body)
		}
		// A bound on the failure, not a speed target.
		if took > 4*opTimeout {
			t.Errorf("upload with MinIO %s took %s; want about %s", outage.name, took, opTimeout)
		}
		outage.after()
	}
	h.must(h.upload(party.Token, s.ID.String(), "contract.pdf", "application/pdf", samplePDF(t)), 201)
}
