package signin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/oidctest"
	"github.com/chamber-court/chamber/signin"
)

// rig is a relying party registered at a real test provider, and a
// callback that records what the provider sends back.
type rig struct {
	op       *oidctest.Provider
	rp       *signin.Provider
	callback string
	got      chan url.Values
}

func newRig(t *testing.T, mod func(*signin.Config)) *rig {
	t.Helper()
	r := &rig{op: oidctest.New(t), got: make(chan url.Values, 1)}
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.got <- req.URL.Query()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(cb.Close)
	r.callback = cb.URL + "/auth/callback"
	r.op.AddClient("chamber", "s3cret", r.callback)
	r.op.AddClient("other-app", "other", "http://other.invalid/cb")
	cfg := signin.Config{Issuer: r.op.Issuer, ClientID: "chamber", ClientSecret: "s3cret", RedirectURL: r.callback,
		PostLogoutURL: cb.URL + "/", RoleClaim: "groups", RoleMap: []signin.RoleMapping{{Value: "judges", Role: access.Judge}, {Value: "clerks", Role: access.Clerk}}}
	if mod != nil {
		mod(&cfg)
	}
	rp, err := signin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.rp = rp
	return r
}

// signIn goes through the provider's login page like a browser would and
// returns the code and state the provider sent to the callback.
func (r *rig) signIn(t *testing.T, a signin.Attempt, user, password string) (code, state string) {
	t.Helper()
	ctx := context.Background()
	authURL, err := r.rp.AuthURL(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	i := strings.Index(string(page), `name="id" value="`)
	if i < 0 {
		t.Fatalf("no login form at %s: %s", res.Request.URL, page)
	}
	id := string(page[i+len(`name="id" value="`):])
	id = id[:strings.IndexByte(id, '"')]
	res, err = c.PostForm(r.op.Issuer+"/login", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	select {
	case q := <-r.got:
		return q.Get("code"), q.Get("state")
	default:
		t.Fatalf("the provider did not come back: %s", body)
	}
	return "", ""
}

func TestSignInWithARealProvider(t *testing.T) {
	r := newRig(t, nil)
	sub := r.op.AddUser(oidctest.User{Username: "mari", Password: "pw", GivenName: "Mari", Family: "Maasikas", Email: "mari@court.test", Groups: []string{"staff", "judges"}})
	ctx := context.Background()
	a := signin.NewAttempt()
	code, state := r.signIn(t, a, "mari", "pw")
	if state != a.State {
		t.Fatalf("state %q came back as %q", a.State, state)
	}
	acct, toks, err := r.rp.Finish(ctx, code, a)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Subject != r.op.Issuer+"|"+sub || acct.Name != "Mari Maasikas" || acct.Role != access.Judge || acct.Email != "mari@court.test" {
		t.Fatalf("account = %+v", acct)
	}
	if toks.IDToken == "" || !strings.HasPrefix(toks.RefreshToken, "v1:") {
		t.Fatalf("tokens = %+v (the refresh token must be stored sealed)", toks)
	}
	// A code is used once.
	if _, _, err := r.rp.Finish(ctx, code, a); !errors.Is(err, fault.Unauthenticated) {
		t.Fatalf("a code used twice: %v", err)
	}
	// Revalidation works while the account is enabled, and the provider's
	// rotated refresh token replaces the old one.
	next, err := r.rp.Revalidate(ctx, toks.RefreshToken)
	if err != nil || next == toks.RefreshToken {
		t.Fatalf("revalidate: %v (token rotated: %v)", err, next != toks.RefreshToken)
	}
	if logout := r.rp.LogoutURL(ctx, toks.IDToken); !strings.HasPrefix(logout, r.op.Issuer) || !strings.Contains(logout, "id_token_hint=") {
		t.Fatalf("logout URL %q", logout)
	}
	r.op.Disable("mari")
	if _, err := r.rp.Revalidate(ctx, next); !errors.Is(err, fault.Revoked) {
		t.Fatalf("revalidating a disabled account: %v", err)
	}
	if _, err := r.rp.Revalidate(ctx, "v1:garbage"); !errors.Is(err, fault.Revoked) {
		t.Fatalf("a refresh token that does not unseal: %v", err)
	}
}

func TestSignInRefusals(t *testing.T) {
	r := newRig(t, nil)
	r.op.AddUser(oidctest.User{Username: "jaan", Password: "pw", GivenName: "Jaan", Family: "Tamm", Groups: []string{"visitors"}})
	ctx := context.Background()

	// Another nonce: the ID token belongs to another sign-in.
	a := signin.NewAttempt()
	code, _ := r.signIn(t, a, "jaan", "pw")
	b := a
	b.Nonce = "other"
	if _, _, err := r.rp.Finish(ctx, code, b); !errors.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("a foreign nonce: %v", err)
	}
	// Another PKCE verifier: the provider refuses the code.
	a = signin.NewAttempt()
	code, _ = r.signIn(t, a, "jaan", "pw")
	b = a
	b.Verifier = signin.NewAttempt().Verifier
	if _, _, err := r.rp.Finish(ctx, code, b); !errors.Is(err, fault.Unauthenticated) {
		t.Fatalf("a foreign PKCE verifier: %v", err)
	}
	// An ID token issued for another client.
	r.op.IssueForAudience("other-app")
	a = signin.NewAttempt()
	code, _ = r.signIn(t, a, "jaan", "pw")
	if _, _, err := r.rp.Finish(ctx, code, a); !errors.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("a token for another audience: %v", err)
	}
	r.op.IssueForAudience("")
	// A role claim mapping to no role: signed in, but no role.
	a = signin.NewAttempt()
	code, _ = r.signIn(t, a, "jaan", "pw")
	acct, _, err := r.rp.Finish(ctx, code, a)
	if err != nil || acct.Role != "" || !acct.RoleClaimed {
		t.Fatalf("account without a mapped role: %+v %v", acct, err)
	}
}

