package main

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signin"
)

// identityConfig holds how staff sign in and how credentials are checked.
type identityConfig struct {
	issuer, clientID, clientSecret string
	scopes, roleClaim, roleMap     string
	checkEvery, sweepEvery         time.Duration
	sessionMaxAge, sessionIdle     time.Duration
	devSignIn                      string
	trustedProxies                 stringList
	// signingConfirmation is --signing-confirmation ("" = by the provider);
	// reauthMaxAge how recent a sign-in confirms a signature.
	signingConfirmation string
	reauthMaxAge        time.Duration
}

func (c *identityConfig) register(cmd *command) {
	cmd.fs.StringVar(&c.issuer, "oidc-issuer", "", "OpenID provider issuer URL (Entra ID, Keycloak, TARA, …); empty = development sign-in")
	cmd.fs.StringVar(&c.clientID, "oidc-client-id", "", "Chamber's client ID at the provider")
	cmd.fs.StringVar(&c.clientSecret, "oidc-client-secret", "", "Chamber's client secret (prefer the environment variable)")
	cmd.fs.StringVar(&c.scopes, "oidc-scopes", strings.Join(signin.DefaultScopes, " "), "scopes to request, space-separated")
	cmd.fs.StringVar(&c.roleClaim, "oidc-role-claim", "", "claim carrying groups or roles, e.g. groups, roles, realm_access.roles; empty = staff provisioned with --subject")
	cmd.fs.StringVar(&c.roleMap, "oidc-role-map", "", "claim values to roles, e.g. judges=judge,clerks=clerk (first match wins; empty = values are role names)")
	cmd.fs.DurationVar(&c.checkEvery, "oidc-check-interval", sessions.DefaultRevalidateEvery, "how often each console sign-in is checked with the provider (refresh token)")
	cmd.fs.DurationVar(&c.sessionMaxAge, "session-max-age", sessions.DefaultBrowserSessionTTL, "a console sign-in's absolute lifetime")
	cmd.fs.DurationVar(&c.sessionIdle, "session-idle-timeout", sessions.DefaultBrowserIdleTimeout, "a console sign-in ends after this long without a request")
	cmd.fs.DurationVar(&c.sweepEvery, "credential-sweep-interval", 15*time.Second, "how often ended credentials close their live connections and sign-ins are revalidated")
	cmd.fs.StringVar(&c.devSignIn, "dev-sign-in", string(api.DevSignInLoopback), "without a provider, who may use the development sign-in: loopback, anywhere or off")
	cmd.fs.StringVar(&c.signingConfirmation, "signing-confirmation", "", "what confirms an official's signature with an identity Chamber holds: sign-in (a recent authentication at the provider; the default with --oidc-issuer) or none (the request alone; the default without)")
	cmd.fs.DurationVar(&c.reauthMaxAge, "signing-reauth-max-age", documents.DefaultReauthMaxAge, "under --signing-confirmation sign-in, how recent the signer's authentication at the provider must be")
	cmd.fs.Var(&c.trustedProxies, "trusted-proxy", "CIDR of a reverse proxy whose Forwarded/X-Forwarded-For tells the client address (repeatable)")
}

