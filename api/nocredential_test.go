package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
)

// TestNoCredentialSpendsNoBudget: a request without any credential (the
// console asking /me before its user signed in) is 401 however often it
// comes, and does not use up the address's failure budget; a wrong token
// from the same address still does.
func TestNoCredentialSpendsNoBudget(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	for i := range 30 {
		if r := h.do("GET", "/api/v1/me", "", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("request %d without a credential: %d %s", i+1, r.Status, r.Body)
		}
	}
	var last response
	for range 12 {
		last = h.do("GET", "/api/v1/me", "cha_"+strings.Repeat("A", 43), nil)
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("after 12 wrong tokens: %d %s", last.Status, last.Body)
	}
}
