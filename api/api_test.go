package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/sessions"
)

func TestOpenAPICoversEveryRoute(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Pages   []string                             `json:"x-pages"`
	}
	h.must(h.do("GET", "/api/v1/openapi.json", "", nil), 200).decode(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	for _, r := range h.api.Routes() {
		op, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]
		if !ok {
			if slices.Contains(doc.Pages, strings.TrimSpace(r.Method+" "+r.Path)) {
				continue
			}
			t.Errorf("route %s %s is served but missing from /api/v1/openapi.json", r.Method, r.Path)
			continue
		}
		if s, _ := op["summary"].(string); s == "" {
			t.Errorf("route %s %s has no summary", r.Method, r.Path)
		}
		if _, ok := op["responses"]; !ok {
			t.Errorf("route %s %s documents no responses", r.Method, r.Path)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
		code   string
	}{
		{"unknown path", "GET", "/api/v1/nothing", "", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/healthz", "", nil, 405, "method_not_allowed"},
		{"no token", "GET", "/api/v1/sessions", "", nil, 401, "unauthenticated"},
		{"bad token", "GET", "/api/v1/sessions", "cha_nonsense", nil, 401, "unauthenticated"},
		{"retired staff token", "GET", "/api/v1/sessions", "chs_" + strings.Repeat("A", 43), nil, 401, "unauthenticated"},
		{"malformed json", "POST", "/api/v1/sessions", clerk, `{"kind": "hearing",`, 400, "malformed_json"},
		{"empty body", "POST", "/api/v1/sessions", clerk, ``, 400, "malformed_json"},
		{"wrong type", "POST", "/api/v1/sessions", clerk, `{"kind": 5}`, 400, "malformed_json"},
		{"unknown field", "POST", "/api/v1/sessions", clerk, `{"kind":"hearing","title":"x","judge":"me"}`, 400, "unknown_field"},
		{"two values", "POST", "/api/v1/sessions", clerk, `{"kind":"hearing","title":"x"} {}`, 400, "malformed_json"},
		{"oversized", "POST", "/api/v1/sessions", clerk, `{"title":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "too_large"},
		{"missing title", "POST", "/api/v1/sessions", clerk, map[string]any{"kind": "hearing"}, 422, "invalid"},
		{"bad kind", "POST", "/api/v1/sessions", clerk, map[string]any{"kind": "trial", "title": "x"}, 422, "invalid"},
		{"bad id", "GET", "/api/v1/sessions/not-a-uuid", clerk, nil, 404, "not_found"},
		{"unknown id", "GET", "/api/v1/sessions/8d3c8c3e-6b2c-4c47-9d0c-3b8f1b2f4a11", clerk, nil, 404, "not_found"},
		{"bad date filter", "GET", "/api/v1/sessions?from=yesterday", clerk, nil, 400, "bad_query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.token, tt.body)
			if r.Status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tt.method, tt.path, r.Status, r.Body, tt.status, tt.code)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
		})
	}
}

func TestFailedAuthIsRateLimited(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	var last response
	for range 12 {
		last = h.do("GET", "/api/v1/sessions", "cha_"+strings.Repeat("A", 43), nil)
	}
	if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after 12 failures: %d %s (Retry-After %q)", last.Status, last.Body, last.Header.Get("Retry-After"))
	}
	// A good token still passes: the limiter slows guessing, it never
	// locks out everyone behind one address.
	good := h.staffToken(access.Clerk)
	if r := h.do("GET", "/api/v1/sessions", good, nil); r.Status != http.StatusOK {
		t.Fatalf("good token from a blocked address: %d %s", r.Status, r.Body)
	}
}

// TestHearingOverREST walks a hearing through the REST API on both engines.
func TestHearingOverREST(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		clerk := h.staffToken(access.Clerk)
		when := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "case_number": "2-26-1", "scheduled_at": when, "public": true})
		sid := s.ID.String()
		judge := h.official(clerk, s.ID, "Judge Saar", access.Judge)
		party := h.invite(judge.Token, s.ID, "Mari Tamm", access.Party)
		counsel := h.invite(judge.Token, s.ID, "Counsel", access.Counsel)

		// Filtering by date, kind and state.
		var list []sessions.Session
		day := time.Now().Add(48 * time.Hour).UTC().Format(time.DateOnly)
		h.must(h.do("GET", "/api/v1/sessions?kind=hearing&state=scheduled&from="+day, clerk, nil), 200).decode(t, &list)
		if len(list) != 1 || list[0].ID != s.ID {
			t.Fatalf("filtered list = %+v", list)
		}
		h.must(h.do("GET", "/api/v1/sessions?kind=notarisation", clerk, nil), 200).decode(t, &list)
		if len(list) != 0 {
			t.Fatalf("kind filter returned %d", len(list))
		}

		base := "/api/v1/sessions/" + sid + "/participants/"
		h.must(h.do("POST", base+party.ParticipantID.String()+"/admit", judge.Token, nil), 200)
		h.must(h.do("POST", base+party.ParticipantID.String()+"/admit", judge.Token, nil), 409)
		h.must(h.do("POST", base+counsel.ParticipantID.String()+"/move", judge.Token, map[string]any{"space": "main"}), 200)
		var c sessions.Consultation
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/consultations", judge.Token,
			map[string]any{"participant_ids": []string{party.ParticipantID.String(), counsel.ParticipantID.String()}}), 201).decode(t, &c)
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/consultations/"+c.ID.String()+"/close", judge.Token, nil), 204)
		h.must(h.do("POST", base+party.ParticipantID.String()+"/mute", judge.Token, map[string]any{"audio": true}), 200)
		var ps []sessions.Participant
		h.must(h.do("GET", "/api/v1/sessions/"+sid+"/participants", party.Token, nil), 200).decode(t, &ps)
		if len(ps) != 3 {
			t.Fatalf("participants = %d", len(ps))
		}
		// A party cannot read the journal; the judge can.
		if r := h.do("GET", "/api/v1/sessions/"+sid+"/journal", party.Token, nil); r.Status != 403 || !strings.Contains(string(r.Body), "see_journal") {
			t.Fatalf("party reading journal: %d %s", r.Status, r.Body)
		}
		h.must(h.do("POST", base+party.ParticipantID.String()+"/remove", judge.Token, nil), 204)
		if r := h.do("GET", "/api/v1/sessions/"+sid, party.Token, nil); r.Status != 401 || r.errorCode() != "token_revoked" {
			t.Fatalf("removed party: %d %s", r.Status, r.Body)
		}
		// Public link and an observer.
		var link sessions.PublicLink
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/public-link", clerk, nil), 201).decode(t, &link)
		token := link.Token
		h.must(h.do("GET", "/api/v1/public/"+token, "", nil), 200)
		var obs sessions.Invitation
		h.must(h.do("POST", "/api/v1/public/"+token+"/join", "", map[string]any{"name": "Reporter"}), 201).decode(t, &obs)
		if obs.Role != access.Observer {
			t.Fatalf("public joiner is %s", obs.Role)
		}
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/close", judge.Token, nil), 200)
		var entries []journal.Entry
		h.must(h.do("GET", "/api/v1/sessions/"+sid+"/journal", judge.Token, nil), 200).decode(t, &entries)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		for _, want := range []string{"session.created", "staff.assigned", "invitation.issued", "participant.admitted", "participant.moved",
			"consultation.opened", "consultation.closed", "participant.muted", "participant.removed", "public_link.created", "session.closed"} {
			if !slices.Contains(actions, want) {
				t.Errorf("journal lacks %s", want)
			}
		}
		admin := h.staffToken(access.Admin)
		var v struct {
			Valid bool `json:"valid"`
		}
		h.must(h.do("GET", "/api/v1/journal/verify", admin, nil), 200).decode(t, &v)
		if !v.Valid {
			t.Fatal("journal does not verify")
		}
		h.must(h.do("GET", "/api/v1/journal/verify", clerk, nil), 403)
		_ = fmt.Sprint()
	})
}
