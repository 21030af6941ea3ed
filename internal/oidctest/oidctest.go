// Package oidctest runs a real OpenID provider for tests: zitadel/oidc's
// pkg/op over an in-memory storage adapted from its example server, with a
// login page (user name and password), refresh tokens, end_session, and a
// groups claim. A test can disable an account (its sign-in and its refresh
// tokens are refused from then on) and make the provider issue ID tokens
// for another audience.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account of the provider.
type User struct {
	Username, Password string
	GivenName, Family  string
	Email              string
	// Groups is sent as the "groups" claim.
	Groups []string
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:port).
	Issuer string
	srv    *httptest.Server
	store  *storage
}

// New starts a provider on a loopback port; it stops when the test ends.
func New(t testing.TB) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st := &storage{
		users: map[string]*account{}, clients: map[string]*client{},
		requests: map[string]*authRequest{}, codes: map[string]string{},
		access: map[string]*token{}, refresh: map[string]*token{},
		key: signingKey{id: uuid.NewString(), key: key},
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                sha256.Sum256([]byte("oidctest")),
		DefaultLogoutRedirectURI: "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	callback := op.AuthCallbackURL(provider)
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		renderLogin(w, r.FormValue("authRequestID"), "")
	})
	mux.Handle("POST /login", interceptor.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := st.checkPassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			renderLogin(w, id, err.Error())
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.HandleFunc("GET /logged-out", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("signed out of the test provider"))
	})
	mux.Handle("POST /oauth/token", st.readdress(provider))
	mux.Handle("/", provider)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &Provider{Issuer: issuer, srv: srv, store: st}
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider — sign in</title></head>
<body><h1>Test provider</h1>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label>User name <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
{{if .Error}}<p id="login-error">{{.Error}}</p>{{end}}
<button id="login-submit" type="submit">Sign in</button>
</form></body></html>`))

func renderLogin(w http.ResponseWriter, id, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	loginPage.Execute(w, struct{ ID, Error string }{id, problem})
}

// AddClient registers a confidential web client.
func (p *Provider) AddClient(id, secret string, redirectURIs ...string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.clients[id] = &client{id: id, secret: secret, redirects: redirectURIs}
}

// AddUser adds an account and returns its subject.
func (p *Provider) AddUser(u User) string {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	a := &account{User: u, subject: "sub-" + uuid.NewString()[:8]}
	p.store.users[a.subject] = a
	return a.subject
}

// Disable refuses the account's sign-in, refresh tokens and userinfo from
// now on, as an administrator disabling it in the provider would.
func (p *Provider) Disable(username string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	for _, a := range p.store.users {
		if a.Username == username {
			a.disabled = true
		}
	}
}

// IssueForAudience makes the token endpoint answer, from now on, with an
// ID token for another client: aud and azp name aud instead of the client
// that asked, signed with the provider's own key ("" restores honest
// answers). An honest provider never does this; a relying party must
// refuse such a token all the same.
func (p *Provider) IssueForAudience(aud string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.audience = aud
}

// ReportAuthTime makes every sign-in from now on report auth_time t
// instead of the moment the password was checked: a sign-in made long ago
// (t in the past), or a provider that ignores max_age and prompt=login and
// answers from an older session of its own. The zero time restores honest
// answers.
func (p *Provider) ReportAuthTime(t time.Time) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.fixedAuth = t
}

// OmitAuthTime makes the ID tokens of sign-ins from now on carry no
// auth_time claim (omit false restores it).
func (p *Provider) OmitAuthTime(omit bool) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.omitAuth = omit
}

// LastRequest reports the max_age ("" when absent) and prompt of the
// newest authorization request.
func (p *Provider) LastRequest() (maxAge, prompt string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.lastMaxAge, p.store.lastPrompt
}

// Refreshes counts the refresh-token grants answered (successfully or not).
func (p *Provider) Refreshes() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.refreshes
}

type account struct {
	User
	subject  string
	disabled bool
}

type storage struct {
	mu        sync.Mutex
	users     map[string]*account // by subject
	clients   map[string]*client
	requests  map[string]*authRequest
	codes     map[string]string // code → request ID
	access    map[string]*token // by access token ID
	refresh   map[string]*token // by refresh token
	key       signingKey
	audience  string
	refreshes int
	// fixedAuth and omitAuth change the auth_time reported (ReportAuthTime,
	// OmitAuthTime); lastMaxAge and lastPrompt are the newest request's.
	fixedAuth              time.Time
	omitAuth               bool
	lastMaxAge, lastPrompt string
}

type token struct {
	id, refresh, subject, clientID string
	audience, scopes               []string
	authTime                       time.Time
	expires                        time.Time
}

func (s *storage) checkPassword(username, password, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[requestID]
	if !ok {
		return fmt.Errorf("the sign-in request has expired; start again")
	}
	for _, a := range s.users {
		if a.Username == username && a.Password == password {
			if a.disabled {
				return fmt.Errorf("this account is disabled")
			}
			req.subject, req.done, req.authTime = a.subject, true, time.Now()
			if !s.fixedAuth.IsZero() {
				req.authTime = s.fixedAuth
			}
			if s.omitAuth {
				req.authTime = time.Time{} // zitadel/oidc omits a zero auth_time
			}
			return nil
		}
	}
	return fmt.Errorf("wrong user name or password")
}

// ——— op.AuthStorage ———

func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastMaxAge, s.lastPrompt = "", strings.Join(r.Prompt, " ")
	if r.MaxAge != nil {
		s.lastMaxAge = strconv.FormatUint(uint64(*r.MaxAge), 10)
	}
	if len(r.Prompt) == 1 && r.Prompt[0] == oidc.PromptNone {
		return nil, oidc.ErrLoginRequired()
	}
	req := &authRequest{id: uuid.NewString(), clientID: r.ClientID, redirect: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: r.Scopes, responseType: r.ResponseType, responseMode: r.ResponseMode}
	if r.CodeChallenge != "" {
		req.challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	s.requests[req.id] = req
	return req, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("request not found")
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("code invalid or expired")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) newAccess(clientID, refresh, subject string, audience, scopes []string, authTime time.Time) *token {
	t := &token{id: uuid.NewString(), refresh: refresh, subject: subject, clientID: clientID, audience: audience,
		scopes: scopes, authTime: authTime, expires: time.Now().Add(5 * time.Minute)}
	s.access[t.id] = t
	return t
}

func (s *storage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := ""
	if ar, ok := r.(*authRequest); ok {
		clientID = ar.clientID
	}
	t := s.newAccess(clientID, "", r.GetSubject(), r.GetAudience(), r.GetScopes(), time.Now())
	return t.id, t.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var clientID string
	var authTime time.Time
	switch req := r.(type) {
	case *authRequest:
		clientID, authTime = req.clientID, req.authTime
	case *refreshRequest:
		clientID, authTime = req.clientID, req.authTime
	}
	if current != "" {
		old, ok := s.refresh[current]
		if !ok {
			return "", "", time.Time{}, fmt.Errorf("invalid refresh token")
		}
		delete(s.refresh, current) // rotation: each refresh token is used once
		delete(s.access, old.id)
	}
	next := uuid.NewString()
	t := s.newAccess(clientID, next, r.GetSubject(), r.GetAudience(), r.GetScopes(), authTime)
	s.refresh[next] = t
	return t.id, next, t.expires, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, refresh string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	t, ok := s.refresh[refresh]
	if !ok {
		return nil, fmt.Errorf("invalid refresh_token")
	}
	if a := s.users[t.subject]; a == nil || a.disabled {
		return nil, fmt.Errorf("account disabled")
	}
	return &refreshRequest{token: *t, scopes: slices.Clone(t.scopes)}, nil
}

func (s *storage) TerminateSession(_ context.Context, subject, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.access {
		if t.subject == subject && t.clientID == clientID {
			delete(s.access, id)
			delete(s.refresh, t.refresh)
		}
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, refresh string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[refresh]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.subject, t.refresh, nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.refresh[tokenOrID]; ok {
		delete(s.refresh, tokenOrID)
		delete(s.access, t.id)
	}
	delete(s.access, tokenOrID)
	return nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return &s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{&publicKey{s.key}}, nil }

// ——— op.OPStorage ———

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("client not found")
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok && c.secret == secret {
		return nil
	}
	return fmt.Errorf("invalid client or secret")
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.userinfo(info, r.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return fmt.Errorf("token is invalid or has expired")
	}
	return s.userinfo(info, t.subject, t.scopes)
}

func (s *storage) userinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.users[subject]
	if a == nil || a.disabled {
		return fmt.Errorf("account not found or disabled")
	}
	info.Subject = a.subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.Name = a.GivenName + " " + a.Family
		info.GivenName, info.FamilyName, info.PreferredUsername = a.GivenName, a.Family, a.Username
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email, info.EmailVerified = a.Email, true
	}
	if len(a.Groups) > 0 {
		info.AppendClaims("groups", a.Groups)
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, in *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) || !slices.Contains(t.audience, clientID) {
		return fmt.Errorf("token is not active")
	}
	info := new(oidc.UserInfo)
	if err := s.userinfo(info, subject, t.scopes); err != nil {
		return err
	}
	in.SetUserInfo(info)
	in.Scope, in.ClientID, in.Expiration = t.scopes, t.clientID, oidc.FromTime(t.expires)
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, fmt.Errorf("no JWT profile keys")
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return sc != oidc.ScopeOpenID }), nil
}

func (s *storage) Health(context.Context) error { return nil }

// ——— the models ———

type authRequest struct {
	id, clientID, redirect, state, nonce, subject string
	scopes                                        []string
	responseType                                  oidc.ResponseType
	responseMode                                  oidc.ResponseMode
	challenge                                     *oidc.CodeChallenge
	done                                          bool
	authTime                                      time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirect }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

type refreshRequest struct {
	token
	scopes []string
}

func (r *refreshRequest) GetAMR() []string             { return []string{"pwd"} }
func (r *refreshRequest) GetAudience() []string        { return r.audience }
func (r *refreshRequest) GetAuthTime() time.Time       { return r.authTime }
func (r *refreshRequest) GetClientID() string          { return r.clientID }
func (r *refreshRequest) GetScopes() []string          { return r.scopes }
func (r *refreshRequest) GetSubject() string           { return r.subject }
func (r *refreshRequest) SetCurrentScopes(sc []string) { r.scopes = sc }

type client struct {
	id, secret string
	redirects  []string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return c.postLogout() }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) LoginURL(id string) string            { return "/login?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return true } // http redirect URIs on loopback
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// postLogout allows a return to the origin of each redirect URI.
func (c *client) postLogout() []string {
	var out []string
	for _, r := range c.redirects {
		if u, err := urlOrigin(r); err == nil {
			out = append(out, u+"/")
		}
	}
	return out
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k *publicKey) ID() string                         { return k.id }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }

func urlOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("not an absolute URL: %q", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// readdress passes token requests to the provider and, when the test asked
// for another audience, re-signs the answer's ID token for it.
func (s *storage) readdress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		aud := s.audience
		s.mu.Unlock()
		if aud == "" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err == nil {
			if raw, ok := body["id_token"].(string); ok {
				if forged, err := s.resign(raw, aud); err == nil {
					body["id_token"] = forged
				}
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		json.NewEncoder(w).Encode(body)
	})
}

// resign replaces an ID token's audience and signs it again with the
// provider's key.
func (s *storage) resign(raw, aud string) (string, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return "", err
	}
	claims["aud"], claims["azp"], claims["client_id"] = []string{aud}, aud, aud
	payload, _ := json.Marshal(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.key.id))
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
