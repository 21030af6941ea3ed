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
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
	"github.com/chamber-court/chamber/signin"
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
	opTimeout                                      time.Duration
}

func (s *s3Config) register(c *command) {
	c.fs.StringVar(&s.endpoint, "s3-endpoint", "", "S3/MinIO endpoint host:port; empty = evidence in <data-dir>/evidence")
	c.fs.StringVar(&s.bucket, "s3-bucket", "chamber-evidence", "S3 bucket (created with Object Lock if missing)")
	c.fs.StringVar(&s.accessKey, "s3-access-key", "", "S3 access key")
	c.fs.StringVar(&s.secretKey, "s3-secret-key", "", "S3 secret key")
	c.fs.StringVar(&s.region, "s3-region", "", "S3 region")
	c.fs.BoolVar(&s.insecure, "s3-insecure", false, "talk plain HTTP to the S3 endpoint")
	c.fs.DurationVar(&s.opTimeout, "s3-op-timeout", evidence.DefaultOpTimeout,
		"longest wait for one S3 request's answer, or for a stalled upload to move; then 503")
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
		OpTimeout: s.opTimeout,
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
	metricsListen   string
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
	mail            mailFlags
	evidenceLoops   evidenceLoops
	revocationAllow stringList
	egressProxy     string
	identity        identityConfig
	signers         signerFlags
	node            nodeConfig

	// Derived by check.
	mailConfig     *sessions.MailConfig
	trustedProxies []netip.Prefix
	confirmation   documents.ConfirmationPolicy
}

// evidenceLoops are the intervals of the work that makes the record whole
// after a crash or an outage.
type evidenceLoops struct {
	// retry is how often what is owed is retried: deferred journal
	// entries, spooled recordings, sealed acts' journal archives,
	// retention of recorded objects.
	retry time.Duration
	// reconcile is how often the store is compared with the record.
	reconcile time.Duration
	// grace is how old an unrecorded object must be to be an orphan.
	grace time.Duration
	// probe is how often readiness writes to the store and the database.
	probe time.Duration
}

func (l *evidenceLoops) register(c *command) {
	c.fs.DurationVar(&l.retry, "evidence-retry-interval", 30*time.Second,
		"how often owed work is retried: deferred journal entries, spooled recordings, journal archives, retention")
	c.fs.DurationVar(&l.reconcile, "evidence-reconcile-interval", 15*time.Minute,
		"how often the evidence store is reconciled with the record (orphans journalled); 0 = never")
	c.fs.DurationVar(&l.grace, "evidence-orphan-grace", time.Hour, "how old an object no record names must be to count as an orphan")
	c.fs.DurationVar(&l.probe, "readiness-probe-interval", 15*time.Second, "how often readiness writes to the store and the database")
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
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

	rc, err := cfg.openRecord(ctx, db, log)
	if err != nil {
		return err
	}
	sv, err := cfg.newServices(ctx, rc, log)
	if err != nil {
		return err
	}
	md, err := cfg.startMedia(ctx, rc, sv, log)
	if err != nil {
		return err
	}
	defer md.sig.Close()
	// Recordings still running at shutdown are finished and stored.
	defer sv.rec.StopAll(context.WithoutCancel(ctx))
	probes, stopBackground := cfg.runBackground(ctx, rc, sv, md.node, log)
	defer stopBackground()

	h, err := cfg.handler(rc, sv, md, probes, log)
	if err != nil {
		return err
	}
	var admin map[string]http.Handler
	if md.node != nil {
		admin = map[string]http.Handler{"POST /drain": md.node.drainHandler()}
	}
	stopMetrics, err := serveMetrics(ctx, log, cfg.metricsListen, admin)
	if err != nil {
		return err
	}
	defer stopMetrics()
	return serveHTTP(ctx, log, cfg, h)
}

