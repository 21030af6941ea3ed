package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestPlaybackGrant: a grant opens its session's files until it expires;
// one signed by another process, altered, or for another session does
// not.
func TestPlaybackGrant(t *testing.T) {
	p, other := newPlayback(), newPlayback()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	sid := uuid.New()
	g := grant{Session: sid, Actor: "staff:x", Expires: now.Add(playbackGrantTTL).Unix()}
	v := p.sign(g)
	tampered := []byte(v)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name  string
		value string
		sid   uuid.UUID
		at    time.Duration
		ok    bool
	}{
		{"fresh", v, sid, 0, true},
		{"nearly expired", v, sid, playbackGrantTTL - time.Second, true},
		{"expired", v, sid, playbackGrantTTL, false},
		{"another session", v, uuid.New(), 0, false},
		{"another process's", other.sign(g), sid, 0, false},
		{"altered", string(tampered), sid, 0, false},
		{"not a grant", "x", sid, 0, false},
		{"empty", "", sid, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.now = func() time.Time { return now.Add(tc.at) }
			if got, ok := p.verify(tc.value, tc.sid); ok != tc.ok || ok && got != g {
				t.Errorf("verify = %+v, %v; want %v", got, ok, tc.ok)
			}
		})
	}
}

// TestPlaybackStreamsBounded: beyond maxPlaybackStreams file responses in
// flight, a request is answered 503 with Retry-After, before anything is
// read from the store.
func TestPlaybackStreamsBounded(t *testing.T) {
	a := &API{log: slog.New(slog.DiscardHandler), playback: newPlayback(), authFailures: NewFailureLimiter(time.Second, 10)}
	for range maxPlaybackStreams {
		a.playback.streams <- struct{}{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sessions/{id}/recordings/{rid}/files/{name}", a.h(a.handleRecordingFile))
	sid := uuid.New()
	req := httptest.NewRequest("GET", "/api/v1/sessions/"+sid.String()+"/recordings/"+uuid.NewString()+"/files/x.webm", nil)
	req.AddCookie(&http.Cookie{Name: playbackCookie, Value: a.playback.sign(grant{Session: sid, Expires: time.Now().Add(time.Minute).Unix()})})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}