// check validates the flags.
func (c *identityConfig) check() ([]netip.Prefix, error) {
	switch api.DevSignIn(c.devSignIn) {
	case api.DevSignInLoopback, api.DevSignInAnywhere, api.DevSignInOff:
	default:
		return nil, usagef("chamber serve: --dev-sign-in %q: want loopback, anywhere or off", c.devSignIn)
	}
	if c.issuer == "" && (c.clientID != "" || c.clientSecret != "" || c.roleClaim != "") {
		return nil, usagef("chamber serve: --oidc-client-id, --oidc-client-secret and --oidc-role-claim need --oidc-issuer")
	}
	if _, err := c.confirmation(); err != nil {
		return nil, err
	}
	if c.checkEvery <= 0 || c.sweepEvery <= 0 || c.sessionMaxAge <= 0 || c.sessionIdle <= 0 || c.reauthMaxAge <= 0 {
		return nil, usagef("chamber serve: the session and check intervals must be positive")
	}
	var out []netip.Prefix
	for _, s := range c.trustedProxies {
		p, err := api.ParseTrustedProxy(s)
		if err != nil {
			return nil, usagef("chamber serve: --trusted-proxy %q: want a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// confirmation is the signing confirmation policy: sign-in by default
// with a provider, none without one (zero-config development, where staff
// have no provider to authenticate with again). sign-in without a
// provider would refuse every such signature, so it is a usage error.
func (c *identityConfig) confirmation() (documents.ConfirmationPolicy, error) {
	switch documents.ConfirmationPolicy(c.signingConfirmation) {
	case "":
		if c.issuer != "" {
			return documents.ConfirmSignIn, nil
		}
		return documents.ConfirmNone, nil
	case documents.ConfirmNone:
		return documents.ConfirmNone, nil
	case documents.ConfirmSignIn:
		if c.issuer == "" {
			return "", usagef("chamber serve: --signing-confirmation sign-in needs --oidc-issuer: without a provider no one can authenticate again")
		}
		return documents.ConfirmSignIn, nil
	}
	return "", usagef("chamber serve: --signing-confirmation %q: want sign-in or none", c.signingConfirmation)
}

// announceConfirmation logs which signing confirmation applies.
func (c *identityConfig) announceConfirmation(policy documents.ConfirmationPolicy, log *slog.Logger) {
	if policy == documents.ConfirmSignIn {
		log.Info("officials' signatures with an identity Chamber holds are confirmed by a recent sign-in at the provider; API tokens never sign with them",
			"signing_confirmation", policy, "max_age", c.reauthMaxAge)
		return
	}
	log.Warn("officials' signatures with an identity Chamber holds are confirmed by the authenticated request alone (--signing-confirmation none); an API token of an official can sign as them",
		"signing_confirmation", policy)
}

// provider builds the OpenID relying party, or nil without an issuer.
func (c *identityConfig) provider(publicURL string, log *slog.Logger) (*signin.Provider, error) {
	if c.issuer == "" {
		return nil, nil
	}
	roles, err := signin.ParseRoleMap(c.roleMap)
	if err != nil {
		return nil, usagef("chamber serve: --oidc-role-map: %v", err)
	}
	base := strings.TrimRight(publicURL, "/")
	p, err := signin.New(signin.Config{
		Issuer: c.issuer, ClientID: c.clientID, ClientSecret: c.clientSecret,
		RedirectURL: base + "/auth/callback", PostLogoutURL: base + "/",
		Scopes: strings.Fields(c.scopes), RoleClaim: c.roleClaim, RoleMap: roles, Logger: log,
	})
	if err != nil {
		return nil, usagef("chamber serve: %v", err)
	}
	return p, nil
}

// announceSignIn logs how staff sign in here, and on a server without
// staff, once, how to make the first administrator: the bootstrap link.
func (c *identityConfig) announceSignIn(ctx context.Context, svc *sessions.Service, prov *signin.Provider, publicURL string, log *slog.Logger) (*api.Bootstrap, error) {
	base := strings.TrimRight(publicURL, "/")
	if prov != nil {
		log.Info("staff sign in with OpenID Connect", "issuer", prov.Issuer(), "redirect_uri", base+"/auth/callback", "role_claim", c.roleClaim)
	} else if c.devSignIn != string(api.DevSignInOff) {
		log.Warn("DEVELOPMENT SIGN-IN: no OpenID provider is configured (--oidc-issuer), so anyone who reaches the console may sign in as any staff member or create one",
			"who", c.devSignIn)
	}
	n, err := svc.CountStaff(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	boot, secret := api.NewBootstrap()
	log.Warn("no staff yet: open this link once to become the first administrator (it works until someone uses it or the server restarts), or run: chamber staff add --role admin --name …",
		"bootstrap_url", base+"/#/bootstrap/"+secret)
	return boot, nil
}