// parseServe reads chamber serve's flags and checks the ones that go
// together.
func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	var cfg serveConfig
	c := newCommand("serve")
	cfg.storageConfig.register(c)
	cfg.s3.register(c)
	c.fs.StringVar(&cfg.listen, "listen", ":8080", "HTTP listen address")
	c.fs.StringVar(&cfg.metricsListen, "metrics-listen", defaultMetricsListen, "address of the Prometheus metrics listener (GET /metrics), kept off the public one; \"off\" disables it")
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
	c.fs.Var(&cfg.trust, "trust", "trusted root certificate (PEM) of signers and timestamp authorities, besides Chamber's CA; repeatable")
	c.fs.Var(&cfg.revocationAllow, "revocation-allow-host", "host or host:port Chamber may fetch CRLs and OCSP responses from (for its own chains only); repeatable")
	c.fs.StringVar(&cfg.egressProxy, "egress-proxy", "", "HTTP proxy every revocation request goes through; without --revocation-allow-host the proxy decides where they may go")
	c.fs.DurationVar(&cfg.anchorEvery, "journal-anchor-interval", time.Hour, "how often the journal head is timestamped")
	cfg.mail.register(c)
	cfg.evidenceLoops.register(c)
	cfg.identity.register(c)
	cfg.signers.register(c)
	cfg.node.register(c)
	if err := c.parse(args, stderr); err != nil {
		return cfg, err
	}
	return cfg, cfg.check()
}

// check refuses flags that contradict each other, before anything opens.
func (cfg *serveConfig) check() error {
	var err error
	if cfg.mailConfig, err = cfg.mail.config(); err != nil {
		return err
	}
	if cfg.evidenceLoops.retry <= 0 || cfg.evidenceLoops.probe <= 0 || cfg.evidenceLoops.grace <= 0 {
		return usagef("chamber serve: --evidence-retry-interval, --readiness-probe-interval and --evidence-orphan-grace must be positive")
	}
	if cfg.node.id != "" && !strings.HasPrefix(cfg.database, "postgres://") && !strings.HasPrefix(cfg.database, "postgresql://") {
		return usagef("chamber serve: --node-id needs PostgreSQL (--database postgres://…); SQLite serves a single node, without --node-id")
	}
	if cfg.node.natIPs != "" {
		if cfg.node.id == "" || cfg.media.natIP != "" {
			return usagef("chamber serve: --node-nat-ips needs --node-id and replaces --nat-ip")
		}
		if cfg.media.natIP, err = cfg.node.natIP(); err != nil {
			return err
		}
	}
	if cfg.trustedProxies, err = cfg.identity.check(); err != nil {
		return err
	}
	if cfg.confirmation, err = cfg.identity.confirmation(); err != nil {
		return err
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return usagef("chamber serve: --tls-cert and --tls-key go together")
	}
	return nil
}

// record is what keeps the record: the database, the evidence store, the
// journal, and the authorities and trust the record's signatures and
// timestamps rest on.
type record struct {
	db        *database.DB
	store     evidence.Store
	jnl       *journal.Journal
	authority *pki.Authority
	// stamper timestamps the journal's anchors and signatures: the
	// configured authority, or the built-in one in-process (the same one
	// served at POST /tsa).
	stamper     journal.Timestamper
	verifyToken journal.TokenVerifier
	trusted     []*x509.Certificate // Chamber's CA and --trust: what verification trusts
	configured  []*x509.Certificate // --trust alone
	egress      pki.Egress
	seal        pki.Signer // the institution's seal (bundles)
}

func (cfg serveConfig) openRecord(ctx context.Context, db *database.DB, log *slog.Logger) (*record, error) {
	rc := &record{db: db}
	var where string
	var err error
	if rc.store, where, err = openEvidence(ctx, cfg.dataDir, cfg.s3, log); err != nil {
		return nil, err
	}
	log.Info("evidence store ready", "location", where)
	if rc.authority, err = pki.LoadOrCreateDev(pkiDir(cfg.dataDir), cfg.publicURL, log); err != nil {
		return nil, fmt.Errorf("development PKI: %w", err)
	}
	rc.stamper = rc.authority.TSA()
	if cfg.tsaURL != "" {
		rc.stamper = &pki.TSAClient{URL: cfg.tsaURL}
	}
	if err := cfg.loadTrust(rc); err != nil {
		return nil, err
	}
	rc.jnl = journal.New(journal.Config{DB: db, Timestamper: rc.stamper, Logger: log})
	// Journal entries the database cannot take when they happen wait here.
	if err := rc.jnl.UseOutbox(filepath.Join(cfg.dataDir, "outbox", "journal")); err != nil {
		return nil, err
	}
	return rc, nil
}

