package signaling

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// slowDepartures records departures slowly, as a session layer writing to
// its database does.
type slowDepartures struct {
	defaultHooks
	recorded atomic.Int32
}

func (h *slowDepartures) Disconnected(context.Context, Identity) {
	time.Sleep(200 * time.Millisecond) // a slow write, not synchronisation
	h.recorded.Add(1)
}

// TestCloseRoomMovesEveryoneAndWaits: a node that is no longer a room's
// home ends all its connections with bye moved (their clients reconnect)
// and returns once every departure is recorded: the node's writes for the
// room are fenced only until then.
func TestCloseRoomMovesEveryoneAndWaits(t *testing.T) {
	hooks := &slowDepartures{}
	ts := newTestServer(t, func(c *Config) { c.Hooks = hooks })
	a, _, _ := ts.dial(t, "a", nil)
	b, _, _ := ts.dial(t, "b", nil)
	if rooms, conns := ts.Load(); rooms != 1 || conns != 2 {
		t.Fatalf("load = %d rooms, %d connections; want 1, 2", rooms, conns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.CloseRoom(ctx, ts.session, protocol.ByeMoved); err != nil {
		t.Fatal(err)
	}
	if rooms, conns := ts.Load(); rooms != 0 || conns != 0 {
		t.Fatalf("after CloseRoom: %d rooms, %d connections", rooms, conns)
	}
	if n := hooks.recorded.Load(); n != 2 {
		t.Fatalf("CloseRoom returned with %d of 2 departures recorded", n)
	}
	for _, c := range []interface {
		Done() <-chan struct{}
		ByeReason() string
	}{a, b} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a connection stayed open")
		}
		if got := c.ByeReason(); got != protocol.ByeMoved {
			t.Fatalf("bye %q, want %q", got, protocol.ByeMoved)
		}
	}
	// Closing a room that is not here is nothing.
	if err := ts.CloseRoom(ctx, ts.session, protocol.ByeMoved); err != nil {
		t.Fatal(err)
	}
}
