package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signin"
)

// DevSignIn says who may use the development sign-in, which exists only
// while no OpenID provider is configured: anyone it lets in may sign in as
// any staff member, or create one.
type DevSignIn string

// Development sign-in modes (--dev-sign-in).
const (
	DevSignInLoopback DevSignIn = "loopback" // clients on this machine only (the default)
	DevSignInAnywhere DevSignIn = "anywhere" // any client: a demonstration server on a trusted network
	DevSignInOff      DevSignIn = "off"      // never: the bootstrap link and API tokens only
)

// Bootstrap is the one-time secret of the link that makes the first
// administrator of a server that has no staff at all. It lives in memory
// (a restart prints a new one) and is spent by its first use.
type Bootstrap struct {
	mu    sync.Mutex
	token string
}

// NewBootstrap returns a bootstrap secret; its link is
// <public-url>/#/bootstrap/<token>.
func NewBootstrap() (*Bootstrap, string) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return &Bootstrap{token: tok}, tok
}

// valid reports whether tok is the bootstrap secret, still unspent.
func (b *Bootstrap) valid(tok string) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.token != "" && subtle.ConstantTimeCompare([]byte(b.token), []byte(tok)) == 1
}

// spend makes the secret useless.
func (b *Bootstrap) spend() {
	if b != nil {
		b.mu.Lock()
		b.token = ""
		b.mu.Unlock()
	}
}

func (a *API) signInRoutes() {
	tags := []string{"sign-in"}
	a.route("GET /api/v1/auth/config", Op{Summary: "How staff sign in here: the OpenID provider, or the development sign-in (with the staff to choose from), and whether the bootstrap link is open",
		Tags: tags, Response: SignInConfig{}, Errors: []int{429, 503}}, a.h(a.handleSignInConfig))
	a.route("GET /auth/login", Op{Summary: "Start an OpenID sign-in: redirects to the provider (Authorization Code with PKCE)", Tags: tags,
		Query:  []Param{{Name: "return", Description: "console path to land on afterwards, e.g. /#/session/…"}, {Name: "bootstrap", Description: "the bootstrap link's secret: become the first administrator"}},
		Status: http.StatusFound, Errors: []int{404, 429}}, a.h(a.handleLogin))
	a.route("GET /auth/callback", Op{Summary: "The OpenID provider's answer (the redirect URI): checks state, nonce, PKCE and the ID token, signs in, redirects to the console",
		Tags: tags, Query: []Param{{Name: "code"}, {Name: "state"}, {Name: "error"}}, Status: http.StatusSeeOther}, a.handleCallback)
	a.route("POST /api/v1/auth/logout", Op{Summary: "Sign the console out; answers the provider's logout URL when it offers one (RP-initiated logout)",
		Tags: tags, Auth: "cookie", Response: logoutResponse{}, Errors: []int{401, 403, 429}}, a.auth(a.handleLogout))
	a.route("POST /api/v1/auth/reauthenticate", Op{Summary: "Confirm it is you before signing: answers the provider's URL that authenticates this console sign-in's person again (max_age=0, prompt=login) and comes back to the given console path",
		Tags: tags, Auth: "cookie", Request: reauthRequest{}, Response: reauthResponse{}, Errors: []int{400, 401, 403, 404, 429, 503}}, a.auth(a.handleReauthenticate))
	a.route("POST /api/v1/auth/development", Op{Summary: "Development sign-in, only while no OpenID provider is configured: as a staff member (staff_id), or a new one (name, role)",
		Tags: tags, Request: devSignInRequest{}, Response: sessions.Staff{}, Errors: []int{400, 403, 404, 409, 422, 429}}, a.h(a.handleDevSignIn))
	a.route("POST /api/v1/auth/bootstrap", Op{Summary: "Become the first administrator with the bootstrap link (development sign-in; with a provider, GET /auth/login?bootstrap=…)",
		Tags: tags, Request: bootstrapRequest{}, Response: sessions.Staff{}, Errors: []int{400, 403, 409, 422, 429}}, a.h(a.handleBootstrap))
}