// loadTrust reads the roots, the egress policy and the seal.
func (cfg serveConfig) loadTrust(rc *record) error {
	var err error
	if rc.verifyToken, err = tokenVerifier(cfg.dataDir, cfg.trust...); err != nil {
		return err
	}
	if rc.trusted, err = trustedCerts(cfg.dataDir, cfg.trust); err != nil {
		return err
	}
	if rc.egress, err = cfg.egress(rc.authority); err != nil {
		return err
	}
	if rc.configured, err = loadCerts(cfg.trust); err != nil {
		return err
	}
	// Revocation data is fetched only for chains that reach Chamber's CA
	// or a --trust root, and only as the egress policy allows.
	rc.authority.SetRevocationChecks(pki.RevocationChecks{Client: rc.egress.Client(), Roots: rc.configured})
	rc.seal, err = cfg.sealIdentity(rc.authority)
	return err
}

// services are the feature packages' services and the sign-in around them.
type services struct {
	sessions  *sessions.Service
	documents *documents.Service
	acts      *acts.Service
	rec       *recording.Controller
	prov      *signin.Provider // nil without an OpenID provider
	boot      *api.Bootstrap
	failures  *api.FailureLimiter
}

func (cfg serveConfig) newServices(ctx context.Context, rc *record, log *slog.Logger) (*services, error) {
	sv := &services{failures: api.NewAuthFailureLimiter()}
	var err error
	if sv.prov, err = cfg.identity.provider(cfg.publicURL, log); err != nil {
		return nil, err
	}
	sv.sessions = cfg.sessionService(rc, sv.prov, log)
	if sv.boot, err = cfg.identity.announceSignIn(ctx, sv.sessions, sv.prov, cfg.publicURL, log); err != nil {
		return nil, err
	}
	if sv.documents, err = cfg.documentService(rc, log); err != nil {
		return nil, err
	}
	sv.acts = acts.New(acts.Config{
		DB: rc.db, Journal: rc.jnl, Store: rc.store, Logger: log, Retention: time.Duration(cfg.retention),
		Principals: principalsOf(sv.sessions), Documents: sv.documents,
	})
	sv.rec = recording.New(recording.Config{
		DB: rc.db, Journal: rc.jnl, Store: rc.store, Logger: log, Scope: recordingScope{sv.sessions},
		SpoolDir: filepath.Join(cfg.dataDir, "spool"), Retention: time.Duration(cfg.retention),
		// ffmpeg and pdftoppm from PATH; without ffmpeg, no composite.
		Composite: recording.CompositeConfig{TempDir: filepath.Join(cfg.dataDir, "tmp"), Documents: recording.DocumentsOf(sv.documents)},
	})
	// Whatever a crash left mid-recording is stored before anything new starts.
	if err := sv.rec.Recover(ctx); err != nil {
		log.Error("recovering interrupted recordings", "err", err)
	}
	return sv, nil
}

func (cfg serveConfig) sessionService(rc *record, prov *signin.Provider, log *slog.Logger) *sessions.Service {
	sessCfg := sessions.Config{
		DB: rc.db, Journal: rc.jnl, Logger: log, PublicURL: cfg.publicURL,
		Anchor:            func(ctx context.Context) error { _, err := rc.jnl.Anchor(ctx); return err },
		Mail:              cfg.mailConfig,
		BrowserSessionTTL: cfg.identity.sessionMaxAge, BrowserIdleTimeout: cfg.identity.sessionIdle,
		RevalidateEvery: cfg.identity.checkEvery,
	}
	if prov != nil {
		sessCfg.Revalidate = prov.Revalidate
	}
	if cfg.mailConfig != nil {
		log.Info("invitation e-mail on", "smtp", cfg.mailConfig.Sender, "from", cfg.mailConfig.From.Email, "reminders", cfg.mail.reminders.String())
	}
	return sessions.New(sessCfg)
}

