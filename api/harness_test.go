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
	"github.com/chamber-court/chamber/signers/signerstest"
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
	return buildHarness(t, db, store, maxUpload, nil, actOpts...)
}

// buildHarness is newHarnessWithStore with a last word on the API's
// configuration, which sees the server's URL (for redirect URIs).
func buildHarness(t testing.TB, db *database.DB, store evidence.Store, maxUpload int64, apiOpt func(cfg *api.Config, url string), actOpts ...func(*acts.Config)) *harness {
	t.Helper()
	return buildHarnessSigning(t, db, store, maxUpload, apiOpt, nil, actOpts...)
}

// buildHarnessSigning is buildHarness whose signing configuration signOpt
// adjusts (the confirmation policy).
func buildHarnessSigning(t testing.TB, db *database.DB, store evidence.Store, maxUpload int64, apiOpt func(cfg *api.Config, url string), signOpt func(*documents.Signing), actOpts ...func(*acts.Config)) *harness {
	t.Helper()
	authority, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	tsa := authority.TSA()
	jnl := journal.New(journal.Config{DB: db, Timestamper: tsa})
	svc := sessions.New(sessions.Config{DB: db, Journal: jnl, Logger: discard, PublicURL: "http://chamber.test"})
	signing := &documents.Signing{Signers: signerstest.AutoIssue(t, db, jnl, authority), Principals: authority, Check: authority.CheckCertificate,
		TSA: tsa, Certificates: []*x509.Certificate{authority.Root()}}
	if signOpt != nil {
		signOpt(signing)
	}
	docs := documents.New(documents.Config{DB: db, Journal: jnl, Store: store, Logger: discard, MaxUpload: maxUpload,
		Retention: time.Hour, TempDir: t.TempDir(), Signing: signing})
	actCfg := acts.Config{DB: db, Journal: jnl, Store: store, Logger: discard, Retention: time.Hour,
		Principals: principalsOf(svc), Documents: docs}
	for _, opt := range actOpts {
		opt(&actCfg)
	}
	actSvc := acts.New(actCfg)
	roots := x509.NewCertPool()
	roots.AddCert(authority.Root())
	// The test refreshes the probe itself, as Run would on its interval.
	storeProbe := api.NewProbe(store.Probe, time.Hour)
	rec := recording.New(recording.Config{DB: db, Journal: jnl, Store: store, Logger: discard, Scope: recordAll{},
		SpoolDir: t.TempDir(), Retention: time.Hour})
	srv := httptest.NewUnstartedServer(nil)
	cfg := api.Config{Logger: discard, Sessions: svc, Documents: docs, Journal: jnl, Acts: actSvc, Recording: rec,
		Bundle: &bundle.Config{Store: store, Journal: jnl, Signer: authority.Seal().AsSigner(), TSA: tsa,
			Record: func(ctx context.Context, sid uuid.UUID) ([]catalog.Object, error) {
				return catalog.Session(ctx, db, sid)
			}},
		Verify:    &api.VerifyConfig{Roots: roots, MaxSize: maxUpload, TempDir: t.TempDir()},
		TempDir:   t.TempDir(),
		Ready:     map[string]api.Check{"database": db.PingContext, "evidence": api.All(store.Ping, storeProbe.Check)},
		PublicURL: "http://" + srv.Listener.Addr().String(),
	}
	if apiOpt != nil {
		apiOpt(&cfg, cfg.PublicURL)
	}
	a := api.New(cfg)
	srv.Config.Handler = a
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, db: db, jnl: jnl, api: a, roots: roots, store: store, acts: actSvc, recording: rec, storeProbe: storeProbe}
}

// recordAll lets everything be recorded (the harness has no media).
type recordAll struct{}

func (recordAll) MayRecord(uuid.UUID, uuid.UUID, string) bool { return true }

// staffToken provisions a staff member and returns an API token carrying
// every scope their role may hold.
func (h *harness) staffToken(role access.Role) string {
	h.t.Helper()
	return h.namedStaff("Staff "+string(role), role).Token
}

// person is someone acting in a session: a staff member by API token, or
// a participant by invitation token.
type person struct {
	Token         string
	StaffID       uuid.UUID
	ParticipantID uuid.UUID
}

// namedStaff provisions a staff member with an API token of every scope
// their role may hold.
func (h *harness) namedStaff(name string, role access.Role) person {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.svc.AddStaff(ctx, "system", sessions.NewStaff{Name: name, Role: role})
	if err != nil {
		h.t.Fatal(err)
	}
	scopes := []string{sessions.ScopeSessionsWrite, sessions.ScopeRegisterWrite}
	if role == access.Admin {
		scopes = append(scopes, sessions.ScopeStaffAdmin)
	}
	tok, err := h.svc.AddAPIToken(ctx, "system", st.ID, sessions.NewAPIToken{Name: "test", Scopes: scopes})
	if err != nil {
		h.t.Fatal(err)
	}
	return person{Token: tok.Token, StaffID: st.ID}
}

// official provisions a staff member of an official role and has the
// holder of by assign them to the session over REST.
func (h *harness) official(by string, sid uuid.UUID, name string, role access.Role) person {
	h.t.Helper()
	o := h.namedStaff(name, role)
	var part sessions.Participant
	h.must(h.do("POST", "/api/v1/sessions/"+sid.String()+"/assignments", by, map[string]any{"staff_id": o.StaffID}), 201).decode(h.t, &part)
	o.ParticipantID = part.ID
	return o
}

// self is a staff member entering a session they created: they take part
// as themselves.
func (h *harness) self(token string, sid uuid.UUID) person {
	h.t.Helper()
	var e sessions.Entry
	h.must(h.do("POST", "/api/v1/sessions/"+sid.String()+"/enter", token, nil), 200).decode(h.t, &e)
	return person{Token: token, StaffID: *e.Participant.StaffID, ParticipantID: e.Participant.ID}
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

// principalsOf is cmd/chamber's wiring of the act service to the session
// layer's principals.
func principalsOf(svc *sessions.Service) func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
	return func(ctx context.Context, sid uuid.UUID) ([]acts.Principal, error) {
		ps, err := svc.ParticipantsOf(ctx, sid)
		if err != nil {
			return nil, err
		}
		var out []acts.Principal
		for _, p := range ps {
			if p.Role == access.Principal && !p.Revoked {
				out = append(out, acts.Principal{ID: p.ID, Name: p.Name})
			}
		}
		return out, nil
	}
}
