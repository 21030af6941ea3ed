package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
	"github.com/chamber-court/chamber/web"
)

// storageConfig is shared by every command that opens Chamber's data.
type storageConfig struct {
	dataDir   string
	database  string
	logFormat string
	logLevel  string
}

func (s *storageConfig) register(c *command) {
	c.fs.StringVar(&s.dataDir, "data-dir", "./data", "directory for the SQLite database, local evidence, keys")
	c.fs.StringVar(&s.database, "database", "", "database URL: postgres://… for PostgreSQL; empty = SQLite <data-dir>/chamber.db")
	c.fs.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	c.fs.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// logger builds the process logger. Logs go to stderr: stdout belongs to
// commands that print results (staff add prints a token there).
func (s *storageConfig) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		return nil, usagef("chamber: --log-level %q: want debug, info, warn or error", s.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch s.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	default:
		return nil, usagef("chamber: --log-format %q: want text or json", s.logFormat)
	}
}

// openDatabase opens and migrates the configured database. A URL that
// cannot be parsed or a database that does not answer is a configuration
// error (exit status 2).
func (s *storageConfig) openDatabase(ctx context.Context, log *slog.Logger) (*database.DB, error) {
	db, err := database.Open(ctx, s.database, s.dataDir)
	if err != nil {
		return nil, usagef("chamber: --database: %v", err)
	}
	if err := db.Migrate(ctx, log); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// s3Config selects S3/MinIO evidence storage when an endpoint is set.
type s3Config struct {
	endpoint, bucket, accessKey, secretKey, region string
	insecure                                       bool
}

func (s *s3Config) register(c *command) {
	c.fs.StringVar(&s.endpoint, "s3-endpoint", "", "S3/MinIO endpoint host:port; empty = evidence in <data-dir>/evidence")
	c.fs.StringVar(&s.bucket, "s3-bucket", "chamber-evidence", "S3 bucket (created with Object Lock if missing)")
	c.fs.StringVar(&s.accessKey, "s3-access-key", "", "S3 access key")
	c.fs.StringVar(&s.secretKey, "s3-secret-key", "", "S3 secret key")
	c.fs.StringVar(&s.region, "s3-region", "", "S3 region")
	c.fs.BoolVar(&s.insecure, "s3-insecure", false, "talk plain HTTP to the S3 endpoint")
}

func openEvidence(ctx context.Context, dataDir string, s s3Config, log *slog.Logger) (evidence.Store, string, error) {
	if s.endpoint == "" {
		dir := filepath.Join(dataDir, "evidence")
		st, err := evidence.NewLocal(dir, log)
		if err != nil {
			return nil, "", fmt.Errorf("evidence store %s: %w", dir, err)
		}
		return st, dir, nil
	}
	if strings.Contains(s.endpoint, "://") {
		return nil, "", usagef("chamber: --s3-endpoint %q: give host:port, and --s3-insecure for plain HTTP", s.endpoint)
	}
	// An unreachable endpoint must not leave the start hanging in the
	// client's retries.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := evidence.NewS3(ctx, evidence.S3Config{
		Endpoint:  s.endpoint,
		Bucket:    s.bucket,
		AccessKey: s.accessKey,
		SecretKey: s.secretKey,
		Region:    s.region,
		Insecure:  s.insecure,
		Logger:    log,
	})
	if err != nil {
		return nil, "", usagef("chamber: evidence store s3://%s/%s: %v", s.endpoint, s.bucket, err)
	}
	return st, "s3://" + s.endpoint + "/" + s.bucket, nil
}

