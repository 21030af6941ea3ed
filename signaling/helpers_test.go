package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// tokens is the small token issuer the tests use until the Sessions work
// provides the real one.
type tokens struct {
	mu sync.Mutex
	m  map[string]Identity
}

func newTokens() *tokens { return &tokens{m: make(map[string]Identity)} }

func (t *tokens) issue(session uuid.UUID, name, role string) (string, Identity) {
	id := Identity{SessionID: session, ParticipantID: uuid.New(), Name: name, Role: role}
	tok := "tok-" + uuid.NewString()
	t.mu.Lock()
	t.m[tok] = id
	t.mu.Unlock()
	return tok, id
}

func (t *tokens) Authenticate(_ context.Context, session uuid.UUID, token string) (Identity, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.m[token]
	if !ok || id.SessionID != session {
		return Identity{}, fault.Unauthenticated
	}
	return id, nil
}

// testServer is a signalling server on loopback with ephemeral ports.
type testServer struct {
	*Server
	http    *httptest.Server
	tokens  *tokens
	session uuid.UUID
}

func newTestServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	tk := newTokens()
	cfg := Config{
		Logger:        testenv.Logger(t),
		Authenticator: tk,
		MediaUDPAddr:  "127.0.0.1:0",
		MediaTCPAddr:  "127.0.0.1:0",
		IdleTimeout:   30 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sessions/{id}/signal", s.HandleSignal)
	hs := httptest.NewServer(mux)
	ts := &testServer{Server: s, http: hs, tokens: tk, session: uuid.New()}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		hs.Close()
	})
	return ts
}

func (ts *testServer) url(session uuid.UUID) string {
	return "ws" + strings.TrimPrefix(ts.http.URL, "http") + "/api/v1/sessions/" + session.String() + "/signal"
}

// dial joins the test session as a new participant.
func (ts *testServer) dial(t testing.TB, name string, mod func(*client.Config)) (*client.Client, Identity, chan protocol.Envelope) {
	t.Helper()
	tok, id := ts.tokens.issue(ts.session, name, "party")
	events := make(chan protocol.Envelope, 1024)
	cfg := client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true, Events: events, Logger: testenv.Logger(t)}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, id, events
}

// waitFor polls cond until it holds or the timeout expires.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	wait.For(t, timeout, what, cond)
}

// settled waits until get stops changing for 300 ms (what was in flight
// has arrived) and returns its value.
func settled(t testing.TB, get func() uint64) uint64 {
	t.Helper()
	return settledFor(t, 300*time.Millisecond, get)
}

// settledFor waits until get has not changed for quiet (at most 10 s).
func settledFor(t testing.TB, quiet time.Duration, get func() uint64) uint64 {
	t.Helper()
	v, since := get(), time.Now()
	if !wait.Within(10*time.Second, func() bool {
		if n := get(); n != v {
			v, since = n, time.Now()
		}
		return time.Since(since) >= quiet
	}) {
		t.Fatalf("still changing after 10 s (now %d)", v)
	}
	return v
}

// waitEvent returns the next event of the given type.
func waitEvent(t testing.TB, ch <-chan protocol.Envelope, typ string, timeout time.Duration) protocol.Envelope {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case env := <-ch:
			if env.Type == typ {
				return env
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", typ)
		}
	}
}

func decode[T any](t testing.TB, env protocol.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(env.Data, &v); err != nil {
		t.Fatalf("decode %s: %v", env.Type, err)
	}
	return v
}

func tracksOf(c *client.Client, participant uuid.UUID) []*client.RemoteTrack {
	var out []*client.RemoteTrack
	for _, t := range c.RemoteTracks() {
		if t.ParticipantID == participant.String() {
			out = append(out, t)
		}
	}
	return out
}

func describe(c *client.Client) string {
	var b strings.Builder
	for _, t := range c.RemoteTracks() {
		st := t.Stats()
		fmt.Fprintf(&b, "[%s %s %s pk=%d lost=%d] ", t.ParticipantID[:8], t.Kind, t.Source, st.Packets, st.Lost())
	}
	return b.String()
}