func (cfg serveConfig) documentService(rc *record, log *slog.Logger) (*documents.Service, error) {
	officials, err := cfg.signingIdentities(rc.db, rc.jnl, rc.authority, log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.dataDir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	cfg.identity.announceConfirmation(cfg.confirmation, log)
	return documents.New(documents.Config{
		DB: rc.db, Journal: rc.jnl, Store: rc.store, Logger: log,
		MaxUpload: int64(cfg.maxUpload), Retention: time.Duration(cfg.retention),
		TempDir: filepath.Join(cfg.dataDir, "tmp"),
		Signing: &documents.Signing{
			Signers: officials, Principals: rc.authority, Check: rc.authority.CheckCertificate, TSA: rc.stamper,
			// The roots are the anchors of the chains whose revocation
			// data the /DSS gets, and are embedded with it.
			Certificates: append([]*x509.Certificate{rc.authority.Root()}, rc.configured...),
			HTTPClient:   rc.egress.Client(),
			Confirmation: cfg.confirmation, ReauthMaxAge: cfg.identity.reauthMaxAge,
		},
	}), nil
}

// media is the signalling server and, with several nodes, this node.
type media struct {
	sig    *signaling.Server
	node   *clusterNode // nil on a single node
	signal http.HandlerFunc
}

// startMedia starts the signalling server and the cluster node, and plugs
// them in where the services tell rooms what changed.
func (cfg serveConfig) startMedia(ctx context.Context, rc *record, sv *services, log *slog.Logger) (*media, error) {
	sigCfg := cfg.media.signalingConfig(cfg.publicURL)
	hooks := sessionHooks{svc: sv.sessions, recording: sv.rec, acts: sv.acts, log: log, failures: sv.failures, clients: api.NewClientAddrs(cfg.trustedProxies)}
	sigCfg.Logger, sigCfg.Authenticator, sigCfg.Permissions, sigCfg.Hooks, sigCfg.Recorder = log, hooks, hooks, hooks, sv.rec
	sigCfg.Audience = hooks
	// The cascade: gallery observers beyond the threshold go to other
	// nodes (cluster mode only; the cluster is wired in below).
	gallery := &cascade{}
	if cfg.node.id != "" {
		sigCfg.Cascade, sigCfg.GalleryThreshold = gallery, cfg.node.galleryThreshold
	}
	sigCfg.GalleryRole, sigCfg.RelayParticipant = string(access.Observer), sessions.Gallery
	sigCfg.Refresh = func(ctx context.Context, id uuid.UUID) {
		if _, err := sv.sessions.Refresh(ctx, id); err != nil {
			log.Warn("re-reading a room served as a cascade edge", "session", id, "err", err)
		}
	}
	sig, err := signaling.New(sigCfg)
	if err != nil {
		return nil, usagef("chamber serve: media: %v", err)
	}
	if err := sig.Start(ctx); err != nil {
		return nil, usagef("chamber serve: media: %v", err)
	}
	node, err := startCluster(ctx, cfg.node, cfg.database, cfg.publicURL, rc.db, rc.jnl, sig, sv.sessions, sv.rec, log)
	if err != nil {
		sig.Close()
		return nil, err
	}
	md := &media{sig: sig, node: node, signal: sig.HandleSignal}
	var roomNotifier sessions.Notifier = sig
	gallery.cn = node
	if node != nil {
		// Events of changes made here reach each room's home node too.
		roomNotifier = clusterNotifier{Server: sig, cn: node}
		md.signal = node.signal(node.Router(http.HandlerFunc(sig.HandleSignal), node.claimed, failHTTP))
	}
	sv.sessions.SetNotifier(roomNotifier)
	sv.acts.SetNotifier(roomNotifier)
	sv.documents.SetNotifier(roomNotifier)
	sv.rec.SetNotifier(sig)
	return md, nil
}

// probes are the write probes readiness reports.
type probes struct{ db, store *api.Probe }

// runBackground starts the work that runs beside the requests: anchors,
// mail, what a crash or an outage left owed, reconciliation, probes,
// sweeps and the node's heartbeat. stop ends it and waits.
func (cfg serveConfig) runBackground(ctx context.Context, rc *record, sv *services, node *clusterNode, log *slog.Logger) (probes, func()) {
	cat := catalog.New(catalog.Config{DB: rc.db, Store: rc.store, Journal: rc.jnl, Logger: log, Grace: cfg.evidenceLoops.grace,
		Pending: []func(context.Context, uuid.UUID) ([]string, error){sv.rec.PendingWrites, sv.acts.PendingWrites}})
	pr := probes{db: api.NewProbe(rc.db.Probe, cfg.evidenceLoops.probe), store: api.NewProbe(rc.store.Probe, cfg.evidenceLoops.probe)}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { rc.jnl.RunAnchors(bg, cfg.anchorEvery) })
	wg.Go(func() { sv.sessions.RunMail(bg) })
	// What a crash or an outage left owed is retried while the server
	// runs, not only at the next start.
	retry := cfg.evidenceLoops.retry
	wg.Go(func() { rc.jnl.RunOutbox(bg, retry) })
	wg.Go(func() { sv.rec.RunRecovery(bg, retry) })
	wg.Go(func() { sv.rec.RunComposites(bg) })
	wg.Go(func() { sv.acts.RunArchiver(bg, retry) })
	wg.Go(func() { cat.Run(bg, retry, cfg.evidenceLoops.reconcile) })
	wg.Go(func() { pr.db.Run(bg) })
	wg.Go(func() { pr.store.Run(bg) })
	wg.Go(func() { sv.sessions.RunSweeps(bg, cfg.identity.sweepEvery) })
	if node != nil {
		wg.Go(func() { node.Run(bg) })
		wg.Go(func() { node.Listen(bg) })
	}
	return pr, func() {
		cancel()
		wg.Wait()
	}
}

