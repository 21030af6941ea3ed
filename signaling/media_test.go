package signaling

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
)

// frameChecker verifies that a subscriber's VP8 stream starts with a
// keyframe and that every frame has a start packet and ends with the marker.
type frameChecker struct {
	mu     sync.Mutex
	tracks map[*client.RemoteTrack]*frameState
}

type frameState struct {
	firstKey   bool
	started    bool
	lastTS     uint32
	lastSeq    uint16
	frames     int
	violations []string
}

func newFrameChecker() *frameChecker {
	return &frameChecker{tracks: make(map[*client.RemoteTrack]*frameState)}
}

func (fc *frameChecker) onRTP(t *client.RemoteTrack, p *client.Packet) {
	if t.Kind != webrtc.RTPCodecTypeVideo {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	st := fc.tracks[t]
	if st == nil {
		st = &frameState{}
		fc.tracks[t] = st
	}
	start := len(p.Payload) > 0 && p.Payload[0]&0x10 != 0
	if !st.started {
		st.started = true
		st.firstKey = start && len(p.Payload) > 4 && p.Payload[4]&0x01 == 0
		st.lastTS, st.lastSeq = p.Timestamp, p.SequenceNumber
		return
	}
	// In order on loopback without loss: a new timestamp must begin with
	// a start packet right after the previous frame's marker.
	if p.SequenceNumber != st.lastSeq+1 {
		st.violations = append(st.violations, fmt.Sprintf("seq gap %d→%d", st.lastSeq, p.SequenceNumber))
	}
	if p.Timestamp != st.lastTS {
		st.frames++
		if !start {
			st.violations = append(st.violations, fmt.Sprintf("frame at seq %d without start bit", p.SequenceNumber))
		}
	}
	st.lastTS, st.lastSeq = p.Timestamp, p.SequenceNumber
}

func (fc *frameChecker) check(t *testing.T) {
	t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for tr, st := range fc.tracks {
		if !st.firstKey {
			t.Errorf("track %s: first video packet was not a keyframe start", tr.ID)
		}
		if st.frames < 10 {
			t.Errorf("track %s: only %d frames", tr.ID, st.frames)
		}
		if len(st.violations) > 0 {
			n := min(len(st.violations), 5)
			t.Errorf("track %s: %d frame violations, e.g. %v", tr.ID, len(st.violations), st.violations[:n])
		}
	}
}

func TestRoomForwardsEveryoneToEveryone(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("%d clients", n), func(t *testing.T) {
			ts := newTestServer(t, nil)
			fc := newFrameChecker()
			var clients []*client.Client
			var pubs []*client.Publication
			var ids []Identity
			for i := 0; i < n; i++ {
				c, id, _ := ts.dial(t, fmt.Sprintf("p%d", i), func(cfg *client.Config) { cfg.OnRTP = fc.onRTP })
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				p, err := c.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000})
				cancel()
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				clients = append(clients, c)
				pubs = append(pubs, p)
				ids = append(ids, id)
			}
			// Every client must receive audio and video from every other one.
			flowing := func(packets uint64) func() bool {
				return func() bool {
					for i, c := range clients {
						for j, id := range ids {
							if i == j {
								continue
							}
							tr := tracksOf(c, id.ParticipantID)
							if len(tr) != 2 {
								return false
							}
							for _, x := range tr {
								if x.Stats().Packets < packets {
									return false
								}
							}
						}
					}
					return true
				}
			}
			waitFor(t, 60*time.Second, "every track flowing", flowing(30))
			// A second of media (50 audio packets) on every track before
			// the losses and frames are judged.
			waitFor(t, 20*time.Second, "80 packets of every track", flowing(80))
			// Repairs of the latest losses may still be on their way: poll,
			// with a deadline, until none is missing; what is left is judged.
			repaired := func() bool {
				for _, c := range clients {
					for _, tr := range c.RemoteTracks() {
						if st := tr.Stats(); st.Lost() > 0 {
							return false
						}
					}
				}
				return true
			}
			wait.WithinEvery(5*time.Second, 50*time.Millisecond, repaired)
			for i, c := range clients {
				for _, tr := range c.RemoteTracks() {
					if tr.ParticipantID == ids[i].ParticipantID.String() {
						t.Errorf("client %d receives its own track", i)
					}
					st := tr.Stats()
					if st.Lost() > 0 {
						t.Errorf("client %d track %s %s: %d of %d packets lost", i, tr.Kind, tr.Source, st.Lost(), st.Expected())
					}
					if !st.FirstIsStart {
						t.Errorf("client %d track %s: did not start on a keyframe", i, tr.Kind)
					}
				}
			}
			for _, p := range pubs {
				p.Stop()
			}
			t.Logf("client 0 receives %s", describe(clients[0]))
			fc.check(t)
		})
	}
}

