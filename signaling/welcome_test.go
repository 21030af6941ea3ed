package signaling

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// welcomeHooks welcomes with one state and, read again, says another:
// the session as it is once the connection has joined its room.
type welcomeHooks struct {
	defaultHooks
	sent  string
	again func(reads int) string // the welcome at the reads-th reading again
	mu    sync.Mutex
	reads int
}

func (h *welcomeHooks) Connected(context.Context, Identity) (json.RawMessage, error) {
	return json.RawMessage(h.sent), nil
}

func (h *welcomeHooks) Welcome(context.Context, Identity) (json.RawMessage, error) {
	h.mu.Lock()
	h.reads++
	n := h.reads
	h.mu.Unlock()
	return json.RawMessage(h.again(n)), nil
}

func (h *welcomeHooks) readings() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}

// welcomesAfterJoin returns the "welcome" messages and the events a
// client received up to the answer of a ping sent once it joined: the
// server reads the welcome again before it reads the client's next
// message, so whatever it sent by then has arrived.
func welcomesAfterJoin(t *testing.T, ts *testServer) (welcomes []string, events []string) {
	t.Helper()
	c, _, evs := ts.dial(t, "party", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, protocol.TypePing, nil); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case env := <-evs:
			events = append(events, env.Type)
			if env.Type == protocol.TypeWelcome {
				welcomes = append(welcomes, string(env.Data))
			}
		default:
			return welcomes, events
		}
	}
}

func TestWelcomeSentAgainWhenItChangedWhileJoining(t *testing.T) {
	const waiting, admitted = `{"you":{"space":"waiting"}}`, `{"you":{"space":"main"}}`
	tests := []struct {
		name  string
		again func(reads int) string
		want  []string
		reads int
	}{
		{"admitted while joining", func(int) string { return admitted }, []string{admitted}, 1},
		{"unchanged", func(int) string { return waiting }, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &welcomeHooks{sent: waiting, again: tt.again}
			ts := newTestServer(t, func(c *Config) { c.Hooks = h })
			welcomes, _ := welcomesAfterJoin(t, ts)
			if len(welcomes) != len(tt.want) || (len(welcomes) > 0 && welcomes[0] != tt.want[0]) {
				t.Fatalf("welcomes again %q, want %q", welcomes, tt.want)
			}
			if n := h.readings(); n != tt.reads {
				t.Fatalf("read again %d times, want %d", n, tt.reads)
			}
		})
	}
}

// An event that reaches the connection while its welcome is read again
// may be newer than that reading: the reading is not sent, and the
// welcome is read once more.
func TestWelcomeReadAgainAfterAnEventDuringTheReading(t *testing.T) {
	const waiting, stale, admitted = `{"you":{"space":"waiting"}}`, `{"you":{"space":"stale"}}`, `{"you":{"space":"main"}}`
	var ts *testServer
	h := &welcomeHooks{sent: waiting}
	h.again = func(reads int) string {
		if reads == 1 {
			ts.Notify(ts.session, nil, "participant_updated", json.RawMessage(`{"space":"main"}`))
			return stale
		}
		return admitted
	}
	ts = newTestServer(t, func(c *Config) { c.Hooks = h })
	welcomes, events := welcomesAfterJoin(t, ts)
	if n := h.readings(); n != 2 {
		t.Fatalf("read again %d times, want 2", n)
	}
	if len(welcomes) != 1 || welcomes[0] != admitted {
		t.Fatalf("welcomes again %q (events %v), want only the second reading", welcomes, events)
	}
}