// handler is the public listener's handler: the API, the pages, the
// development PKI, behind the security headers and, with several nodes,
// the node's front (which sends a room's requests to its home).
func (cfg serveConfig) handler(rc *record, sv *services, md *media, pr probes, log *slog.Logger) (http.Handler, error) {
	webApp, err := web.New(web.Config{PublicURL: cfg.publicURL})
	if err != nil {
		return nil, err
	}
	router := api.New(api.Config{
		Logger: log,
		// Ready when each answers now and its latest write probe passed.
		Ready: readiness(md.node, map[string]api.Check{
			"database": api.All(rc.db.PingContext, pr.db.Check),
			"evidence": api.All(rc.store.Ping, pr.store.Check),
		}),
		Sessions:  sv.sessions,
		Documents: sv.documents,
		Journal:   rc.jnl,
		Acts:      sv.acts,
		Recording: sv.rec,
		Bundle: &bundle.Config{Store: rc.store, Journal: rc.jnl, Signer: rc.seal, TSA: rc.stamper,
			Record: func(ctx context.Context, sid uuid.UUID) ([]catalog.Object, error) {
				return catalog.Session(ctx, rc.db, sid)
			}},
		TempDir:        filepath.Join(cfg.dataDir, "tmp"),
		VerifyToken:    rc.verifyToken,
		Signal:         md.signal,
		SignIn:         sv.prov,
		DevSignIn:      api.DevSignIn(cfg.identity.devSignIn),
		Bootstrap:      sv.boot,
		PublicURL:      cfg.publicURL,
		TrustedProxies: cfg.trustedProxies,
		AuthFailures:   sv.failures,
		Verify: &api.VerifyConfig{
			// Chamber's CA and --trust, never the system's web roots.
			Roots:   pades.TrustStore(rc.trusted...),
			MaxSize: int64(cfg.maxUpload),
			TempDir: filepath.Join(cfg.dataDir, "tmp"),
			// With a configured TSA this is a production setup: the
			// development TSA's timestamps are not accepted.
			RejectDevelopment: cfg.tsaURL != "",
		},
		Mount: []func(route func(string, api.Op, http.Handler)){cfg.pkiRoutes(rc.authority), webRoutes(webApp)},
	})
	// Every response carries the security headers that suit it; pages
	// replace them with their own.
	var h http.Handler = web.APIHeaders(router)
	if md.node != nil {
		h = md.node.front(h)
	}
	if cfg.https() {
		h = api.StrictTransport(h)
	}
	return h, nil
}

