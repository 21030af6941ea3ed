// Package signin is Chamber's OpenID Connect relying party: staff sign in
// to the console through the court's identity provider (Microsoft Entra ID,
// Keycloak, Estonia's TARA, …) with the Authorization Code flow and PKCE.
// It builds the redirect to the provider, checks its answer — state (by
// the caller), nonce, PKCE, and the ID token's signature, issuer, audience
// and expiry through github.com/coreos/go-oidc — maps the account to a
// staff role from a claim, asks the provider with the refresh token whether
// an account is still enabled, and builds the RP-initiated logout URL.
//
// Validation is go-oidc's and golang.org/x/oauth2's; this package adds no
// token validator of its own. It talks only to the configured issuer and
// the endpoints its discovery document names, with a timeout and a bound on
// every response body.
package signin

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
)

// Config configures the relying party. Each field is a flag of
// `chamber serve` (in brackets).
type Config struct {
	// Issuer is the provider's issuer URL [--oidc-issuer]; its discovery
	// document is read from Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID and ClientSecret are Chamber's registration at the provider
	// [--oidc-client-id, --oidc-client-secret]; Chamber is a confidential
	// client.
	ClientID, ClientSecret string
	// RedirectURL is where the provider sends the browser back:
	// <public-url>/auth/callback.
	RedirectURL string
	// PostLogoutURL is where the provider's logout returns: <public-url>/.
	PostLogoutURL string
	// Scopes requested [--oidc-scopes]; default openid profile email
	// offline_access (the refresh token revalidates the account).
	Scopes []string
	// RoleClaim names the claim that carries the account's groups or roles
	// [--oidc-role-claim], e.g. "groups", "roles" or, nested,
	// "realm_access.roles"; empty means roles come from staff provisioned in
	// advance and linked by their external subject.
	RoleClaim string
	// RoleMap maps values of RoleClaim to staff roles [--oidc-role-map
	// judges=judge,clerks=clerk]; the first match in this order wins. When
	// empty, a claim value that is a role's name is that role.
	RoleMap []RoleMapping
	// HTTPClient talks to the provider; nil means a client with a 15 s
	// timeout whose response bodies are bounded to 1 MiB.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// RoleMapping maps one value of the role claim to a staff role.
type RoleMapping struct {
	Value string
	Role  access.Role
}

// ParseRoleMap reads "judges=judge,clerks=clerk".
func ParseRoleMap(s string) ([]RoleMapping, error) {
	var out []RoleMapping
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		value, role, ok := strings.Cut(pair, "=")
		value, role = strings.TrimSpace(value), strings.TrimSpace(role)
		if !ok || value == "" || !access.Role(role).IsStaff() {
			return nil, fmt.Errorf("role map entry %q: want claim-value=role with a role of %v", pair, access.StaffRoles)
		}
		out = append(out, RoleMapping{Value: value, Role: access.Role(role)})
	}
	return out, nil
}

// DefaultScopes are requested unless Config.Scopes says otherwise.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}

// maxBody bounds every response from the provider.
const maxBody = 1 << 20

// Provider is the relying party of one OpenID provider.
type Provider struct {
	cfg  Config
	log  *slog.Logger
	seal cipher.AEAD

	mu        sync.Mutex
	provider  *oidc.Provider
	endSess   string
	lastError time.Time
}

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("signin: invalid config")

// New checks the configuration; the provider is contacted on first use
// (and again after a failure), so a provider that is down when Chamber
// starts delays sign-ins, not the start.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, fmt.Errorf("%w: issuer %q must be an http(s) URL", ErrConfig, cfg.Issuer)
	case cfg.ClientID == "":
		return nil, fmt.Errorf("%w: a client ID is required", ErrConfig)
	case cfg.ClientSecret == "":
		return nil, fmt.Errorf("%w: a client secret is required (Chamber is a confidential client)", ErrConfig)
	case cfg.RedirectURL == "":
		return nil, fmt.Errorf("%w: a redirect URL is required", ErrConfig)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second, Transport: boundedTransport{http.DefaultTransport}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Refresh tokens are stored sealed under a key derived from the
	// client secret: a copy of the database alone yields none.
	key := sha256.Sum256([]byte("chamber refresh-token seal\x00" + cfg.ClientID + "\x00" + cfg.ClientSecret))
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	return &Provider{cfg: cfg, log: cfg.Logger, seal: aead}, nil
}

// Issuer is the configured issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// discover reads the provider's discovery document once; after a failure
// it tries again, at most every few seconds.
func (p *Provider) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	if time.Since(p.lastError) < 5*time.Second {
		return nil, unavailable(errors.New("the identity provider did not answer a moment ago"))
	}
	dctx, cancel := context.WithTimeout(p.withClient(ctx), 15*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(dctx, p.cfg.Issuer)
	if err != nil {
		p.lastError = time.Now()
		p.log.Error("OpenID provider discovery failed", "issuer", p.cfg.Issuer, "err", err)
		return nil, unavailable(err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = prov.Claims(&extra) // the discovery document already parsed
	p.provider, p.endSess = prov, extra.EndSession
	p.log.Info("OpenID provider ready", "issuer", p.cfg.Issuer, "logout", p.endSess != "")
	return prov, nil
}

// withClient makes ctx carry the provider's HTTP client.
func (p *Provider) withClient(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	return context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient)
}

func (p *Provider) oauth(prov *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: p.cfg.RedirectURL, Scopes: p.cfg.Scopes}
}

