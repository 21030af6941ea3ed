package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/oidctest"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signin"
)

// reauthHarness serves the API with a provider and the signing
// confirmation policy sign-in.
func reauthHarness(t *testing.T, op *oidctest.Provider, maxAge time.Duration) (*harness, *signin.Provider) {
	t.Helper()
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	var rp *signin.Provider
	h := buildHarnessSigning(t, databasetest.Open(t, database.SQLite), store, 8<<20,
		func(cfg *api.Config, u string) {
			rp = provider(t, op, u, "groups")
			cfg.SignIn = rp
		},
		func(s *documents.Signing) { s.Confirmation, s.ReauthMaxAge = documents.ConfirmSignIn, maxAge })
	return h, rp
}

// reauthenticate asks for a re-authentication from the console and goes
// through the provider's login page as user; it returns where the browser
// landed.
func (b *browser) reauthenticate(op *oidctest.Provider, returnTo, user, password string) string {
	b.t.Helper()
	var out struct {
		URL string `json:"url"`
	}
	body, _ := json.Marshal(map[string]string{"return": returnTo})
	b.h.must(b.do("POST", "/api/v1/auth/reauthenticate", string(body), nil), 200).decode(b.t, &out)
	if !strings.HasPrefix(out.URL, op.Issuer) {
		b.t.Fatalf("the re-authentication leads to %q, not the provider", out.URL)
	}
	res, err := b.c.Get(out.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	i := strings.Index(string(page), `name="id" value="`)
	if i < 0 {
		b.t.Fatalf("no login page at the provider: %s", page)
	}
	id := string(page[i+len(`name="id" value="`):])
	id = id[:strings.IndexByte(id, '"')]
	res, err = b.c.PostForm(op.Issuer+"/login", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	return res.Request.URL.String()
}

// journalDetails returns the details of the journal entries of an action.
func (h *harness) journalDetails(action string) []map[string]any {
	h.t.Helper()
	rows, err := h.db.QueryContext(context.Background(), `SELECT details FROM journal WHERE action = $1 ORDER BY seq`, action)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			h.t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestSigningConfirmedByRecentSignIn is issue 12's last item over REST
// with a real provider, under --signing-confirmation sign-in: a judge
// whose sign-in at the provider is stale is refused (reauthentication_
// required) and nothing is signed; a provider that ignores max_age does
// not confirm; after a real re-authentication the judge signs, and the
// journal says it was confirmed by a sign-in at that auth_time; the
// judge's API token never signs; a refresh does not freshen the sign-in;
// another account coming back from a re-authentication ends the sign-in.
func TestSigningConfirmedByRecentSignIn(t *testing.T) {
	op := oidctest.New(t)
	h, rp := reauthHarness(t, op, 2*time.Minute)
	op.AddUser(oidctest.User{Username: "mari", Password: "pw", GivenName: "Mari", Family: "Maasikas", Groups: []string{"court-judges"}})
	op.AddUser(oidctest.User{Username: "kadri", Password: "pw", GivenName: "Kadri", Family: "Kask", Groups: []string{"court-judges"}})
	ctx := context.Background()

	// The judge signed in at the provider an hour ago.
	long := time.Now().Add(-time.Hour).Truncate(time.Second)
	op.ReportAuthTime(long)
	b := newBrowser(t, h)
	b.signInAt(op, "", "mari", "pw")
	var me api.Me
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if me.Staff == nil || me.Staff.Role != access.Judge || !me.SignIn.AuthTime.Equal(long) || me.SignIn.AuthTimeSource != sessions.AuthTimeClaim {
		t.Fatalf("me = %+v (sign-in %+v), want auth_time %v from the claim", me, me.SignIn, long)
	}
	tok, err := h.svc.AddAPIToken(ctx, "system", me.Staff.ID, sessions.NewAPIToken{Name: "automation", Scopes: []string{sessions.ScopeSessionsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	s := h.createSession(tok.Token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"})
	var doc documents.Document
	h.must(h.upload(tok.Token, s.ID.String(), "judgment.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &doc)
	sign := func(viaToken bool) response {
		t.Helper()
		body := `{"reason":"Judgment","location":"Tallinn"}`
		if viaToken {
			return h.do("POST", "/api/v1/documents/"+doc.ID.String()+"/signatures", tok.Token, json.RawMessage(body))
		}
		return b.do("POST", "/api/v1/documents/"+doc.ID.String()+"/signatures", body, nil)
	}
	unsigned := func(what string) {
		t.Helper()
		var d documents.Document
		h.must(h.do("GET", "/api/v1/documents/"+doc.ID.String(), tok.Token, nil), 200).decode(t, &d)
		if d.Version != doc.Version || len(h.journalDetails("document.signed")) != 0 {
			t.Fatalf("%s: the document is at version %d (was %d), %d signatures journalled", what, d.Version, doc.Version, len(h.journalDetails("document.signed")))
		}
	}
	refused := func(what string, r response, status int, code string) {
		t.Helper()
		if r.Status != status || r.errorCode() != code {
			t.Fatalf("%s: %d %s, want %d %s", what, r.Status, r.Body, status, code)
		}
		unsigned(what)
	}

	refused("a stale sign-in", sign(false), 403, documents.CodeReauthRequired)
	refused("the judge's API token", sign(true), 403, documents.CodeConfirmationRequired)

	// A refresh at the provider does not freshen the sign-in.
	sweeper := sessions.New(sessions.Config{DB: h.db, Journal: h.jnl, Logger: discard, Revalidate: rp.Revalidate, RevalidateEvery: 1})
	refreshes := op.Refreshes()
	if err := sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if op.Refreshes() == refreshes {
		t.Fatal("the sweep did not revalidate the sign-in with its refresh token")
	}
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if !me.SignIn.AuthTime.Equal(long) {
		t.Fatalf("a refresh moved auth_time to %v", me.SignIn.AuthTime)
	}
	refused("a stale sign-in after a refresh", sign(false), 403, documents.CodeReauthRequired)

	// A provider that ignores max_age answers with its old session's
	// auth_time: not confirmed, and the judge is back where they were.
	back := "/#/session/" + s.ID.String()
	landed := b.reauthenticate(op, back, "mari", "pw")
	if maxAge, prompt := op.LastRequest(); maxAge != "0" || prompt != "login" {
		t.Fatalf("the re-authentication asked for max_age %q prompt %q", maxAge, prompt)
	}
	if !strings.Contains(landed, "/?sign_in_error="+signin.CodeReauthStale+"#/session/"+s.ID.String()) {
		t.Fatalf("a re-authentication the provider did not do landed on %s", landed)
	}
	refused("a re-authentication the provider did not do", sign(false), 403, documents.CodeReauthRequired)
	// Nor does one whose ID token has no auth_time.
	op.ReportAuthTime(time.Time{})
	op.OmitAuthTime(true)
	if landed := b.reauthenticate(op, back, "mari", "pw"); !strings.Contains(landed, "sign_in_error="+signin.CodeReauthStale) {
		t.Fatalf("a re-authentication without auth_time landed on %s", landed)
	}
	refused("a re-authentication without auth_time", sign(false), 403, documents.CodeReauthRequired)
	op.OmitAuthTime(false)

	// A real re-authentication: back on the document, the judge signs.
	started := time.Now().Truncate(time.Second)
	if landed := b.reauthenticate(op, back, "mari", "pw"); strings.Contains(landed, "sign_in_error") || !strings.HasSuffix(landed, back) {
		t.Fatalf("a re-authentication landed on %s, want %s", landed, back)
	}
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if me.SignIn.AuthTime.Before(started) {
		t.Fatalf("the re-authentication left auth_time at %v", me.SignIn.AuthTime)
	}
	// The API token still does not sign.
	refused("the judge's API token after a re-authentication", sign(true), 403, documents.CodeConfirmationRequired)
	var signed api.SignResponse
	h.must(sign(false), 201).decode(t, &signed)
	rec := signed.Signature
	if rec.Confirmation != documents.ConfirmedBySignIn || !rec.ConfirmationAuthTime.Equal(me.SignIn.AuthTime) ||
		rec.Signer != "Mari Maasikas" || rec.SigningIdentity == "" {
		t.Fatalf("signature %+v", rec)
	}
	entries := h.journalDetails("document.signed")
	if len(entries) != 1 || entries[0]["confirmation"] != documents.ConfirmedBySignIn || entries[0]["auth_time"] == nil {
		t.Fatalf("journalled %+v", entries)
	}
	if at, err := time.Parse(time.RFC3339Nano, entries[0]["auth_time"].(string)); err != nil || !at.Equal(me.SignIn.AuthTime) {
		t.Fatalf("journalled auth_time %v (%v), want %v", entries[0]["auth_time"], err, me.SignIn.AuthTime)
	}
	if re := h.journalDetails("staff.reauthenticated"); len(re) != 1 || re[0]["browser_session"] != me.SignIn.ID.String() {
		t.Fatalf("re-authentications journalled: %+v", re)
	}

	// Another account at the provider in the judge's place: the judge's
	// sign-in is ended.
	landed = b.reauthenticate(op, back, "kadri", "pw")
	if !strings.Contains(landed, "sign_in_error=reauthentication_other_account") {
		t.Fatalf("another account's re-authentication landed on %s", landed)
	}
	if r := b.do("GET", "/api/v1/me", "", nil); r.Status != 401 {
		t.Fatalf("the judge's sign-in after another account re-authenticated: %d %s", r.Status, r.Body)
	}
	if ended := h.journalDetails("staff.signed_out"); len(ended) != 1 || ended[0]["reason"] != "reauthenticated_as_another" {
		t.Fatalf("sign-outs journalled: %+v", ended)
	}
}

// TestReauthenticationIsGuarded: only a console sign-in through the
// provider starts one (not an API token, not without a provider, not
// cross-site), and its return path stays on this site.
func TestReauthenticationIsGuarded(t *testing.T) {
	op := oidctest.New(t)
	h, _ := reauthHarness(t, op, time.Minute)
	op.AddUser(oidctest.User{Username: "mari", Password: "pw", GivenName: "Mari", Family: "Maasikas", Groups: []string{"court-judges"}})
	b := newBrowser(t, h)
	b.signInAt(op, "", "mari", "pw")
	var me api.Me
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)

	for _, evil := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"} {
		body, _ := json.Marshal(map[string]string{"return": evil})
		h.must(b.do("POST", "/api/v1/auth/reauthenticate", string(body), nil), 200)
		var ret string
		if err := h.db.QueryRowContext(context.Background(), `SELECT return_to FROM sign_in_attempts WHERE reauth_session = $1 ORDER BY created_at DESC LIMIT 1`,
			me.SignIn.ID.String()).Scan(&ret); err != nil {
			t.Fatal(err)
		}
		if ret != "/" {
			t.Errorf("return %q is kept as %q", evil, ret)
		}
	}
	if r := b.do("POST", "/api/v1/auth/reauthenticate", `{"return":"/"}`, map[string][]string{api.CSRFHeader: {""}}); r.Status != 403 || r.errorCode() != "csrf" {
		t.Errorf("without the CSRF header: %d %s", r.Status, r.Body)
	}
	tok, err := h.svc.AddAPIToken(context.Background(), "system", me.Staff.ID, sessions.NewAPIToken{Name: "automation", Scopes: []string{sessions.ScopeSessionsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if r := h.do("POST", "/api/v1/auth/reauthenticate", tok.Token, map[string]string{"return": "/"}); r.Status != 403 {
		t.Errorf("an API token starts a re-authentication: %d %s", r.Status, r.Body)
	}
	// Without a console sign-in there is nothing to re-authenticate.
	if r := newBrowser(t, h).do("POST", "/api/v1/auth/reauthenticate", `{"return":"/"}`, nil); r.Status != 401 {
		t.Errorf("without a sign-in: %d %s", r.Status, r.Body)
	}

	// Without a provider there is nothing to re-authenticate with.
	dev := identityHarness(t, nil)
	db := newBrowser(t, dev)
	dev.must(db.do("POST", "/api/v1/auth/development", `{"name":"Judge Dev","role":"judge"}`, nil), 200)
	if r := db.do("POST", "/api/v1/auth/reauthenticate", `{"return":"/"}`, nil); r.Status != 404 {
		t.Errorf("without a provider: %d %s", r.Status, r.Body)
	}
}

// TestAPITokenSignsUnderPolicyNone: with --signing-confirmation none (the
// development default) an official's API token signs, and the journal
// says nothing confirmed it.
func TestAPITokenSignsUnderPolicyNone(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Policy none"})
	judge := h.official(clerk, s.ID, "Judge Saar", access.Judge)
	var doc documents.Document
	h.must(h.upload(clerk, s.ID.String(), "judgment.pdf", "application/pdf", samplePDF(t)), 201).decode(t, &doc)
	var signed api.SignResponse
	h.must(h.do("POST", "/api/v1/documents/"+doc.ID.String()+"/signatures", judge.Token, map[string]any{"reason": "Judgment", "location": "Tallinn"}), 201).decode(t, &signed)
	if signed.Signature.Confirmation != documents.ConfirmedByNone || !signed.Signature.ConfirmationAuthTime.IsZero() {
		t.Fatalf("signature %+v", signed.Signature)
	}
	if e := h.journalDetails("document.signed"); len(e) != 1 || e[0]["confirmation"] != documents.ConfirmedByNone {
		t.Fatalf("journalled %+v", e)
	}
}
