package api_test

import (
	"context"
	"slices"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// TestPublicLinkRevokeAndRotate: a public link can be revoked (nobody joins
// through it any more, 401 token_revoked) and rotated (the old links die,
// a new one works); observers who joined before keep their own
// invitations. Only those who may issue links revoke them; each step is
// journalled.
func TestPublicLinkRevokeAndRotate(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		clerk := h.staffToken(access.Clerk)
		s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Public", "public": true})
		path := "/api/v1/sessions/" + s.ID.String()
		var first sessions.PublicLink
		h.must(h.do("POST", path+"/public-link", clerk, nil), 201).decode(t, &first)
		var watcher sessions.Invitation
		h.must(h.do("POST", "/api/v1/public/"+first.Token+"/join", "", map[string]any{"name": "Early viewer"}), 201).decode(t, &watcher)

		party := h.invite(clerk, s.ID, "Party", access.Party)
		h.must(h.do("DELETE", path+"/public-link", party.Token, nil), 403)
		h.must(h.do("POST", path+"/public-link/rotate", party.Token, nil), 403)

		h.must(h.do("DELETE", path+"/public-link", clerk, nil), 204)
		for _, r := range []response{
			h.do("GET", "/api/v1/public/"+first.Token, "", nil),
			h.do("POST", "/api/v1/public/"+first.Token+"/join", "", map[string]any{"name": "Late viewer"}),
		} {
			if r.Status != 401 || r.errorCode() != "token_revoked" {
				t.Fatalf("a revoked link: %d %s, want 401 token_revoked", r.Status, r.Body)
			}
		}
		// The observer who joined before stays.
		h.must(h.do("GET", path, watcher.Token, nil), 200)

		var second, third sessions.PublicLink
		h.must(h.do("POST", path+"/public-link/rotate", clerk, nil), 201).decode(t, &second)
		h.must(h.do("POST", "/api/v1/public/"+second.Token+"/join", "", map[string]any{"name": "Viewer"}), 201)
		h.must(h.do("POST", path+"/public-link/rotate", clerk, nil), 201).decode(t, &third)
		if r := h.do("GET", "/api/v1/public/"+second.Token, "", nil); r.Status != 401 || r.errorCode() != "token_revoked" {
			t.Fatalf("a rotated-out link: %d %s", r.Status, r.Body)
		}
		h.must(h.do("GET", "/api/v1/public/"+third.Token, "", nil), 200)

		private := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Private"})
		h.must(h.do("POST", "/api/v1/sessions/"+private.ID.String()+"/public-link/rotate", clerk, nil), 409)

		entries, err := h.jnl.Session(context.Background(), s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		for _, want := range []string{"public_link.created", "public_link.revoked", "public_link.rotated"} {
			if !slices.Contains(actions, want) {
				t.Errorf("the journal lacks %s: %v", want, actions)
			}
		}
	})
}