// SignInConfig tells the console which sign-in to show.
type SignInConfig struct {
	// Provider is true when staff sign in with the OpenID provider.
	Provider bool `json:"provider"`
	// Development is true when this client may use the development
	// sign-in; Staff then lists whom it may sign in as.
	Development bool                   `json:"development"`
	Staff       []sessions.StaffMember `json:"staff,omitempty"`
	// Bootstrap is true while the server has no staff and the bootstrap
	// link (printed in the log) is open.
	Bootstrap bool `json:"bootstrap"`
}

func (a *API) handleSignInConfig(w http.ResponseWriter, r *http.Request) error {
	cfg := SignInConfig{Provider: a.signIn != nil, Development: a.devAllowed(r) == nil}
	n, err := a.sessions.CountStaff(r.Context())
	if err != nil {
		return err
	}
	cfg.Bootstrap = n == 0 && a.bootstrap.open()
	if cfg.Development {
		all, err := a.sessions.ListStaff(r.Context())
		if err != nil {
			return err
		}
		cfg.Staff = []sessions.StaffMember{}
		for _, st := range all {
			if !st.Revoked {
				cfg.Staff = append(cfg.Staff, sessions.StaffMember{ID: st.ID, Name: st.Name, Role: st.Role})
			}
		}
	}
	WriteJSON(w, http.StatusOK, cfg)
	return nil
}

// open reports whether the secret is still unspent.
func (b *Bootstrap) open() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.token != ""
}

// devAllowed says why this client may not use the development sign-in.
func (a *API) devAllowed(r *http.Request) error {
	switch {
	case a.signIn != nil:
		return fault.New(fault.Forbidden, "forbidden: an OpenID provider is configured; sign in with it")
	case a.devSignIn == DevSignInOff:
		return fault.New(fault.Forbidden, "forbidden: the development sign-in is off on this server")
	case a.devSignIn == DevSignInAnywhere:
		return nil
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fault.New(fault.Forbidden, "forbidden: the development sign-in answers clients on this machine only (--dev-sign-in anywhere lifts that)")
	}
	return nil
}

// safeReturn keeps a post-sign-in destination on this site: a path, never
// another host ("//evil", "/\\evil").
func safeReturn(s string) string {
	if s == "" || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") || len(s) > 500 {
		return "/"
	}
	return s
}

func (a *API) loginCookieName() string {
	if a.secureCookies {
		return secureLoginCookie
	}
	return loginCookie
}

