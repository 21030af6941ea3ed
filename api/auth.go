package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
)

// How a request authenticates:
//
//   - Authorization: Bearer with an API token (cha_…, automation) or an
//     invitation token (chi_…, a participant's browser or client). A
//     request that comes from a browser page (it carries Sec-Fetch-Site)
//     may not use an API token: the console signs in with a cookie.
//   - Without an Authorization header, the console's session cookie. A
//     cookie-authenticated request must come from Chamber's own pages:
//     Sec-Fetch-Site, when sent, is same-origin, and a request that is not
//     GET or HEAD carries the X-Chamber-CSRF header (which no other site can
//     add without a CORS preflight Chamber never grants) and, when sent, an
//     Origin of this host. The cookie itself is SameSite=Strict.
//
// Failures are counted per client address (FailureLimiter.Guard).

// CSRFHeader must accompany every state-changing request authenticated by
// the console's cookie; its value does not matter.
const CSRFHeader = "X-Chamber-CSRF"

// Cookie names: the session cookie gets the __Host- prefix over https, so
// that no subdomain or plain-http page can set it.
const (
	sessionCookie       = "chamber_session"
	secureSessionCookie = "__Host-chamber_session"
	loginCookie         = "chamber_sign_in"
	secureLoginCookie   = "__Host-chamber_sign_in"
)

func (a *API) sessionCookieName() string {
	if a.secureCookies {
		return secureSessionCookie
	}
	return sessionCookie
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

type principalKey struct{}

// principal returns the caller authenticated by withAuth.
func principal(ctx context.Context) sessions.Principal {
	p, _ := ctx.Value(principalKey{}).(sessions.Principal)
	return p
}

type browserKey struct{}

// browserSession returns the console session that authenticated the
// request, if a cookie did.
func browserSession(ctx context.Context) (sessions.BrowserSession, bool) {
	b, ok := ctx.Value(browserKey{}).(sessions.BrowserSession)
	return b, ok
}

// handler is an HTTP handler that reports failure by returning an error,
// which fail turns into the right JSON response.
type handler func(w http.ResponseWriter, r *http.Request) error

// h adapts a handler to net/http.
func (a *API) h(f handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			a.fail(w, r, err)
		}
	}
}

// auth requires a valid credential, puts the principal in the request
// context and runs f.
func (a *API) auth(f handler) http.HandlerFunc {
	return a.withAuth(a.h(f))
}

// withAuth authenticates the request (bearer token or console cookie),
// checks an API token's scope for the route, and puts the principal in the
// request context.
func (a *API) withAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			p       sessions.Principal
			browser *sessions.BrowserSession
		)
		var err error
		if a.presentsCredential(r) {
			err = a.authFailures.Guard(a.clients.Of(r), "failed authentications", func() error {
				var err error
				p, browser, err = a.authenticate(r)
				return err
			})
		} else {
			// Nothing was guessed: a console opened before signing in asks
			// /me without a cookie, and an office behind one address must
			// not spend its failure budget (and see 429 instead of the
			// sign-in) by opening it.
			_, _, err = a.authenticate(r)
		}
		if err != nil {
			if k := fault.KindOf(err); k == fault.Unauthenticated || k == fault.Expired || k == fault.Revoked {
				w.Header().Set("WWW-Authenticate", `Bearer realm="chamber"`)
				// A sign-in cookie that no longer signs in is dropped, so the
				// browser stops presenting it: every reload would spend the
				// address's failure budget, until its user saw 429 instead
				// of the sign-in. This answer still says why (expired, ended).
				if bearer(r) == "" && a.presentsCredential(r) {
					a.setCookie(w, a.sessionCookieName(), "", 0, http.SameSiteStrictMode)
				}
			}
			a.fail(w, r, err)
			return
		}
		if err := checkScope(r, p); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		if browser != nil {
			ctx = context.WithValue(ctx, browserKey{}, *browser)
		}
		h(w, r.WithContext(ctx))
	}
}

// presentsCredential reports whether the request carries a bearer token
// or the console's sign-in cookie, right or wrong.
func (a *API) presentsCredential(r *http.Request) bool {
	if bearer(r) != "" {
		return true
	}
	c, err := r.Cookie(a.sessionCookieName())
	return err == nil && c.Value != ""
}

// authenticate resolves the request's credential.
func (a *API) authenticate(r *http.Request) (sessions.Principal, *sessions.BrowserSession, error) {
	if token := bearer(r); token != "" {
		p, err := a.sessions.Authenticate(r.Context(), token)
		if err != nil {
			return p, nil, err
		}
		if p.Credential.Kind == sessions.ByAPIToken && r.Header.Get("Sec-Fetch-Site") != "" {
			return sessions.Principal{}, nil, fault.New(fault.Unauthenticated,
				"API tokens are for automation, not browsers: sign in to the console instead")
		}
		return p, nil, nil
	}
	c, err := r.Cookie(a.sessionCookieName())
	if err != nil || c.Value == "" {
		return sessions.Principal{}, nil, fault.New(fault.Unauthenticated, "sign in, or send an Authorization: Bearer <token> header")
	}
	if err := checkSameOrigin(r); err != nil {
		return sessions.Principal{}, nil, err
	}
	p, b, err := a.sessions.AuthenticateBrowser(r.Context(), c.Value)
	if err != nil {
		return p, nil, err
	}
	return p, &b, nil
}

// checkSameOrigin is the CSRF defence of cookie-authenticated requests.
func checkSameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return csrf("a cross-site request cannot use the console's sign-in")
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if r.Header.Get(CSRFHeader) == "" {
		return csrf("a console request must carry the " + CSRFHeader + " header")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || subtle.ConstantTimeCompare([]byte(strings.ToLower(u.Host)), []byte(strings.ToLower(r.Host))) != 1 {
			return csrf("a request from another origin cannot use the console's sign-in")
		}
	}
	return nil
}

func csrf(msg string) error {
	return &fault.Error{Kind: fault.Forbidden, Code: "csrf", Message: msg}
}

// scopeFor is the API-token scope a route needs; "" means any scope.
func scopeFor(r *http.Request) string {
	p := r.URL.Path
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case p == "/api/v1/me":
		return ""
	case strings.HasPrefix(p, "/api/v1/staff"), strings.HasPrefix(p, "/api/v1/tokens"):
		return sessions.ScopeStaffAdmin
	case strings.HasPrefix(p, "/api/v1/register"):
		if read {
			return sessions.ScopeRegisterRead
		}
		return sessions.ScopeRegisterWrite
	case read:
		return sessions.ScopeSessionsRead
	}
	return sessions.ScopeSessionsWrite
}

// checkScope refuses an API token whose scopes do not cover the route.
func checkScope(r *http.Request, p sessions.Principal) error {
	if p.Credential.Kind != sessions.ByAPIToken {
		return nil
	}
	if strings.HasPrefix(r.URL.Path, "/api/v1/auth/") {
		return fault.New(fault.Forbidden, "forbidden: signing in and out is for the console, not API tokens")
	}
	if want := scopeFor(r); want != "" && !sessions.HasScope(p.Credential.Scopes, want) {
		return &fault.Error{Kind: fault.Forbidden, Code: "insufficient_scope",
			Message: "forbidden: this API token lacks the scope " + want}
	}
	return nil
}

// requireAdmin refuses anyone but an admin staff member.
func requireAdmin(p sessions.Principal) error {
	if p.Staff == nil || p.Staff.Role != access.Admin {
		return &access.ForbiddenError{Role: roleOfPrincipal(p), Action: access.ManageStaff}
	}
	return nil
}