type serveConfig struct {
	storageConfig
	s3              s3Config
	listen          string
	publicURL       string
	shutdownTimeout time.Duration
	tlsCert, tlsKey string
	tsaURL          string
	anchorEvery     time.Duration
	maxUpload       byteSize
	retention       years
	signingCert     string
	signingKey      string
	signingP12      string
	media           mediaConfig
	trust           stringList
	identity        identityConfig
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg serveConfig
	c := newCommand("serve")
	cfg.storageConfig.register(c)
	cfg.s3.register(c)
	c.fs.StringVar(&cfg.listen, "listen", ":8080", "HTTP listen address")
	c.fs.StringVar(&cfg.publicURL, "public-url", "http://localhost:8080", "public base URL, used in links")
	c.fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to drain in-flight requests on shutdown")
	c.fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate (PEM) for HTTPS; with --tls-key")
	c.fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key (PEM)")
	c.fs.StringVar(&cfg.tsaURL, "tsa-url", "", "RFC 3161 timestamp authority URL; empty = the built-in development TSA")
	cfg.maxUpload = 200 << 20
	c.fs.Var(&cfg.maxUpload, "max-upload", "largest accepted upload, e.g. 200MiB")
	cfg.retention = years(10 * 365.25 * 24 * time.Hour)
	c.fs.Var(&cfg.retention, "retention", "how long evidence is retained in the store, e.g. 10y")
	c.fs.StringVar(&cfg.signingCert, "signing-cert", "", "the court's or notary's signing certificate (PEM, with its chain)")
	c.fs.StringVar(&cfg.signingKey, "signing-key", "", "its private key (PEM)")
	c.fs.StringVar(&cfg.signingP12, "signing-p12", "", "signing certificate and key as PKCS#12; password in CHAMBER_SIGNING_P12_PASSWORD")
	cfg.media.register(c)
	c.fs.Var(&cfg.trust, "trust", "extra trusted root certificate (PEM) for verification; repeatable")
	c.fs.DurationVar(&cfg.anchorEvery, "journal-anchor-interval", time.Hour, "how often the journal head is timestamped")
	cfg.identity.register(c)
	if err := c.parse(args, stderr); err != nil {
		return err
	}
	trustedProxies, err := cfg.identity.check()
	if err != nil {
		return err
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return usagef("chamber serve: --tls-cert and --tls-key go together")
	}
	log, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o750); err != nil {
		return usagef("chamber serve: --data-dir %s: %v", cfg.dataDir, err)
	}

	db, err := cfg.openDatabase(ctx, log)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("database ready", "engine", db.Engine, "location", db.Location)

	store, where, err := openEvidence(ctx, cfg.dataDir, cfg.s3, log)
	if err != nil {
		return err
	}
	log.Info("evidence store ready", "location", where)

	authority, err := pki.LoadOrCreateDev(pkiDir(cfg.dataDir), cfg.publicURL, log)
	if err != nil {
		return fmt.Errorf("development PKI: %w", err)
	}
	// The journal's anchors come from the configured authority, or from
	// the built-in one in-process (the same one served at POST /tsa).
	var stamper journal.Timestamper = authority.TSA()
	if cfg.tsaURL != "" {
		stamper = &pki.TSAClient{URL: cfg.tsaURL}
	}
	verifyToken, err := tokenVerifier(cfg.dataDir, cfg.trust...)
	if err != nil {
		return err
	}
	trusted, err := trustedCerts(cfg.dataDir, cfg.trust)
	if err != nil {
		return err
	}
	seal, err := cfg.sealIdentity(authority)
	if err != nil {
		return err
	}
	jnl := journal.New(db, stamper, log)
	prov, err := cfg.identity.provider(cfg.publicURL, log)
	if err != nil {
		return err
	}
	sessCfg := sessions.Config{
		DB: db, Journal: jnl, Log: log, PublicURL: cfg.publicURL,
		Anchor:            func(ctx context.Context) error { _, err := jnl.Anchor(ctx); return err },
		BrowserSessionTTL: cfg.identity.sessionMaxAge, BrowserIdleTimeout: cfg.identity.sessionIdle,
		RevalidateEvery: cfg.identity.checkEvery,
	}
	if prov != nil {
		sessCfg.Revalidate = prov.Revalidate
	}
	svc := sessions.New(sessCfg)
	boot, err := cfg.identity.announceSignIn(ctx, svc, prov, cfg.publicURL, log)
	if err != nil {
		return err
	}
	authFailures := api.NewAuthFailureLimiter()

	docs := documents.New(documents.Config{
		DB: db, Journal: jnl, Store: store, Log: log,
		MaxUpload: int64(cfg.maxUpload), Retention: time.Duration(cfg.retention),
		TempDir: filepath.Join(cfg.dataDir, "tmp"),
		Signing: &documents.Signing{
			Seal: seal, Principals: authority, Check: authority.CheckCertificate, TSA: stamper,
			Certificates: []*x509.Certificate{authority.Root()},
		},
	})
	if err := os.MkdirAll(filepath.Join(cfg.dataDir, "tmp"), 0o700); err != nil {
		return err
	}

	actSvc := acts.New(acts.Config{
		DB: db, Journal: jnl, Store: store, Log: log, Retention: time.Duration(cfg.retention),
		Principals: func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
			return api.Principals(ctx, svc, sid)
		},
	})
	rec := recording.New(recording.Config{
		DB: db, Journal: jnl, Store: store, Log: log, Policy: recordingPolicy{svc},
		SpoolDir: filepath.Join(cfg.dataDir, "spool"), Retention: time.Duration(cfg.retention),
	})
	// Whatever a crash left mid-recording is stored before anything new starts.
	if err := rec.Recover(ctx); err != nil {
		log.Error("recovering interrupted recordings", "err", err)
	}

	sigCfg := cfg.media.signalingConfig()
	hooks := sessionHooks{svc: svc, recording: rec, acts: actSvc, failures: authFailures, clients: api.NewClientAddrs(trustedProxies)}
	sigCfg.Logger, sigCfg.Authenticator, sigCfg.Policy, sigCfg.Hooks, sigCfg.Recorder = log, hooks, hooks, hooks, rec
	sig, err := signaling.New(sigCfg)
	if err != nil {
		return usagef("chamber serve: media: %v", err)
	}
	if err := sig.Start(ctx); err != nil {
		return usagef("chamber serve: media: %v", err)
	}
	defer sig.Close()
	svc.SetNotifier(sig)
	rec.SetNotifier(sig)
	// Recordings still running at shutdown are finished and stored.
	defer rec.StopAll(context.WithoutCancel(ctx))

	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { jnl.RunAnchors(bg, cfg.anchorEvery) })
	wg.Go(func() { svc.RunSweeps(bg, cfg.identity.sweepEvery) })
	defer func() {
		stopBackground()
		wg.Wait()
	}()

	webApp, err := web.New(web.Config{PublicURL: cfg.publicURL})
	if err != nil {
		return err
	}

	router := api.New(api.Config{
		Log: log,
		Ready: map[string]api.Check{
			"database": db.PingContext,
			"evidence": store.Ping,
		},
		Sessions:       svc,
		Documents:      docs,
		Journal:        jnl,
		Acts:           actSvc,
		Recording:      rec,
		Bundle:         &bundle.Config{Store: store, Journal: jnl, Signer: seal, TSA: stamper},
		Notify:         notifier(sig),
		TempDir:        filepath.Join(cfg.dataDir, "tmp"),
		VerifyToken:    verifyToken,
		Signal:         sig.HandleSignal,
		SignIn:         prov,
		DevSignIn:      api.DevSignIn(cfg.identity.devSignIn),
		Bootstrap:      boot,
		PublicURL:      cfg.publicURL,
		TrustedProxies: trustedProxies,
		AuthFailures:   authFailures,
		Verify: &api.VerifyConfig{
			Roots:   pades.TrustStore(true, trusted...),
			MaxSize: int64(cfg.maxUpload),
			TempDir: filepath.Join(cfg.dataDir, "tmp"),
		},
		Mount: []func(route func(string, api.Op, http.Handler)){
			func(route func(string, api.Op, http.Handler)) {
				route("POST /tsa", api.Op{Summary: "Built-in development RFC 3161 timestamp authority", Tags: []string{"pki"},
					RawBody: []string{"application/timestamp-query"}, RawResponse: "application/timestamp-reply", Errors: []int{400, 413, 415}}, authority.TSA())
				pkiHandler := authority.Handler()
				route("GET "+pki.PathCACert, api.Op{Summary: "Development CA certificate (DER)", Tags: []string{"pki"}, RawResponse: "application/pkix-cert"}, pkiHandler)
				route("GET /pki/ca.pem", api.Op{Summary: "Development CA certificate (PEM)", Tags: []string{"pki"}, RawResponse: "application/x-pem-file"}, pkiHandler)
				route("GET "+pki.PathCRL, api.Op{Summary: "Development CA revocation list (DER)", Tags: []string{"pki"}, RawResponse: "application/pkix-crl"}, pkiHandler)
			},
			func(route func(string, api.Op, http.Handler)) {
				for _, p := range webApp.Pages() {
					route(p.Pattern, api.Op{Summary: p.Summary, Hidden: true, RawResponse: p.ContentType}, webApp.Headers(p.Handler))
				}
			},
		},
	})
	// Every response carries the security headers that suit it; pages
	// replace them with their own.
	return serveHTTP(ctx, log, cfg, web.APIHeaders(router))
}

