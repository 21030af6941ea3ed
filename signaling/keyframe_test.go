package signaling

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// TestRejoiningSubscriberGetsVideoAtOnce is the reconnect of a browser: a
// subscriber leaves and comes back (same participant, new connection) while
// the publisher, like a browser, sends a keyframe only when asked, and
// answers a PLI with its next frame. At 5 frames a second (a screen share,
// a starved camera) the keyframe often arrives after the subscriber's
// connection is up and is the very next packet of the stream: the SFU must
// not lose it to the down-track's attachment, and must keep asking until a
// keyframe reaches the new down-track. The publisher sends no keyframe
// unless asked (its interval is an hour), so video arrives at all only if
// the SFU asks and the keyframe is not lost; how soon it arrives (a few
// hundred milliseconds on an idle machine, logged per round) is a figure
// for the benchmarks, not an assertion: on a loaded machine it takes longer.
func TestRejoiningSubscriberGetsVideoAtOnce(t *testing.T) {
	ts := newTestServer(t, nil)
	pubC, _, _ := ts.dial(t, "publisher", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000, FPS: 5, KeyframeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()

	tok, _ := ts.tokens.issue(ts.session, "subscriber", "party")
	const rounds = 8
	for i := range rounds {
		start := time.Now()
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		sub, err := client.Dial(dctx, client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true, Logger: testenv.Logger(t)})
		dcancel()
		if err != nil {
			t.Fatalf("round %d: dial: %v", i, err)
		}
		var video *client.RemoteTrack
		wait.WithinEvery(time.Until(start.Add(10*time.Second)), 10*time.Millisecond, func() bool {
			for _, tr := range sub.RemoteTracks() {
				if tr.Kind == webrtc.RTPCodecTypeVideo && tr.Stats().Packets > 0 {
					video = tr
				}
			}
			return video != nil
		})
		if video == nil {
			t.Errorf("round %d: no video %v after joining: %s", i, time.Since(start).Round(time.Millisecond), describe(sub))
		} else {
			if st := video.Stats(); !st.FirstIsStart {
				t.Errorf("round %d: the first video packet does not start a keyframe", i)
			}
			t.Logf("round %d: video after %v", i, time.Since(start).Round(time.Millisecond))
		}
		_ = sub.Close()
		// Leave the publisher's last keyframe behind: a rejoin must not
		// depend on a keyframe having been sent just before.
		// Not a synchronisation: the pause varies where in the keyframe
		// interval the next round joins (the test's input).
		time.Sleep(time.Duration(i%3) * 300 * time.Millisecond)
	}
}

// TestResumedVideoGetsAKeyframe pauses and resumes a video on a connected
// subscriber (the quality message): forwarding restarts on a keyframe the
// SFU asks for, even though the publisher answers with its very next
// packet, before the reader could have attached the down-track.
func TestResumedVideoGetsAKeyframe(t *testing.T) {
	ts := newTestServer(t, nil)
	pubC, _, _ := ts.dial(t, "publisher", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Video: true, VideoBitrate: 300_000, FPS: 5, KeyframeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	sub, _, _ := ts.dial(t, "subscriber", nil)
	var video *client.RemoteTrack
	waitFor(t, 10*time.Second, "video", func() bool {
		for _, tr := range sub.RemoteTracks() {
			if tr.Kind == webrtc.RTPCodecTypeVideo && tr.Stats().Packets > 0 {
				video = tr
			}
		}
		return video != nil
	})
	for i := range 5 {
		if err := sub.SetQuality(ctx, protocol.Quality{TrackID: video.ID, Paused: true}); err != nil {
			t.Fatal(err)
		}
		// What was in flight has arrived; then nothing in an explicit window.
		before := settled(t, func() uint64 { return video.Stats().Packets })
		if !wait.Never(300*time.Millisecond, func() bool { return video.Stats().Packets != before }) {
			t.Fatalf("round %d: %d packets arrived while paused", i, video.Stats().Packets-before)
		}
		start := time.Now()
		if err := sub.SetQuality(ctx, protocol.Quality{TrackID: video.ID}); err != nil {
			t.Fatal(err)
		}
		if !wait.WithinEvery(1500*time.Millisecond, 10*time.Millisecond, func() bool { return video.Stats().Packets != before }) {
			t.Fatalf("round %d: no video %v after resuming", i, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("round %d: video %v after resuming", i, time.Since(start).Round(time.Millisecond))
	}
}
