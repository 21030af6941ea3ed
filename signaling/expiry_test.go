package signaling

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chamber-court/chamber/internal/client"
)

// TestConnectionClosedAtExpiry: a connection whose credential expires
// while it is open is closed then, with bye token_expired; the others stay.
func TestConnectionClosedAtExpiry(t *testing.T) {
	ts := newTestServer(t, nil)
	tok, id := ts.tokens.issue(ts.session, "Visitor", "observer")
	id.ExpiresAt = time.Now().Add(1500 * time.Millisecond)
	ts.tokens.mu.Lock()
	ts.tokens.m[tok] = id
	ts.tokens.mu.Unlock()
	stay, _, _ := ts.dial(t, "Judge", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived its credential")
	}
	if time.Now().Before(id.ExpiresAt) {
		t.Fatalf("closed before the expiry")
	}
	if got := c.ByeReason(); got != "token_expired" {
		t.Errorf("bye %q, want token_expired", got)
	}
	if st := websocket.CloseStatus(c.Err()); st != websocket.StatusNormalClosure {
		t.Errorf("close status %v", st)
	}
	select {
	case <-stay.Done():
		t.Fatal("a connection without expiry was closed")
	default:
	}
}