func unavailable(err error) error {
	return &fault.Error{Kind: fault.Unavailable, Message: "the identity provider cannot be reached; retry in a moment",
		RetryAfter: 5 * time.Second, Err: err}
}

// refused is a sign-in the provider's answer does not allow.
func refused(format string, args ...any) error {
	return &fault.Error{Kind: fault.Unauthenticated, Code: "sign_in_refused", Message: fmt.Sprintf(format, args...)}
}

// Attempt is one sign-in's secrets: the state binds the provider's answer
// to the browser that asked, the nonce the ID token to this sign-in, the
// PKCE verifier the code to this client instance.
type Attempt struct {
	State, Nonce, Verifier string
	// Reauthenticate asks the provider to authenticate the person again
	// whatever session it holds (max_age=0 and prompt=login), before a
	// signature.
	Reauthenticate bool
}

// NewAttempt returns fresh random secrets.
func NewAttempt() Attempt {
	return Attempt{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthURL is where the browser goes to sign in.
func (p *Provider) AuthURL(ctx context.Context, a Attempt) (string, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(a.Nonce), oauth2.S256ChallengeOption(a.Verifier)}
	if a.Reauthenticate {
		// max_age=0 obliges the provider to authenticate afresh and to
		// send auth_time (OpenID Connect Core 3.1.2.1); prompt=login says
		// the same to providers that read only that.
		opts = append(opts, oauth2.SetAuthURLParam("max_age", "0"), oauth2.SetAuthURLParam("prompt", "login"))
	}
	return p.oauth(prov).AuthCodeURL(a.State, opts...), nil
}

// Account is who signed in, as the provider vouches.
type Account struct {
	// Subject is "issuer|subject": the staff member's external subject.
	Subject string
	Name    string
	Email   string
	// Role is the staff role the role claim maps to; "" when the claim is
	// not configured or maps to no role.
	Role access.Role
	// RoleClaimed reports whether the role claim is configured, so that
	// its silence means "no role" rather than "ask the staff table".
	RoleClaimed bool
	// AuthTime is when the person authenticated at the provider: the ID
	// token's auth_time when it carries one (AuthTimeClaimed), else the
	// moment Chamber exchanged the code.
	AuthTime        time.Time
	AuthTimeClaimed bool
}

// CodeReauthStale is the refusal of a re-authentication whose ID token
// carries no auth_time, or one older than the request: the provider did
// not authenticate the person again (it ignored max_age and prompt).
const CodeReauthStale = "reauthentication_not_done"

// Reauthenticated checks that acct authenticated at the provider at or
// after started, by the ID token's own auth_time: a provider that answers
// from an older session of its own is refused. auth_time has a resolution
// of a second, so started counts from the start of its second.
func Reauthenticated(acct Account, started time.Time) error {
	if !acct.AuthTimeClaimed {
		return &fault.Error{Kind: fault.Unauthenticated, Code: CodeReauthStale,
			Message: "the identity provider's answer carries no auth_time: it did not confirm a new authentication"}
	}
	if acct.AuthTime.Before(started.Truncate(time.Second)) {
		return &fault.Error{Kind: fault.Unauthenticated, Code: CodeReauthStale,
			Message: fmt.Sprintf("the identity provider answered with an authentication of %s, before the request of %s: it did not authenticate again",
				acct.AuthTime.UTC().Format(time.RFC3339), started.UTC().Format(time.RFC3339))}
	}
	return nil
}

// Tokens are what a sign-in keeps: the raw ID token (the logout hint) and
// the sealed refresh token ("" when the provider issued none).
type Tokens struct {
	IDToken, RefreshToken string
}

// Finish exchanges the code with the PKCE verifier and verifies the ID
// token — signature, issuer, audience (this client), expiry — and its nonce.
func (p *Provider) Finish(ctx context.Context, code string, a Attempt) (Account, Tokens, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return Account{}, Tokens{}, err
	}
	ctx = p.withClient(ctx)
	exchanged := time.Now()
	tok, err := p.oauth(prov).Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return Account{}, Tokens{}, refused("the identity provider refused the sign-in (%s)", cmpOr(re.ErrorCode, re.Response.Status))
		}
		return Account{}, Tokens{}, unavailable(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Account{}, Tokens{}, refused("the identity provider sent no ID token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		p.log.Warn("an ID token did not verify", "err", err)
		return Account{}, Tokens{}, refused("the identity provider's ID token did not verify: %v", err)
	}
	if idt.Nonce != a.Nonce {
		return Account{}, Tokens{}, refused("the ID token belongs to another sign-in (nonce mismatch)")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Account{}, Tokens{}, refused("the ID token's claims are malformed")
	}
	acct := Account{Subject: idt.Issuer + "|" + idt.Subject, Name: nameOf(claims, idt.Subject), RoleClaimed: p.cfg.RoleClaim != ""}
	acct.Email, _ = claims["email"].(string)
	acct.AuthTime, acct.AuthTimeClaimed = authTime(claims, exchanged)
	if acct.RoleClaimed {
		acct.Role = p.mapRole(claimValues(claims, p.cfg.RoleClaim))
	}
	out := Tokens{IDToken: raw}
	if tok.RefreshToken != "" {
		out.RefreshToken = p.sealToken(tok.RefreshToken)
	}
	return acct, out, nil
}

