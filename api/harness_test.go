package api_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
)

var discard = slog.New(slog.DiscardHandler)

// harness is the HTTP API over a real database, served by httptest.
type harness struct {
	t     testing.TB
	srv   *httptest.Server
	roots *x509.CertPool
	store evidence.Store
	svc   *sessions.Service
	db    *database.DB
	jnl   *journal.Journal
	api   *api.API

	acts       *acts.Service
	recording  *recording.Controller
	storeProbe *api.Probe
}

func newHarness(t testing.TB, db *database.DB, actOpts ...func(*acts.Config)) *harness {
	t.Helper()
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessWithStore(t, db, store, 8<<20, actOpts...)
}

// newHarnessWithStore serves the API over db and store, with a development
// PKI whose timestamp authority runs in process. actOpts adjust the act
// service's configuration (a test's own limits).
func newHarnessWithStore(t testing.TB, db *database.DB, store evidence.Store, maxUpload int64, actOpts ...func(*acts.Config)) *harness {
	t.Helper()
	authority, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	tsa := authority.TSA()
	jnl := journal.New(db, tsa, discard)
	svc := sessions.New(sessions.Config{DB: db, Journal: jnl, Log: discard, PublicURL: "http://chamber.test"})
	actCfg := acts.Config{DB: db, Journal: jnl, Store: store, Log: discard, Retention: time.Hour,
		Principals: func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
			return api.Principals(ctx, svc, sid)
		}}
	for _, opt := range actOpts {
		opt(&actCfg)
	}
	actSvc := acts.New(actCfg)
	docs := documents.New(documents.Config{DB: db, Journal: jnl, Store: store, Log: discard, MaxUpload: maxUpload,
		Retention: time.Hour, TempDir: t.TempDir(),
		Signing: &documents.Signing{Seal: authority.Seal().AsSigner(), Principals: authority, Check: authority.CheckCertificate,
			TSA: tsa, Certificates: []*x509.Certificate{authority.Root()}}})
	roots := x509.NewCertPool()
	roots.AddCert(authority.Root())
	// The test refreshes the probe itself, as Run would on its interval.
	storeProbe := api.NewProbe(store.Probe, time.Hour)
	rec := recording.New(recording.Config{DB: db, Journal: jnl, Store: store, Log: discard, Policy: recordAll{},
		SpoolDir: t.TempDir(), Retention: time.Hour})
	a := api.New(api.Config{Log: discard, Sessions: svc, Documents: docs, Journal: jnl, Acts: actSvc, Recording: rec,
		Bundle: &bundle.Config{Store: store, Journal: jnl, Signer: authority.Seal().AsSigner(), TSA: tsa,
			Record: func(ctx context.Context, sid uuid.UUID) ([]catalog.Object, error) {
				return catalog.Session(ctx, db, sid)
			}},
		Verify:  &api.VerifyConfig{Roots: roots, MaxSize: maxUpload, TempDir: t.TempDir()},
		TempDir: t.TempDir(),
		Ready:   map[string]api.Check{"database": db.PingContext, "evidence": api.All(store.Ping, storeProbe.Check)}})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, db: db, jnl: jnl, api: a, roots: roots, store: store, acts: actSvc, recording: rec, storeProbe: storeProbe}
}

// recordAll lets everything be recorded (the harness has no media).
type recordAll struct{}

func (recordAll) MayRecord(uuid.UUID, uuid.UUID, string) bool { return true }

func (h *harness) staffToken(role access.Role) string {
	h.t.Helper()
	_, token, err := h.svc.AddStaff(context.Background(), "Staff "+string(role), role)
	if err != nil {
		h.t.Fatal(err)
	}
	return token
}

type response struct {
	Status int
	Body   []byte
	Header http.Header
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r response) errorCode() string {
	var e api.ErrorBody
	json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// do sends a request with an optional bearer token and JSON body (a string
// is sent verbatim, anything else is marshalled).
func (h *harness) do(method, path, token string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

// raw sends a non-JSON body.
func (h *harness) raw(method, path, token, contentType string, body []byte) response {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

func (h *harness) must(r response, status int) response {
	h.t.Helper()
	if r.Status != status {
		h.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

func (h *harness) createSession(token string, body map[string]any) sessions.Session {
	h.t.Helper()
	var s sessions.Session
	h.must(h.do("POST", "/api/v1/sessions", token, body), 201).decode(h.t, &s)
	return s
}

func (h *harness) invite(token string, sid uuid.UUID, name string, role access.Role) sessions.Invitation {
	h.t.Helper()
	var inv sessions.Invitation
	h.must(h.do("POST", "/api/v1/sessions/"+sid.String()+"/invitations", token, map[string]any{"name": name, "role": role}), 201).decode(h.t, &inv)
	return inv
}

func randomSuffix() string { return strings.ReplaceAll(uuid.NewString()[:8], "-", "") }