// pkiRoutes serves the development CA and, while it is the TSA, the
// development timestamp authority — rate-limited: it signs for anyone.
func (cfg serveConfig) pkiRoutes(authority *pki.Authority) func(route func(string, api.Op, http.Handler)) {
	return func(route func(string, api.Op, http.Handler)) {
		if cfg.tsaURL == "" {
			route("POST /tsa", api.Op{Summary: "Development RFC 3161 timestamp authority (only without --tsa-url; rate-limited; its timestamps are development-grade)", Tags: []string{"pki"},
				RawBody: []string{"application/timestamp-query"}, RawResponse: "application/timestamp-reply", Errors: []int{400, 413, 415, 429}},
				authority.TSA().Limited(pki.DevTSALimit))
		}
		pkiHandler := authority.Handler()
		route("GET "+pki.PathCACert, api.Op{Summary: "Development CA certificate (DER)", Tags: []string{"pki"}, RawResponse: "application/pkix-cert"}, pkiHandler)
		route("GET /pki/ca.pem", api.Op{Summary: "Development CA certificate (PEM)", Tags: []string{"pki"}, RawResponse: "application/x-pem-file"}, pkiHandler)
		route("GET "+pki.PathCRL, api.Op{Summary: "Development CA revocation list (DER)", Tags: []string{"pki"}, RawResponse: "application/pkix-crl"}, pkiHandler)
	}
}

// webRoutes serves the browser pages.
func webRoutes(webApp *web.Web) func(route func(string, api.Op, http.Handler)) {
	return func(route func(string, api.Op, http.Handler)) {
		for _, p := range webApp.Pages() {
			route(p.Pattern, api.Op{Summary: p.Summary, Hidden: true, RawResponse: p.ContentType}, webApp.Headers(p.Handler))
		}
	}
}

// https reports whether browsers reach Chamber over HTTPS: its own TLS, or
// a proxy's in front of it (an https public URL). Responses then carry
// Strict-Transport-Security.
func (cfg serveConfig) https() bool {
	return cfg.tlsCert != "" || strings.HasPrefix(strings.ToLower(cfg.publicURL), "https://")
}

// defaultMetricsListen keeps the metrics on the loopback interface, on the
// port of OpenTelemetry's Prometheus exporter (Prometheus's own 9090 is
// often taken on the same host).
const defaultMetricsListen = "127.0.0.1:9464"

// serveMetrics serves GET /metrics on addr ("off": nowhere) until the
// returned stop is called. Room and peer counts are the operator's, not
// the public's: the public listener does not serve them.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, admin map[string]http.Handler) (stop func(), err error) {
	if addr == "off" || addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("chamber serve: --metrics-listen %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", api.Metrics())
	// Operator actions (POST /drain with several nodes) live here too: the
	// metrics listener is the operator's, never the public's.
	for pattern, h := range admin {
		mux.Handle(pattern, h)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	log.Info("metrics serving", "listen", ln.Addr().String())
	return func() {
		_ = srv.Close() // scrapes are short and idempotent: no drain
		<-done
	}, nil
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

// egress is the policy of every revocation request: the allow-list and
// proxy given, and Chamber's own CRL answered in process.
func (cfg serveConfig) egress(authority *pki.Authority) (pki.Egress, error) {
	e := pki.Egress{AllowHosts: cfg.revocationAllow}
	if cfg.egressProxy != "" {
		u, err := url.Parse(cfg.egressProxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return pki.Egress{}, usagef("chamber serve: --egress-proxy %q: want http://host:port", cfg.egressProxy)
		}
		e.Proxy = u
	}
	for _, crl := range authority.CRLURLs() {
		if e.Local == nil {
			e.Local = map[string]http.Handler{}
		}
		e.Local[crl] = authority.Handler()
	}
	return e, nil
}

// sealIdentity is the institution's seal, which seals evidence bundles
// (officials sign documents with their own identities): the configured
// one, else the development seal.
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