// authTime reads the auth_time claim (seconds since the epoch), or falls
// back to when the code was exchanged: a sign-in is at least that old.
func authTime(claims map[string]any, exchanged time.Time) (time.Time, bool) {
	if v, ok := claims["auth_time"].(float64); ok && v > 0 && v < 1<<40 {
		return time.Unix(int64(v), 0).UTC(), true
	}
	return exchanged.UTC(), false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mapRole returns the role of the first mapping the values contain.
func (p *Provider) mapRole(values []string) access.Role {
	if len(p.cfg.RoleMap) == 0 {
		for _, r := range access.StaffRoles {
			if slices.Contains(values, string(r)) {
				return r
			}
		}
		return ""
	}
	for _, m := range p.cfg.RoleMap {
		if slices.Contains(values, m.Value) {
			return m.Role
		}
	}
	return ""
}

// claimValues reads a claim by a dotted path ("realm_access.roles") as a
// list of strings: a string is a list of one.
func claimValues(claims map[string]any, path string) []string {
	var v any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// nameOf finds a display name: name; given and family names (at the top
// level, or in TARA's profile_attributes); the preferred user name; the
// e-mail address; the subject.
func nameOf(claims map[string]any, subject string) string {
	str := func(path string) string {
		if v := claimValues(claims, path); len(v) == 1 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	join := func(a, b string) string { return strings.TrimSpace(a + " " + b) }
	for _, n := range []string{
		str("name"),
		join(str("given_name"), str("family_name")),
		join(str("profile_attributes.given_name"), str("profile_attributes.family_name")),
		str("preferred_username"),
		str("email"),
	} {
		if n != "" {
			return truncate(n, 200)
		}
	}
	return truncate(subject, 200)
}

// truncate bounds s to n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Revalidate asks the provider whether the account behind a sealed refresh
// token is still enabled, with a refresh-token grant, and returns the new
// sealed refresh token (providers rotate them). A refusal by the provider
// (an OAuth error answer: the account is disabled, the grant revoked, the
// provider's session over) is fault.Revoked; a provider that cannot be
// reached is fault.Unavailable, which signs no one out.
func (p *Provider) Revalidate(ctx context.Context, sealed string) (string, error) {
	refresh, err := p.unsealToken(sealed)
	if err != nil {
		return "", fault.Wrap(fault.Revoked, err, "the stored refresh token cannot be read")
	}
	prov, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	tok, err := p.oauth(prov).TokenSource(p.withClient(ctx), &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return "", fault.Wrap(fault.Revoked, err, "the identity provider refused the account (%s)", cmpOr(re.ErrorCode, re.Response.Status))
		}
		return "", unavailable(err)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != refresh {
		return p.sealToken(tok.RefreshToken), nil
	}
	return sealed, nil
}

// LogoutURL is the provider's end_session_endpoint with the ID token as a
// hint and the console as the place to come back to; "" when the provider
// offers no RP-initiated logout.
func (p *Provider) LogoutURL(ctx context.Context, idToken string) string {
	if _, err := p.discover(ctx); err != nil {
		return ""
	}
	p.mu.Lock()
	end := p.endSess
	p.mu.Unlock()
	if end == "" {
		return ""
	}
	u, err := url.Parse(end)
	if err != nil {
		return ""
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", p.cfg.ClientID)
	if p.cfg.PostLogoutURL != "" {
		q.Set("post_logout_redirect_uri", p.cfg.PostLogoutURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

const sealPrefix = "v1:"

func (p *Provider) sealToken(plain string) string {
	nonce := make([]byte, p.seal.NonceSize())
	rand.Read(nonce)
	return sealPrefix + base64.RawURLEncoding.EncodeToString(p.seal.Seal(nonce, nonce, []byte(plain), nil))
}

func (p *Provider) unsealToken(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", errors.New("unknown refresh token seal")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) < p.seal.NonceSize() {
		return "", errors.New("malformed sealed refresh token")
	}
	n := p.seal.NonceSize()
	plain, err := p.seal.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return "", errors.New("sealed refresh token does not open (another client secret?)")
	}
	return string(plain), nil
}

// boundedTransport refuses a provider response body beyond maxBody.
type boundedTransport struct{ next http.RoundTripper }

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{r: resp.Body, left: maxBody}
	return resp, nil
}

type boundedBody struct {
	r    io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("signin: the identity provider's answer exceeds %d bytes", maxBody)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.r.Close() }