// serveHTTP runs the HTTP server until ctx ends, then stops accepting and
// drains in-flight requests for at most the shutdown timeout.
func serveHTTP(ctx context.Context, log *slog.Logger, cfg serveConfig, h http.Handler) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return usagef("chamber serve: --listen %s: %v", cfg.listen, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.tlsCert != "" {
			errc <- srv.ServeTLS(ln, cfg.tlsCert, cfg.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("chamber serving", "listen", ln.Addr().String(), "public_url", cfg.publicURL, "version", version, "tls", cfg.tlsCert != "")
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain_timeout", cfg.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests did not finish in time", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// sealIdentity is the certificate the presiding role signs with: the
// configured one, else the development seal.
func (cfg serveConfig) sealIdentity(authority *pki.Authority) (pki.Signer, error) {
	switch {
	case cfg.signingP12 != "" && (cfg.signingCert != "" || cfg.signingKey != ""):
		return nil, usagef("chamber serve: give --signing-p12 or --signing-cert/--signing-key, not both")
	case cfg.signingP12 != "":
		id, err := pki.LoadPKCS12(cfg.signingP12, os.Getenv("CHAMBER_SIGNING_P12_PASSWORD"))
		if err != nil {
			return nil, usagef("chamber serve: --signing-p12: %v", err)
		}
		return id.AsSigner(), nil
	case cfg.signingCert != "" || cfg.signingKey != "":
		if cfg.signingCert == "" || cfg.signingKey == "" {
			return nil, usagef("chamber serve: --signing-cert and --signing-key go together")
		}
		id, err := pki.LoadPEM(cfg.signingCert, cfg.signingKey)
		if err != nil {
			return nil, usagef("chamber serve: --signing-cert: %v", err)
		}
		return id.AsSigner(), nil
	}
	return authority.Seal().AsSigner(), nil
}

func runMigrate(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg storageConfig
	c := newCommand("migrate")
	cfg.register(c)
	if err := c.parse(args, stderr); err != nil {
		return err
	}
	log, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	db, err := cfg.openDatabase(ctx, log)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.Version(ctx)
	if err != nil {
		return err
	}
	log.Info("database is up to date", "engine", db.Engine, "location", db.Location, "version", v)
	return nil
}
