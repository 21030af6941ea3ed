package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// dialToken joins the test session with a token already issued.
func (ts *testServer) dialToken(t testing.TB, tok string, events chan protocol.Envelope) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true, Events: events, Logger: testenv.Logger(t)})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// TestConnectionCapPerParticipant: one participant holds at most
// MaxConnectionsPerParticipant WebSockets at once; a fifth join is refused
// (forbidden, which the browser takes as final) and a freed slot is taken.
func TestConnectionCapPerParticipant(t *testing.T) {
	ts := newTestServer(t, nil)
	tok, _ := ts.tokens.issue(ts.session, "Witness", "witness")
	var conns []*client.Client
	for range DefaultMaxConnectionsPerParticipant {
		c, err := ts.dialToken(t, tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	_, err := ts.dialToken(t, tok, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("join %d of one participant: %v, want forbidden", DefaultMaxConnectionsPerParticipant+1, err)
	}
	// Someone else still joins.
	other, _ := ts.tokens.issue(ts.session, "Party", "party")
	if _, err := ts.dialToken(t, other, nil); err != nil {
		t.Fatalf("another participant: %v", err)
	}
	conns[0].Close()
	waitFor(t, 10*time.Second, "a slot to free up", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		n := 0
		if r := ts.rooms[ts.session]; r != nil {
			n = len(r.conns)
		}
		return n == DefaultMaxConnectionsPerParticipant
	})
	if _, err := ts.dialToken(t, tok, nil); err != nil {
		t.Fatalf("a join after one connection closed: %v", err)
	}
}

// countingHooks counts the room messages handed to the session layer.
type countingHooks struct {
	defaultHooks
	n atomic.Int64
}

func (h *countingHooks) Message(ctx context.Context, from Identity, typ string, payload json.RawMessage) (json.RawMessage, error) {
	h.n.Add(1)
	return h.defaultHooks.Message(ctx, from, typ, payload)
}

// TestRoomMessagesLimitedPerParticipant: a participant's chat is limited
// across all their connections, not per connection — several sockets
// cannot multiply what reaches the journal.
func TestRoomMessagesLimitedPerParticipant(t *testing.T) {
	hooks := &countingHooks{}
	ts := newTestServer(t, func(c *Config) { c.Hooks = hooks })
	tok, _ := ts.tokens.issue(ts.session, "Counsel", "counsel")
	const sockets, each = 4, 30
	var refused atomic.Int64
	for range sockets {
		events := make(chan protocol.Envelope, 1024)
		c, err := ts.dialToken(t, tok, events)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // ends with the client, which the test's cleanup closes
			for {
				select {
				case env := <-events:
					var pe protocol.Error
					if env.Type == protocol.TypeError && json.Unmarshal(env.Data, &pe) == nil && pe.Code == protocol.CodeRateLimited {
						refused.Add(1)
					}
				case <-c.Done():
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for range each {
			if err := c.Send(ctx, protocol.TypeChat, map[string]string{"text": "objection"}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
	}
	waitFor(t, 10*time.Second, "every chat to be handled or refused", func() bool {
		return hooks.n.Load()+refused.Load() == sockets*each
	})
	// The burst, plus what the rate refills while the sends run.
	if got, most := hooks.n.Load(), int64(DefaultRoomMessageBurst+5*DefaultRoomMessagesPerSecond); got > most {
		t.Fatalf("%d sockets × %d chats: %d reached the session layer, at most %d should", sockets, each, got, most)
	}
}

// TestDisconnectCredential closes the connections one credential opened
// and leaves the same participant's other connections alone.
func TestDisconnectCredential(t *testing.T) {
	ts := newTestServer(t, nil)
	pid := uuid.New()
	issue := func(cred string) string {
		tok := "tok-" + uuid.NewString()
		ts.tokens.mu.Lock()
		ts.tokens.m[tok] = Identity{SessionID: ts.session, ParticipantID: pid, Name: "Judge", Role: "judge", Credential: cred}
		ts.tokens.mu.Unlock()
		return tok
	}
	laptop, err := ts.dialToken(t, issue("browser_session:laptop"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tablet, err := ts.dialToken(t, issue("browser_session:tablet"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.DisconnectCredential("browser_session:laptop", protocol.ByeRevoked)
	select {
	case <-laptop.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the signed-out laptop is still connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := tablet.Request(ctx, protocol.TypePing, map[string]any{}); err != nil {
		t.Fatalf("the tablet lost its connection too: %v", err)
	}
	ts.DisconnectCredential("", protocol.ByeRevoked) // names nothing: closes nothing
	if _, err := tablet.Request(ctx, protocol.TypePing, map[string]any{}); err != nil {
		t.Fatalf("an empty credential closed a connection: %v", err)
	}
}

// addrAuthenticator records the upgrade request's peer address.
type addrAuthenticator struct {
	*tokens
	mu   sync.Mutex
	seen []string
}

func (a *addrAuthenticator) Authenticate(ctx context.Context, session uuid.UUID, token string) (Identity, error) {
	if r := UpgradeRequest(ctx); r != nil {
		a.mu.Lock()
		a.seen = append(a.seen, r.RemoteAddr)
		a.mu.Unlock()
	}
	return a.tokens.Authenticate(ctx, session, token)
}

// TestAuthenticatorSeesTheUpgradeRequest: a failure limiter in the
// Authenticator can count a join's failures against its client address.
func TestAuthenticatorSeesTheUpgradeRequest(t *testing.T) {
	auth := &addrAuthenticator{tokens: newTokens()}
	ts := newTestServer(t, func(c *Config) { c.Authenticator = auth })
	ts.tokens = auth.tokens
	if _, err := ts.dialToken(t, "tok-wrong", nil); err == nil {
		t.Fatal("a wrong token joined")
	}
	auth.mu.Lock()
	defer auth.mu.Unlock()
	if len(auth.seen) != 1 || auth.seen[0] == "" {
		t.Fatalf("the authenticator saw %q", auth.seen)
	}
}
