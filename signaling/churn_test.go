package signaling

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// TestJoinLeaveChurnLeavesNothingBehind joins and leaves 200 times next to
// a subscriber that stays. Every cycle publishes audio and video; every
// tenth waits until the subscriber receives it, so the whole path (readers,
// writers, down-tracks, renegotiation) is built and torn down.
func TestJoinLeaveChurnLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ts := newTestServer(t, nil)
	stay, _, _ := ts.dial(t, "stays", nil)
	settle := func() (goroutines int, peers, tracks float64) {
		return runtime.NumGoroutine(), counterValue(t, "chamber_peers"), counterValue(t, "chamber_tracks")
	}
	var baseG int
	var baseP, baseT float64

	// Cycle 0 brings the staying subscriber's connection up; the baseline
	// is taken after it.
	const cycles = 201
	for i := 0; i < cycles; i++ {
		if i == 1 {
			// Cycle 0's guest has left the media room: the baseline.
			ts.mu.Lock()
			media := ts.rooms[ts.session].media
			ts.mu.Unlock()
			waitFor(t, 10*time.Second, "cycle 0's guest to leave", func() bool { return media.Len() == 1 })
			baseG, baseP, baseT = settle()
		}
		tok, id := ts.tokens.issue(ts.session, fmt.Sprintf("guest%d", i), "party")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		c, err := client.Dial(ctx, client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true, Logger: testenv.Logger(t)})
		if err != nil {
			cancel()
			t.Fatalf("cycle %d: dial: %v", i, err)
		}
		pub, err := c.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 200_000})
		if err != nil {
			cancel()
			t.Fatalf("cycle %d: publish: %v", i, err)
		}
		if i%5 == 0 || i == 1 {
			waitFor(t, 15*time.Second, "media at the staying subscriber", func() bool {
				for _, tr := range tracksOf(stay, id.ParticipantID) {
					if tr.Stats().Packets > 0 {
						return true
					}
				}
				return false
			})
		}
		pub.Stop()
		if err := c.Close(); err != nil {
			t.Logf("cycle %d: close: %v", i, err)
		}
		cancel()
	}

	// The last guest's connection ends after its client returns from
	// Close: the server learns of it when it reads the close, and drops
	// the media peer before the connection. Everything is waited for.
	var g, rooms, conns, media int
	var p, tr float64
	if !wait.Within(30*time.Second, func() bool {
		g, p, tr = settle()
		ts.mu.Lock()
		rooms = len(ts.rooms)
		conns, media = 0, 0
		if r := ts.rooms[ts.session]; r != nil {
			conns, media = len(r.conns), r.media.Len()
		}
		ts.mu.Unlock()
		return g <= baseG+5 && p == baseP && tr == baseT && rooms == 1 && conns == 1 && media == 1
	}) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("resources left: goroutines %d → %d, peers %v → %v, tracks %v → %v; %d rooms, %d connections, %d media peers (want the staying one only)\n%s",
			baseG, g, baseP, p, baseT, tr, rooms, conns, media, buf[:n])
	}
	t.Logf("goroutines %d → %d, peers %v → %v, tracks %v → %v", baseG, g, baseP, p, baseT, tr)
}