func TestProviderDown(t *testing.T) {
	rp, err := signin.New(signin.Config{Issuer: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", RedirectURL: "http://localhost/auth/callback"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.AuthURL(context.Background(), signin.NewAttempt()); !errors.Is(err, fault.Unavailable) {
		t.Fatalf("an unreachable provider: %v", err)
	}
}

func TestConfigAndRoleMap(t *testing.T) {
	for _, c := range []signin.Config{
		{Issuer: "ftp://x", ClientID: "c", ClientSecret: "s", RedirectURL: "http://x/cb"},
		{Issuer: "https://x", ClientSecret: "s", RedirectURL: "http://x/cb"},
		{Issuer: "https://x", ClientID: "c", RedirectURL: "http://x/cb"},
		{Issuer: "https://x", ClientID: "c", ClientSecret: "s"},
	} {
		if _, err := signin.New(c); !errors.Is(err, signin.ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	m, err := signin.ParseRoleMap(" judges=judge, Clerks Group = clerk ,")
	if err != nil || len(m) != 2 || m[1].Value != "Clerks Group" || m[1].Role != access.Clerk {
		t.Fatalf("role map = %+v %v", m, err)
	}
	for _, bad := range []string{"judges", "=judge", "x=bailiff"} {
		if _, err := signin.ParseRoleMap(bad); err == nil {
			t.Errorf("role map %q accepted", bad)
		}
	}
}

// TestAuthTimeAndReauthentication: Finish reports the ID token's auth_time
// (or, when the provider omits it, the moment of the exchange, marked as
// such); a re-authentication asks the provider for max_age=0 and
// prompt=login; Reauthenticated accepts only an auth_time no older than
// the request — not a provider that answers from an older session, nor
// one that omits auth_time.
func TestAuthTimeAndReauthentication(t *testing.T) {
	r := newRig(t, nil)
	r.op.AddUser(oidctest.User{Username: "mari", Password: "pw", GivenName: "Mari", Family: "Maasikas", Groups: []string{"judges"}})
	ctx := context.Background()
	finish := func(a signin.Attempt) signin.Account {
		t.Helper()
		code, _ := r.signIn(t, a, "mari", "pw")
		acct, _, err := r.rp.Finish(ctx, code, a)
		if err != nil {
			t.Fatal(err)
		}
		return acct
	}

	// A sign-in made an hour ago at the provider keeps its auth_time.
	long := time.Now().Add(-time.Hour).Truncate(time.Second)
	r.op.ReportAuthTime(long)
	acct := finish(signin.NewAttempt())
	if !acct.AuthTimeClaimed || !acct.AuthTime.Equal(long) {
		t.Fatalf("auth_time %v (claimed %v), want %v", acct.AuthTime, acct.AuthTimeClaimed, long)
	}
	if maxAge, prompt := r.op.LastRequest(); maxAge != "" || prompt != "" {
		t.Fatalf("a plain sign-in asked for max_age %q prompt %q", maxAge, prompt)
	}

	// A re-authentication asks for a fresh one …
	started := time.Now()
	re := signin.NewAttempt()
	re.Reauthenticate = true
	// … and a provider that ignores it answers with the old auth_time.
	acct = finish(re)
	if maxAge, prompt := r.op.LastRequest(); maxAge != "0" || prompt != "login" {
		t.Fatalf("a re-authentication asked for max_age %q prompt %q, want 0 and login", maxAge, prompt)
	}
	if err := signin.Reauthenticated(acct, started); wireCode(err) != signin.CodeReauthStale {
		t.Fatalf("an auth_time older than the request: %v", err)
	}
	// A provider that omits auth_time confirms nothing, although the
	// account's AuthTime falls back to the exchange (after the request).
	r.op.ReportAuthTime(time.Time{})
	r.op.OmitAuthTime(true)
	re = signin.NewAttempt()
	re.Reauthenticate = true
	acct = finish(re)
	if acct.AuthTimeClaimed || acct.AuthTime.Before(started) {
		t.Fatalf("without auth_time: %v (claimed %v)", acct.AuthTime, acct.AuthTimeClaimed)
	}
	if err := signin.Reauthenticated(acct, started); wireCode(err) != signin.CodeReauthStale {
		t.Fatalf("a re-authentication without auth_time: %v", err)
	}
	// An honest provider authenticates again: accepted.
	r.op.OmitAuthTime(false)
	re = signin.NewAttempt()
	re.Reauthenticate = true
	acct = finish(re)
	if err := signin.Reauthenticated(acct, started); err != nil || !acct.AuthTimeClaimed {
		t.Fatalf("a fresh re-authentication: %v (%+v)", err, acct)
	}
}

// wireCode is the code a caller would be sent for err ("" for none).
func wireCode(err error) string {
	if err == nil {
		return ""
	}
	code, _, _ := fault.Describe(err)
	return code
}
