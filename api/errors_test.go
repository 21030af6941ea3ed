package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
)

// Every kind has one status, and outages say so with a retry hint instead
// of looking like the caller's fault.
func TestFailMapsKinds(t *testing.T) {
	a := &API{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{"internal hides its text", errors.New("open /data/x: permission denied"), 500, "internal", ""},
		{"not found hides the wrapping text", fmt.Errorf("session 0f7…: %w", fault.NotFound), 404, "not_found", ""},
		{"invalid", fault.Invalidf("name", "required"), 422, "invalid", ""},
		{"bad request", BadRequest("malformed_json", "x"), 400, "malformed_json", ""},
		{"forbidden", &access.ForbiddenError{Role: access.Witness, Action: access.Upload}, 403, "forbidden", ""},
		{"expired", fault.Expired, 401, "token_expired", ""},
		{"too large", fault.New(fault.TooLarge, "over"), 413, "too_large", ""},
		{"rate limited", tooMany(3*time.Second, "x"), 429, "rate_limited", "3"},
		{"unavailable gets a default retry", fault.Wrap(fault.Unavailable, errors.New("dial"), "database unavailable"), 503, "unavailable", "2"},
		{"insufficient storage", fault.New(fault.InsufficientStorage, "disk full"), 507, "insufficient_storage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.fail(w, httptest.NewRequest(http.MethodGet, "/x", nil), tt.err)
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status || body.Error.Code != tt.code {
				t.Fatalf("got %d %q, want %d %q", w.Code, body.Error.Code, tt.status, tt.code)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.status == 500 && body.Error.Message != "internal error" {
				t.Errorf("500 leaked %q", body.Error.Message)
			}
		})
	}
	for k := fault.Internal; k <= fault.Canceled; k++ {
		if statusOf[k] == 0 {
			t.Errorf("kind %v has no HTTP status", k)
		}
	}
}