func TestNACKRepairsLossOnSubscriberPath(t *testing.T) {
	ts := newTestServer(t, nil)
	pubC, pubID, _ := ts.dial(t, "publisher", nil)
	// 5 % of the RTP datagrams reaching the subscriber are lost on the way.
	var mu sync.Mutex
	seen := map[uint16]bool{}
	sub, _, _ := ts.dial(t, "subscriber", func(cfg *client.Config) {
		cfg.ReceiveLoss = 0.05
		cfg.OnRTP = func(tr *client.RemoteTrack, p *client.Packet) {
			if tr.Kind == webrtc.RTPCodecTypeVideo {
				mu.Lock()
				seen[p.SequenceNumber] = true
				mu.Unlock()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nackBefore := counterValue(t, metricNACKName)
	pub, err := pubC.Publish(ctx, client.PublishOptions{Video: true, VideoBitrate: 800_000})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "video at the subscriber", func() bool { return len(tracksOf(sub, pubID.ParticipantID)) == 1 })
	tr := tracksOf(sub, pubID.ParticipantID)[0]
	// About seven seconds of video at 800 kbit/s.
	waitFor(t, 30*time.Second, "600 video packets", func() bool { return tr.Stats().Packets >= 600 })
	pub.Stop()
	// The last packets have no successor to reveal their loss, so the
	// loss is measured up to 50 packets before the end.
	measure := func() (st client.TrackStats, span uint16, lost int) {
		st = tr.Stats()
		first := st.FirstSeq
		span = uint16(st.HighestSeq) - first - 50
		mu.Lock()
		defer mu.Unlock()
		for i := uint16(0); i <= span; i++ {
			if !seen[first+i] {
				lost++
			}
		}
		return st, span, lost
	}
	// The last repairs arrive after the stop: measure until the loss is
	// repaired, or the deadline passes and the loss left is judged.
	st, span, lost := measure()
	wait.WithinEvery(10*time.Second, 50*time.Millisecond, func() bool {
		st, span, lost = measure()
		return float64(lost)/float64(span+1) < 0.005
	})
	if span < 400 {
		t.Fatalf("only %d video packets", span)
	}
	rate := float64(lost) / float64(span+1)
	t.Logf("video: %d packets, %d lost after repair (%.2f%%), %d duplicates", span+1, lost, rate*100, st.Duplicates)
	if rate >= 0.005 {
		t.Errorf("video loss after repair %.2f%% ≥ 0.5%%", rate*100)
	}
	if n := counterValue(t, metricNACKName) - nackBefore; n < float64(span)*0.03 {
		t.Errorf("only %.0f packets NACKed for %d sent at 5%% loss", n, span)
	}
}

func TestH264IsForwarded(t *testing.T) {
	ts := newTestServer(t, nil)
	pubC, pubID, _ := ts.dial(t, "publisher", nil)
	sub, _, _ := ts.dial(t, "subscriber", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Video: true, H264: true, VideoBitrate: 500_000})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	waitFor(t, 15*time.Second, "H.264 at the subscriber", func() bool {
		tr := tracksOf(sub, pubID.ParticipantID)
		return len(tr) == 1 && tr[0].Stats().Packets > 100
	})
	tr := tracksOf(sub, pubID.ParticipantID)[0]
	st := tr.Stats()
	if tr.Codec != webrtc.MimeTypeH264 {
		t.Errorf("codec %s", tr.Codec)
	}
	if !st.FirstIsStart {
		t.Error("the subscriber's first packet was not the start of a keyframe")
	}
	if st.Lost() > 0 {
		t.Errorf("%d packets lost", st.Lost())
	}
}
