package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/oidctest"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signin"
)

func identityHarness(t *testing.T, opt func(cfg *api.Config, url string)) *harness {
	t.Helper()
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	return buildHarness(t, databasetest.Open(t, database.SQLite), store, 8<<20, opt)
}

// browser is a cookie-keeping HTTP client that behaves like the console's
// pages: same-origin fetches with the CSRF header.
type browser struct {
	t   *testing.T
	h   *harness
	c   *http.Client
	hdr http.Header // extra headers of every request
}

func newBrowser(t *testing.T, h *harness) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, h: h, c: &http.Client{Jar: jar}, hdr: http.Header{
		"Sec-Fetch-Site": {"same-origin"}, api.CSRFHeader: {"1"}, "Origin": {h.srv.URL}}}
}

func (b *browser) do(method, path string, body string, hdr http.Header) response {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.h.srv.URL+path, rd)
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Body: data, Header: res.Header}
}

// TestConsoleSignInAndCSRF: the development sign-in (no provider) sets a
// cookie that authenticates the console; a state-changing request without
// the CSRF header, from another origin or from another site is refused; an
// API token from a browser page is refused; signing out kills the cookie.
func TestConsoleSignInAndCSRF(t *testing.T) {
	h := identityHarness(t, nil)
	b := newBrowser(t, h)
	var cfg api.SignInConfig
	h.must(b.do("GET", "/api/v1/auth/config", "", nil), 200).decode(t, &cfg)
	if cfg.Provider || !cfg.Development || len(cfg.Staff) != 0 {
		t.Fatalf("config without a provider: %+v", cfg)
	}
	var clerk sessions.Staff
	h.must(b.do("POST", "/api/v1/auth/development", `{"name":"Kadri Kask","role":"clerk"}`, nil), 200).decode(t, &clerk)
	var me api.Me
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if me.Kind != "staff" || me.Staff.ID != clerk.ID || me.SignIn == nil || me.SignIn.Method != sessions.SignInDevelopment ||
		me.Credential.Kind != sessions.ByBrowser || len(me.MayAssign) == 0 {
		t.Fatalf("me = %+v", me)
	}
	create := `{"kind":"hearing","title":"Cookie hearing"}`
	for name, hdr := range map[string]http.Header{
		"no CSRF header":    {api.CSRFHeader: {""}},
		"foreign origin":    {"Origin": {"https://evil.example"}},
		"cross-site":        {"Sec-Fetch-Site": {"cross-site"}},
		"same-site sibling": {"Sec-Fetch-Site": {"same-site"}},
	} {
		if r := b.do("POST", "/api/v1/sessions", create, hdr); r.Status != 403 || r.errorCode() != "csrf" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := b.do("GET", "/api/v1/sessions", "", http.Header{"Sec-Fetch-Site": {"cross-site"}}); r.Status != 403 {
		t.Errorf("a cross-site read: %d", r.Status)
	}
	var s sessions.Session
	h.must(b.do("POST", "/api/v1/sessions", create, nil), 201).decode(t, &s)

	// An API token from a browser page is refused; from a program it works.
	tok := h.staffToken(access.Clerk)
	if r := b.do("GET", "/api/v1/sessions", "", http.Header{"Authorization": {"Bearer " + tok}}); r.Status != 401 {
		t.Errorf("an API token from a browser page: %d %s", r.Status, r.Body)
	}
	h.must(h.do("GET", "/api/v1/sessions", tok, nil), 200)
	// Signing in and out is for the console: an API token may not.
	if r := h.do("POST", "/api/v1/auth/logout", tok, nil); r.Status != 403 {
		t.Errorf("logout with an API token: %d", r.Status)
	}

	var out struct {
		LogoutURL string `json:"logout_url"`
	}
	h.must(b.do("POST", "/api/v1/auth/logout", "", nil), 200).decode(t, &out)
	if out.LogoutURL != "" {
		t.Errorf("a development sign-in has no provider logout: %q", out.LogoutURL)
	}
	if r := b.do("GET", "/api/v1/me", "", nil); r.Status != 401 {
		t.Fatalf("after signing out: %d %s", r.Status, r.Body)
	}
}

// TestDevelopmentSignInIsGuarded: only while no provider is configured,
// only for loopback clients unless --dev-sign-in anywhere, never when off.
func TestDevelopmentSignInIsGuarded(t *testing.T) {
	body := `{"name":"X","role":"admin"}`
	sign := func(h *harness, remote string) int {
		req := httptest.NewRequest("POST", "/api/v1/auth/development", strings.NewReader(body))
		req.RemoteAddr = remote
		req.Header.Set(api.CSRFHeader, "1")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		return rec.Code
	}
	h := identityHarness(t, nil)
	if got := sign(h, "192.0.2.7:5555"); got != 403 {
		t.Errorf("a remote client (loopback only): %d", got)
	}
	if got := sign(h, "[::1]:5555"); got != 200 {
		t.Errorf("a loopback client: %d", got)
	}
	h = identityHarness(t, func(cfg *api.Config, _ string) { cfg.DevSignIn = api.DevSignInAnywhere })
	if got := sign(h, "192.0.2.7:5555"); got != 200 {
		t.Errorf("a remote client, anywhere: %d", got)
	}
	h = identityHarness(t, func(cfg *api.Config, _ string) { cfg.DevSignIn = api.DevSignInOff })
	if got := sign(h, "127.0.0.1:5555"); got != 403 {
		t.Errorf("development sign-in off: %d", got)
	}
	op := oidctest.New(t)
	h = identityHarness(t, func(cfg *api.Config, u string) {
		cfg.DevSignIn = api.DevSignInAnywhere
		cfg.SignIn = provider(t, op, u, "")
	})
	if got := sign(h, "127.0.0.1:5555"); got != 403 {
		t.Errorf("development sign-in with a provider configured: %d", got)
	}
}

func provider(t *testing.T, op *oidctest.Provider, publicURL, roleClaim string) *signin.Provider {
	t.Helper()
	op.AddClient("chamber", "client-secret", publicURL+"/auth/callback")
	p, err := signin.New(signin.Config{Issuer: op.Issuer, ClientID: "chamber", ClientSecret: "client-secret",
		RedirectURL: publicURL + "/auth/callback", PostLogoutURL: publicURL + "/", RoleClaim: roleClaim,
		RoleMap: []signin.RoleMapping{{Value: "court-judges", Role: access.Judge}, {Value: "court-clerks", Role: access.Clerk}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signInAt follows the whole OpenID sign-in as a browser: Chamber's
// /auth/login, the provider's login page, the provider's redirect to
// /auth/callback, which lands on the console — or on ?sign_in_error=.
func (b *browser) signInAt(op *oidctest.Provider, query, user, password string) string {
	b.t.Helper()
	res, err := b.c.Get(b.h.srv.URL + "/auth/login" + query)
	if err != nil {
		b.t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.HasPrefix(res.Request.URL.String(), op.Issuer) {
		b.t.Fatalf("/auth/login did not lead to the provider: %d %s", res.StatusCode, page)
	}
	id := string(page[strings.Index(string(page), `name="id" value="`)+len(`name="id" value="`):])
	id = id[:strings.IndexByte(id, '"')]
	res, err = b.c.PostForm(op.Issuer+"/login", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	return res.Request.URL.String()
}

// TestOpenIDSignIn signs in through a real provider: an account whose
// groups claim maps to a role becomes that staff member; a staff member
// provisioned with its subject signs in as themselves; a token for another
// audience, a state from another browser, an account with no role, a
// staff member revoked in Chamber and one disabled at the provider are
// refused.
func TestOpenIDSignIn(t *testing.T) {
	op := oidctest.New(t)
	var rp *signin.Provider
	h := identityHarness(t, func(cfg *api.Config, u string) {
		rp = provider(t, op, u, "groups")
		cfg.SignIn = rp
	})
	op.AddUser(oidctest.User{Username: "mari", Password: "pw", GivenName: "Mari", Family: "Maasikas", Groups: []string{"court-judges"}})
	b := newBrowser(t, h)
	landed := b.signInAt(op, "?return=/%23/session/x", "mari", "pw")
	if !strings.HasSuffix(landed, "/#/session/x") && !strings.Contains(landed, "/%23/session/x") {
		t.Fatalf("landed on %s", landed)
	}
	var me api.Me
	h.must(b.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if me.Staff == nil || me.Staff.Role != access.Judge || me.Staff.Name != "Mari Maasikas" || !strings.HasPrefix(me.Staff.ExternalSubject, op.Issuer+"|") ||
		me.SignIn.Method != sessions.SignInOpenID {
		t.Fatalf("me = %+v", me)
	}
	var out struct {
		LogoutURL string `json:"logout_url"`
	}
	h.must(b.do("POST", "/api/v1/auth/logout", "", nil), 200).decode(t, &out)
	if !strings.HasPrefix(out.LogoutURL, op.Issuer) || !strings.Contains(out.LogoutURL, "id_token_hint=") {
		t.Fatalf("logout URL %q", out.LogoutURL)
	}
	h.must(b.do("GET", "/api/v1/me", "", nil), 401)

	refused := func(name, want string, landed string) {
		t.Helper()
		if !strings.Contains(landed, "sign_in_error="+want) {
			t.Errorf("%s: landed on %s, want sign_in_error=%s", name, landed, want)
		}
	}
	// A token for another client.
	op.IssueForAudience("someone-else")
	refused("another audience", "refused", newBrowser(t, h).signInAt(op, "", "mari", "pw"))
	op.IssueForAudience("")
	// An account whose groups map to no role.
	op.AddUser(oidctest.User{Username: "visitor", Password: "pw", GivenName: "V", Family: "Isitor", Groups: []string{"public"}})
	refused("no role", "no_role", newBrowser(t, h).signInAt(op, "", "visitor", "pw"))
	// Revoked in Chamber.
	if err := h.svc.RevokeStaff(context.Background(), "system", me.Staff.ID); err != nil {
		t.Fatal(err)
	}
	refused("revoked in Chamber", "disabled", newBrowser(t, h).signInAt(op, "", "mari", "pw"))

	// A staff member provisioned in advance with the account's subject
	// signs in as themselves; disabled at the provider, the next sweep
	// signs them out.
	sub := op.AddUser(oidctest.User{Username: "jaan", Password: "pw", GivenName: "Jaan", Family: "Saar", Groups: []string{"court-clerks"}})
	st, err := h.svc.AddStaff(context.Background(), "system", sessions.NewStaff{Name: "Clerk Jaan Saar", Role: access.Clerk, ExternalSubject: op.Issuer + "|" + sub})
	if err != nil {
		t.Fatal(err)
	}
	jaan := newBrowser(t, h)
	jaan.signInAt(op, "", "jaan", "pw")
	h.must(jaan.do("GET", "/api/v1/me", "", nil), 200).decode(t, &me)
	if me.Staff.ID != st.ID {
		t.Fatalf("the provisioned clerk signed in as %+v", me.Staff)
	}
	op.Disable("jaan")
	sweeper := sessions.New(sessions.Config{DB: h.db, Journal: h.jnl, Logger: discard, Revalidate: rp.Revalidate, RevalidateEvery: 1})
	if err := sweeper.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := jaan.do("GET", "/api/v1/me", "", nil); r.Status != 401 || r.errorCode() != "token_revoked" {
		t.Fatalf("a disabled account after the sweep: %d %s", r.Status, r.Body)
	}
	// The provider itself now refuses the account at its login page.
	if landed := newBrowser(t, h).signInAt(op, "", "jaan", "pw"); !strings.HasPrefix(landed, op.Issuer) {
		t.Errorf("a disabled account got past the provider to %s", landed)
	}

	// A state that is not this browser's: the login cookie is another's.
	other := newBrowser(t, h)
	res, err := other.c.Get(h.srv.URL + "/auth/callback?state=forged&code=x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	refused("a forged state", "state", res.Request.URL.String())
}

// TestLimiter: failures are counted per client address and a valid token
// always passes; a trusted proxy's X-Forwarded-For is honoured, anyone
// else's ignored.
func TestLimiter(t *testing.T) {
	bad := "cha_" + strings.Repeat("A", 43)
	from := func(h *harness, xff, token string) response {
		req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/sessions", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		res, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{Status: res.StatusCode, Body: b, Header: res.Header}
	}

	t.Run("a valid token passes", func(t *testing.T) {
		h := identityHarness(t, nil)
		for range 20 {
			from(h, "", bad)
		}
		if r := from(h, "", bad); r.Status != 429 {
			t.Fatalf("a bad token after 20 failures: %d", r.Status)
		}
		if r := from(h, "", h.staffToken(access.Clerk)); r.Status != 200 {
			t.Fatalf("a valid token after 20 failures: %d %s", r.Status, r.Body)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		h := identityHarness(t, func(cfg *api.Config, _ string) {
			cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		for range 12 {
			from(h, "203.0.113.5", bad)
		}
		if r := from(h, "203.0.113.5", bad); r.Status != 429 {
			t.Fatalf("the client behind the proxy after 12 failures: %d", r.Status)
		}
		// Another client behind the same proxy is not locked out, and a
		// client cannot escape by prepending an address of its choice.
		if r := from(h, "203.0.113.6", bad); r.Status != 401 {
			t.Fatalf("another client behind the proxy: %d", r.Status)
		}
		if r := from(h, "198.51.100.1, 203.0.113.5", bad); r.Status != 429 {
			t.Fatalf("a spoofed first hop: %d", r.Status)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		h := identityHarness(t, nil)
		for i := range 12 {
			from(h, "203.0.113."+string(rune('1'+i%9)), bad)
		}
		if r := from(h, "198.51.100.77", bad); r.Status != 429 {
			t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d", r.Status)
		}
	})
}

func TestClientAddrs(t *testing.T) {
	c := api.NewClientAddrs([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")})
	for _, tc := range []struct {
		name, remote string
		hdr          map[string]string
		want         string
	}{
		{"plain", "192.0.2.1:1000", nil, "192.0.2.1"},
		{"untrusted peer's header ignored", "192.0.2.1:1000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "192.0.2.1"},
		{"trusted proxy", "10.1.2.3:1000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"},
		{"two trusted hops", "10.1.2.3:1000", map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"spoofed hop ignored", "10.1.2.3:1000", map[string]string{"X-Forwarded-For": "1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"garbage hop", "10.1.2.3:1000", map[string]string{"X-Forwarded-For": "nonsense"}, "10.1.2.3"},
		{"Forwarded", "10.1.2.3:1000", map[string]string{"Forwarded": `for=192.0.2.60;proto=https, for="[2001:db8:1:2::7]:4711"`}, "2001:db8:1:2::/64"},
		{"Forwarded wins", "10.1.2.3:1000", map[string]string{"Forwarded": "for=192.0.2.60", "X-Forwarded-For": "203.0.113.9"}, "192.0.2.60"},
		{"IPv6 per /64", "[2001:db8:5:6:1:2:3:4]:1000", nil, "2001:db8:5:6::/64"},
		{"mapped IPv4", "[::ffff:192.0.2.4]:1000", nil, "192.0.2.4"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if got := c.Of(r); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestAPITokenScopes: an API token reaches only the routes of its scopes;
// staff and tokens are managed by admins only.
func TestAPITokenScopes(t *testing.T) {
	h := identityHarness(t, nil)
	ctx := context.Background()
	st, _ := h.svc.AddStaff(ctx, "system", sessions.NewStaff{Name: "Reader", Role: access.Clerk})
	read, err := h.svc.AddAPIToken(ctx, "system", st.ID, sessions.NewAPIToken{Name: "reports", Scopes: []string{sessions.ScopeSessionsRead}})
	if err != nil {
		t.Fatal(err)
	}
	h.must(h.do("GET", "/api/v1/sessions", read.Token, nil), 200)
	if r := h.do("POST", "/api/v1/sessions", read.Token, map[string]any{"kind": "hearing", "title": "x"}); r.Status != 403 || r.errorCode() != "insufficient_scope" {
		t.Fatalf("writing with a read token: %d %s", r.Status, r.Body)
	}
	clerk := h.staffToken(access.Clerk)
	if r := h.do("GET", "/api/v1/staff", clerk, nil); r.Status != 403 {
		t.Fatalf("a clerk listing staff: %d", r.Status)
	}
	admin := h.staffToken(access.Admin)
	var judge sessions.Staff
	h.must(h.do("POST", "/api/v1/staff", admin, map[string]any{"name": "Judge Saar", "role": "judge", "external_subject": "https://idp|judge-1"}), 201).decode(t, &judge)
	var tok sessions.CreatedAPIToken
	h.must(h.do("POST", "/api/v1/staff/"+judge.ID.String()+"/tokens", admin, map[string]any{"name": "ci", "scopes": []string{"sessions:write"}}), 201).decode(t, &tok)
	var list []sessions.APIToken
	h.must(h.do("GET", "/api/v1/staff/"+judge.ID.String()+"/tokens", admin, nil), 200).decode(t, &list)
	if len(list) != 1 || list[0].ID != tok.ID || strings.Contains(string(h.do("GET", "/api/v1/tokens", admin, nil).Body), tok.Token) {
		t.Fatalf("tokens listed: %+v", list)
	}
	h.must(h.do("GET", "/api/v1/me", tok.Token, nil), 200)
	h.must(h.do("DELETE", "/api/v1/tokens/"+tok.ID.String(), admin, nil), 204)
	if r := h.do("GET", "/api/v1/me", tok.Token, nil); r.Status != 401 || r.errorCode() != "token_revoked" {
		t.Fatalf("a revoked token: %d %s", r.Status, r.Body)
	}
	h.must(h.do("DELETE", "/api/v1/tokens/"+uuid.NewString(), admin, nil), 404)
	h.must(h.do("POST", "/api/v1/staff/"+judge.ID.String()+"/revoke", admin, nil), 204)
}

// TestNoTokenAboveItsIssuer: through REST, nobody obtains an invitation for
// an official role or for a role the invite table does not give them.
func TestNoTokenAboveItsIssuer(t *testing.T) {
	h := identityHarness(t, nil)
	clerk, notary, admin := h.staffToken(access.Clerk), h.staffToken(access.Notary), h.staffToken(access.Admin)
	hearing := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "H"})
	act := h.createSession(notary, map[string]any{"kind": "notarisation", "title": "A", "act_type": "will"})
	judge := h.official(clerk, hearing.ID, "Judge", access.Judge)
	for _, tc := range []struct {
		name, token string
		sid         uuid.UUID
		role        access.Role
	}{
		{"clerk → judge", clerk, hearing.ID, access.Judge},
		{"clerk → clerk", clerk, hearing.ID, access.Clerk},
		{"admin → judge", admin, hearing.ID, access.Judge},
		{"admin → clerk", admin, hearing.ID, access.Clerk},
		{"judge → judge", judge.Token, hearing.ID, access.Judge},
		{"notary → notary", notary, act.ID, access.Notary},
		{"notary → embassy officer", notary, act.ID, access.EmbassyOfficer},
		{"admin → principal", admin, act.ID, access.Principal},
	} {
		r := h.do("POST", "/api/v1/sessions/"+tc.sid.String()+"/invitations", tc.token, map[string]any{"name": "X", "role": tc.role})
		if r.Status != 403 || !strings.Contains(string(r.Body), "invite") {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
	}
	// The clerk assigns the judge instead, who then signs with the seal as
	// themselves; the clerk still may not sign.
	pdf := samplePDF(t)
	var up api.UploadResponse
	h.must(h.upload(clerk, hearing.ID.String(), "order.pdf", "application/pdf", pdf), 201).decode(t, &up)
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", clerk, map[string]any{"reason": "r", "location": "l"}), 403)
	h.must(h.do("POST", "/api/v1/documents/"+up.ID.String()+"/signatures", judge.Token, map[string]any{"reason": "r", "location": "l"}), 201)
}

// TestLoginRedirectsWithAReason: a person who clicked "Sign in" lands back
// on the console with a reason it words — never a JSON page — when the
// provider is down or the bootstrap link is spent.
func TestLoginRedirectsWithAReason(t *testing.T) {
	h := identityHarness(t, func(cfg *api.Config, u string) {
		p, err := signin.New(signin.Config{Issuer: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", RedirectURL: u + "/auth/callback"})
		if err != nil {
			t.Fatal(err)
		}
		cfg.SignIn = p
	})
	c := h.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for query, want := range map[string]string{"": "/?sign_in_error=unavailable", "?bootstrap=spent-or-forged": "/?sign_in_error=bootstrap_used"} {
		res, err := c.Get(h.srv.URL + "/auth/login" + query)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("/auth/login%s: %d → %q, want %s", query, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
}
