package api

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signin"
)

// Config is what the HTTP floor serves. Nil services are simply not
// routed, which lets tests build an API with only what they exercise.
type Config struct {
	Logger *slog.Logger
	// Ready names the dependencies /readyz checks (e.g. "database", "evidence").
	Ready map[string]Check

	Sessions  *sessions.Service
	Documents *documents.Service
	Journal   *journal.Journal
	// VerifyToken checks journal anchors' RFC 3161 tokens.
	VerifyToken journal.TokenVerifier
	// Signal serves GET /api/v1/sessions/{id}/signal (the WebSocket).
	Signal http.HandlerFunc
	// Acts runs notarial acts (identity checks, lifecycle, seal, register).
	Acts *acts.Service
	// Recording starts and stops recordings.
	Recording *recording.Controller
	// Bundle builds evidence bundles.
	Bundle *bundle.Config
	// TempDir holds temporary files (bundles being built, PDFs being verified).
	TempDir string
	// Verify enables POST /api/v1/verify; nil leaves it out.
	Verify *VerifyConfig
	// Mount adds routes owned by other packages (the web app, the
	// timestamp authority, the CA's CRL): called with a registration
	// function that documents each route.
	Mount []func(route func(pattern string, op Op, h http.Handler))

	// SignIn is the OpenID provider staff sign in with. Nil means none is
	// configured: the development sign-in is then offered to DevSignIn.
	SignIn *signin.Provider
	// DevSignIn says who may use the development sign-in while no
	// provider is configured.
	DevSignIn DevSignIn
	// Bootstrap is the one-time link that makes the first administrator of
	// a server without staff; nil when there is staff.
	Bootstrap *Bootstrap
	// PublicURL is Chamber's base URL; https makes cookies Secure.
	PublicURL string
	// TrustedProxies may tell the client's address (--trusted-proxy).
	TrustedProxies []netip.Prefix
	// AuthFailures counts failed authentications per client address; the
	// signalling joins share it. Nil makes one.
	AuthFailures *FailureLimiter
}

// API is Chamber's HTTP surface.
type API struct {
	log          *slog.Logger
	rt           *Router
	sessions     *sessions.Service
	documents    *documents.Service
	acts         *acts.Service
	recording    *recording.Controller
	bundle       bundle.Config
	tempDir      string
	journal      *journal.Journal
	verifyToken  journal.TokenVerifier
	documented   []documentedRoute
	clients      ClientAddrs
	authFailures *FailureLimiter
	publicJoins  *FailureLimiter
	// verifications bounds the public verifier: each request spends one.
	verifications *FailureLimiter
	// signIns bounds the sign-ins a client address may start.
	signIns *FailureLimiter
	// playback bounds the recording file responses in flight (playback.go).
	playback *playback

	signIn        *signin.Provider
	devSignIn     DevSignIn
	bootstrap     *Bootstrap
	publicURL     string
	secureCookies bool
}

// New builds the API with every route of Chamber's HTTP surface.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		log:         cfg.Logger,
		rt:          NewRouter(cfg.Logger),
		sessions:    cfg.Sessions,
		documents:   cfg.Documents,
		acts:        cfg.Acts,
		recording:   cfg.Recording,
		tempDir:     cfg.TempDir,
		journal:     cfg.Journal,
		verifyToken: cfg.VerifyToken,
		clients:     NewClientAddrs(cfg.TrustedProxies),
		// Ten failed authentications, then one every six seconds.
		authFailures: cfg.AuthFailures,
		// Public observers: twenty joins, then one every three seconds.
		publicJoins: NewFailureLimiter(3*time.Second, 20),
		// Public verification: ten at once, then one every two seconds.
		verifications: NewFailureLimiter(2*time.Second, 10),
		// Sign-ins: twenty, then one every three seconds.
		signIns:       NewFailureLimiter(3*time.Second, 20),
		signIn:        cfg.SignIn,
		devSignIn:     cfg.DevSignIn,
		bootstrap:     cfg.Bootstrap,
		publicURL:     strings.TrimRight(cfg.PublicURL, "/"),
		secureCookies: strings.HasPrefix(cfg.PublicURL, "https://"),
	}
	if a.authFailures == nil {
		a.authFailures = NewAuthFailureLimiter()
	}
	a.route("GET /healthz", Op{Summary: "Liveness: 200 while the process runs", Tags: []string{"operations"}}, handleHealthz)
	a.route("GET /readyz", Op{Summary: "Readiness: 200 when the database and evidence store answer, else 503 naming what is down",
		Tags: []string{"operations"}, Response: readiness{}, Errors: []int{503}}, handleReadyz(cfg.Ready))
	a.route("GET /api/v1/openapi.json", Op{Summary: "This API description (OpenAPI 3.1)", Tags: []string{"operations"}, RawResponse: "application/json"}, a.handleOpenAPI)
	if cfg.Sessions != nil {
		a.sessionRoutes()
		a.invitationRoutes()
		a.signInRoutes()
		a.staffRoutes()
	}
	if cfg.Sessions != nil && cfg.Documents != nil {
		a.documentRoutes()
	}
	if cfg.Sessions != nil && cfg.Documents != nil && cfg.Acts != nil {
		a.actRoutes()
	}
	if cfg.Sessions != nil && cfg.Recording != nil {
		a.recordingRoutes()
		a.playback = newPlayback()
		a.playbackRoutes()
	}
	if cfg.Sessions != nil && cfg.Documents != nil && cfg.Bundle != nil {
		a.bundle = *cfg.Bundle
		a.bundleRoutes()
	}
	if cfg.Verify != nil {
		a.verifyRoutes(*cfg.Verify)
	}
	if cfg.Signal != nil {
		a.route("GET /api/v1/sessions/{id}/signal", Op{Summary: "Signalling WebSocket (protocol in docs/signaling.md); the first message carries an invitation token or a staff member's join ticket (POST …/enter)",
			Tags: []string{"media"}, Status: http.StatusSwitchingProtocols, Errors: []int{400, 403, 404, 503}}, cfg.Signal)
	}
	for _, mount := range cfg.Mount {
		mount(func(pattern string, op Op, h http.Handler) { a.route(pattern, op, h.ServeHTTP) })
	}
	return a
}

// route registers a documented handler.
func (a *API) route(pattern string, op Op, h http.HandlerFunc) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	a.documented = append(a.documented, documentedRoute{method: method, path: path, op: op})
	a.rt.Handle(pattern, h)
}

// ServeHTTP serves every route.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.rt.ServeHTTP(w, r) }

// HSTS is the Strict-Transport-Security policy StrictTransport sends: a
// year, this host only — the court's other hosts are not Chamber's to
// commit to HTTPS, and preloading is the operator's decision.
const HSTS = "max-age=31536000"

// StrictTransport adds the Strict-Transport-Security header to every
// response of h. Serve it whenever browsers reach Chamber over HTTPS — its
// own TLS, or a proxy's in front of it — so that they never again try
// plain HTTP, where a token in a link could be read.
func StrictTransport(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", HSTS)
		h.ServeHTTP(w, r)
	})
}

// Routes lists the registered routes.
func (a *API) Routes() []Route { return a.rt.Routes() }