// setCookie sets one of Chamber's cookies: HttpOnly, Path=/, Secure over
// https, with the given SameSite.
func (a *API) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, same http.SameSite) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.secureCookies, SameSite: same}
	switch {
	case value == "":
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

func (a *API) handleLogin(w http.ResponseWriter, r *http.Request) error {
	if a.signIn == nil {
		return fault.New(fault.NotFound, "no OpenID provider is configured on this server")
	}
	addr := a.clients.Of(r)
	if blocked, wait := a.signIns.Blocked(addr); blocked {
		return tooMany(wait, "sign-ins")
	}
	a.signIns.Failed(addr) // every sign-in started spends from the budget
	boot := r.URL.Query().Get("bootstrap")
	if boot != "" && !a.bootstrap.valid(boot) {
		http.Redirect(w, r, "/?sign_in_error="+signInBootstrapDone, http.StatusSeeOther)
		return nil
	}
	att := signin.NewAttempt()
	target, err := a.signIn.AuthURL(r.Context(), att)
	if fault.KindOf(err) == fault.Unavailable {
		// A person clicked "Sign in": the console words the outage.
		http.Redirect(w, r, "/?sign_in_error="+signInUnavailable, http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	if err := a.sessions.SaveSignInAttempt(r.Context(), sessions.SignInAttempt{State: att.State, Nonce: att.Nonce, Verifier: att.Verifier,
		ReturnTo: safeReturn(r.URL.Query().Get("return")), Bootstrap: boot != ""}); err != nil {
		return err
	}
	// The state, in a cookie, binds the provider's answer to this browser:
	// Lax, so that it comes back with the provider's top-level redirect.
	a.setCookie(w, a.loginCookieName(), att.State, 10*time.Minute, http.SameSiteLaxMode)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

type reauthRequest struct {
	// Return is the console path to come back to (a same-origin path such
	// as /#/session/…; anything else means /).
	Return string `json:"return"`
}

type reauthResponse struct {
	// URL is the provider's authorization endpoint to send the browser to.
	URL string `json:"url"`
}

// handleReauthenticate starts a re-authentication of the console sign-in
// that makes the request: like /auth/login, but the attempt names this
// browser session, and the provider is asked to authenticate afresh. A
// POST with the CSRF header and the Strict cookie, so that no other site
// can start one; its state is bound to this browser by the Lax sign-in
// cookie, like a sign-in's.
func (a *API) handleReauthenticate(w http.ResponseWriter, r *http.Request) error {
	if a.signIn == nil {
		return fault.New(fault.NotFound, "no OpenID provider is configured on this server")
	}
	b, ok := browserSession(r.Context())
	if !ok {
		return fault.New(fault.Forbidden, "forbidden: re-authentication confirms a console sign-in")
	}
	if b.Method == sessions.SignInDevelopment {
		return fault.New(fault.Forbidden, "forbidden: a development sign-in has no provider to authenticate with again")
	}
	var in reauthRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	addr := a.clients.Of(r)
	if blocked, wait := a.signIns.Blocked(addr); blocked {
		return tooMany(wait, "sign-ins")
	}
	a.signIns.Failed(addr)
	att := signin.NewAttempt()
	att.Reauthenticate = true
	target, err := a.signIn.AuthURL(r.Context(), att)
	if err != nil {
		return err
	}
	if err := a.sessions.SaveSignInAttempt(r.Context(), sessions.SignInAttempt{State: att.State, Nonce: att.Nonce, Verifier: att.Verifier,
		ReturnTo: safeReturn(in.Return), Reauth: b.ID}); err != nil {
		return err
	}
	a.setCookie(w, a.loginCookieName(), att.State, 10*time.Minute, http.SameSiteLaxMode)
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, reauthResponse{URL: target})
	return nil
}

// finishReauth records the provider's answer to a re-authentication on
// the browser session that asked for it. The ID token must carry an
// auth_time no older than the request (the provider really authenticated
// again) and the same person must come back: another account ends the
// browser session, whose person let someone else authenticate in their
// place.
func (a *API) finishReauth(r *http.Request, att sessions.SignInAttempt, acct signin.Account, toks signin.Tokens) string {
	ctx := r.Context()
	if err := signin.Reauthenticated(acct, att.StartedAt); err != nil {
		a.log.Warn("a re-authentication was refused", "browser_session", att.Reauth, "err", err)
		return signin.CodeReauthStale
	}
	err := a.sessions.Reauthenticated(ctx, att.Reauth, sessions.Reauthentication{Subject: acct.Subject, AuthTime: acct.AuthTime,
		IDToken: toks.IDToken, RefreshToken: toks.RefreshToken})
	switch {
	case errors.Is(err, sessions.ErrAnotherPerson):
		a.log.Warn("a re-authentication came back as another account: the console sign-in is ended", "browser_session", att.Reauth, "subject", acct.Subject)
		if _, err := a.sessions.EndBrowserSession(ctx, att.Reauth, "reauthenticated_as_another"); err != nil {
			a.log.Error("ending a browser session re-authenticated as another account", "browser_session", att.Reauth, "err", err)
		}
		return signInOtherAccount
	case err != nil:
		return signInCode(err)
	}
	return ""
}

// Sign-in failures reach the console as a code in the address, which it
// words: never the provider's text.
const (
	signInState         = "state"
	signInExpired       = "expired"
	signInRefused       = "refused"
	signInDenied        = "denied"
	signInNotKnown      = "not_provisioned"
	signInNoRole        = "no_role"
	signInDisabled      = "disabled"
	signInUnavailable   = "unavailable"
	signInBootstrapDone = "bootstrap_used"
	signInOtherAccount  = "reauthentication_other_account"
)

func (a *API) handleCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	to, code := a.finishSignIn(w, r)
	a.setCookie(w, a.loginCookieName(), "", 0, http.SameSiteLaxMode)
	if code != "" {
		a.log.Warn("sign-in refused", "reason", code)
		to = withSignInError(to, code)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// finishSignIn checks the provider's answer and signs the browser in; it
// returns where to go, or why not.
func (a *API) finishSignIn(w http.ResponseWriter, r *http.Request) (string, string) {
	if a.signIn == nil {
		return "", signInRefused
	}
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(a.loginCookieName())
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		return "", signInState
	}
	att, err := a.sessions.TakeSignInAttempt(r.Context(), state)
	switch {
	case errors.Is(err, fault.Expired):
		return "", signInExpired
	case err != nil:
		return "", signInState
	}
	// A refused re-authentication goes back to where it started (the
	// console sign-in is still there, unless it was ended); a sign-in's
	// refusal, to the sign-in page.
	back := ""
	if att.Reauth != uuid.Nil {
		back = att.ReturnTo
	}
	if q.Get("error") != "" {
		return back, signInDenied
	}
	acct, toks, err := a.signIn.Finish(r.Context(), q.Get("code"), signin.Attempt{State: state, Nonce: att.Nonce, Verifier: att.Verifier})
	if err != nil {
		a.log.Warn("the provider's answer was refused", "err", err)
		if fault.KindOf(err) == fault.Unavailable {
			return back, signInUnavailable
		}
		return back, signInRefused
	}
	if att.Reauth != uuid.Nil {
		if code := a.finishReauth(r, att, acct, toks); code != "" {
			if code == signInOtherAccount {
				back = ""
			}
			return back, code
		}
		return att.ReturnTo, ""
	}
	source := sessions.AuthTimeClaim
	if !acct.AuthTimeClaimed {
		source = sessions.AuthTimeExchange
	}
	in := sessions.SignIn{Method: sessions.SignInOpenID, IDToken: toks.IDToken, RefreshToken: toks.RefreshToken,
		AuthTime: acct.AuthTime, AuthTimeSource: source}
	var cookie string
	if att.Bootstrap {
		_, _, cookie, err = a.sessions.Bootstrap(r.Context(), sessions.NewStaff{Name: acct.Name, ExternalSubject: acct.Subject}, in)
		if errors.Is(err, fault.Conflict) {
			return "", signInBootstrapDone
		}
		if err == nil {
			a.bootstrap.spend()
		}
	} else {
		var st sessions.Staff
		if st, err = a.staffFor(r, acct); err != nil {
			return "", signInCode(err)
		}
		_, cookie, err = a.sessions.StartBrowserSession(r.Context(), st.ID, in)
	}
	if err != nil {
		return "", signInCode(err)
	}
	a.setCookie(w, a.sessionCookieName(), cookie, 0, http.SameSiteStrictMode)
	return att.ReturnTo, ""
}

// withSignInError adds a refusal's code to the console address to — "/"
// when empty — before its fragment, where the console reads it.
func withSignInError(to, code string) string {
	path, frag, hasFrag := strings.Cut(safeReturn(to), "#")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	out := path + sep + "sign_in_error=" + url.QueryEscape(code)
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// errNotKnown and errNoRole say why an account of the provider has no
// staff member here.
var (
	errNotKnown = errors.New("this account is not linked to a staff member")
	errNoRole   = errors.New("the provider's role claim gives this account no staff role")
)

func signInCode(err error) string {
	switch {
	case errors.Is(err, errNotKnown):
		return signInNotKnown
	case errors.Is(err, errNoRole):
		return signInNoRole
	case errors.Is(err, fault.Revoked):
		return signInDisabled
	case fault.KindOf(err) == fault.Unavailable:
		return signInUnavailable
	}
	return signInRefused
}

// staffFor finds — or, from the role claim, provisions — the staff member
// of a provider account, and keeps their role in step with the claim.
func (a *API) staffFor(r *http.Request, acct signin.Account) (sessions.Staff, error) {
	ctx := r.Context()
	st, err := a.sessions.StaffBySubject(ctx, acct.Subject)
	switch {
	case errors.Is(err, fault.NotFound):
		if !acct.RoleClaimed {
			a.log.Warn("sign-in by an account linked to no staff member", "subject", acct.Subject)
			return sessions.Staff{}, errNotKnown
		}
		if acct.Role == "" {
			return sessions.Staff{}, errNoRole
		}
		return a.sessions.AddStaff(ctx, "openid", sessions.NewStaff{Name: acct.Name, Role: acct.Role, ExternalSubject: acct.Subject})
	case err != nil:
		return sessions.Staff{}, err
	case st.Revoked:
		return sessions.Staff{}, fault.Revoked
	case acct.RoleClaimed && acct.Role == "":
		return sessions.Staff{}, errNoRole
	case acct.RoleClaimed && acct.Role != st.Role:
		if err := a.sessions.SetStaffRole(ctx, "openid", st.ID, acct.Role); err != nil {
			return sessions.Staff{}, err
		}
		st.Role = acct.Role
	}
	return st, nil
}

type logoutResponse struct {
	// LogoutURL is the provider's logout page to send the browser to
	// (RP-initiated logout), or "" when there is none.
	LogoutURL string `json:"logout_url"`
}

func (a *API) handleLogout(w http.ResponseWriter, r *http.Request) error {
	b, ok := browserSession(r.Context())
	if !ok {
		return fault.New(fault.Forbidden, "forbidden: signing out ends a console sign-in; revoke an API token instead")
	}
	ended, err := a.sessions.EndBrowserSession(r.Context(), b.ID, "signed_out")
	if err != nil {
		return err
	}
	a.setCookie(w, a.sessionCookieName(), "", 0, http.SameSiteStrictMode)
	out := logoutResponse{}
	if a.signIn != nil && ended.Method == sessions.SignInOpenID {
		out.LogoutURL = a.signIn.LogoutURL(r.Context(), ended.IDToken)
	}
	WriteJSON(w, http.StatusOK, out)
	return nil
}

type devSignInRequest struct {
	StaffID *uuid.UUID  `json:"staff_id,omitempty"`
	Name    string      `json:"name,omitempty"`
	Role    access.Role `json:"role,omitempty"`
}

func (a *API) handleDevSignIn(w http.ResponseWriter, r *http.Request) error {
	if err := a.devAllowed(r); err != nil {
		return err
	}
	if err := checkSameOrigin(r); err != nil {
		return err
	}
	var in devSignInRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	var st sessions.Staff
	var err error
	if in.StaffID != nil {
		if st, err = a.sessions.GetStaff(r.Context(), *in.StaffID); err != nil {
			return err
		}
	} else if st, err = a.sessions.AddStaff(r.Context(), "development", sessions.NewStaff{Name: in.Name, Role: in.Role}); err != nil {
		return err
	}
	_, cookie, err := a.sessions.StartBrowserSession(r.Context(), st.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
	if err != nil {
		return err
	}
	a.log.Warn("DEVELOPMENT SIGN-IN: no identity provider vouched for this staff member", "staff", st.ID, "name", st.Name, "role", st.Role)
	a.setCookie(w, a.sessionCookieName(), cookie, 0, http.SameSiteStrictMode)
	WriteJSON(w, http.StatusOK, st)
	return nil
}

type bootstrapRequest struct {
	Token string `json:"token"`
	Name  string `json:"name"`
}

func (a *API) handleBootstrap(w http.ResponseWriter, r *http.Request) error {
	if err := checkSameOrigin(r); err != nil {
		return err
	}
	var in bootstrapRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	addr := a.clients.Of(r)
	err := a.authFailures.Guard(addr, "failed authentications", func() error {
		if !a.bootstrap.valid(in.Token) {
			return fault.New(fault.Unauthenticated, "this bootstrap link is not valid (it works once, on a server without staff, until a restart)")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if a.signIn != nil {
		return fault.New(fault.Conflict, "an OpenID provider is configured: open /auth/login?bootstrap=… to become the first administrator with your account")
	}
	st, _, cookie, err := a.sessions.Bootstrap(r.Context(), sessions.NewStaff{Name: in.Name}, sessions.SignIn{Method: sessions.SignInBootstrap})
	if err != nil {
		return err
	}
	a.bootstrap.spend()
	a.setCookie(w, a.sessionCookieName(), cookie, 0, http.SameSiteStrictMode)
	WriteJSON(w, http.StatusOK, st)
	return nil
}
