package signaling

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
)

// frameChecker verifies that a subscriber's VP8 stream starts with a
// keyframe, that every frame begins with a start packet, and that packets
// arrive in order except for repairs: a packet arriving after a later one
// must fill a gap seen before (a retransmission answering a NACK), and the
// repairs across all tracks can be no more than the packets NACKed. A
// forwarder that reorders would show fills without NACKs behind them.
type frameChecker struct {
	mu     sync.Mutex
	tracks map[*client.RemoteTrack]*frameState
	nacked nackCounter // NACKed packets the publishers received
}

type vp8Packet struct {
	timestamp uint32
	start     bool
}

type frameState struct {
	firstKey   bool
	firstSeq   uint16
	highest    uint16
	missing    map[uint16]bool
	packets    map[uint16]vp8Packet
	repairs    int
	violations []string
}

func newFrameChecker() *frameChecker {
	return &frameChecker{tracks: make(map[*client.RemoteTrack]*frameState)}
}

// interceptors is the clients' Config.Interceptors: pion's defaults, and
// the count of the NACKs a publisher receives.
func (fc *frameChecker) interceptors(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return err
	}
	ir.Add(&fc.nacked)
	return nil
}

func (fc *frameChecker) onRTP(t *client.RemoteTrack, p *client.Packet) {
	if t.Kind != webrtc.RTPCodecTypeVideo {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	start := len(p.Payload) > 0 && p.Payload[0]&0x10 != 0
	seq := p.SequenceNumber
	st := fc.tracks[t]
	if st == nil {
		fc.tracks[t] = &frameState{
			firstKey: start && len(p.Payload) > 4 && p.Payload[4]&0x01 == 0,
			firstSeq: seq, highest: seq,
			missing: map[uint16]bool{},
			packets: map[uint16]vp8Packet{seq: {p.Timestamp, start}},
		}
		return
	}
	switch ahead := seq - st.highest; {
	case ahead != 0 && ahead < 0x8000:
		for s := st.highest + 1; s != seq; s++ {
			st.missing[s] = true
		}
		st.highest = seq
	case st.missing[seq]:
		delete(st.missing, seq)
		st.repairs++
	default:
		st.violations = append(st.violations, fmt.Sprintf("seq %d after %d, not a missing one", seq, st.highest))
		return
	}
	st.packets[seq] = vp8Packet{p.Timestamp, start}
}

// frames walks a track's packets in sequence order and counts its frames;
// a new timestamp must begin with a start packet.
func (st *frameState) frames() int {
	frames := 0
	prev := st.packets[st.firstSeq]
	for s := st.firstSeq + 1; s != st.highest+1; s++ {
		p, ok := st.packets[s]
		if !ok {
			continue // lost: the test's loss check judges it
		}
		if p.timestamp != prev.timestamp {
			frames++
			if !p.start {
				st.violations = append(st.violations, fmt.Sprintf("frame at seq %d without start bit", s))
			}
		}
		prev = p
	}
	return frames
}

// check judges every track; nacked is the number of packets subscribers
// asked the server to retransmit during the test.
func (fc *frameChecker) check(t *testing.T, nacked int) {
	t.Helper()
	repairs, problems := fc.judge(nacked)
	for _, p := range problems {
		t.Error(p)
	}
	if repairs > 0 {
		t.Logf("%d packets arrived late to fill a gap (retransmissions)", repairs)
	}
}

func (fc *frameChecker) judge(nacked int) (repairs int, problems []string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for tr, st := range fc.tracks {
		if !st.firstKey {
			problems = append(problems, fmt.Sprintf("track %s: first video packet was not a keyframe start", tr.ID))
		}
		if n := st.frames(); n < 10 {
			problems = append(problems, fmt.Sprintf("track %s: only %d frames", tr.ID, n))
		}
		if len(st.violations) > 0 {
			n := min(len(st.violations), 5)
			problems = append(problems, fmt.Sprintf("track %s: %d frame violations, e.g. %v", tr.ID, len(st.violations), st.violations[:n]))
		}
		repairs += st.repairs
	}
	if asked := nacked + int(fc.nacked.n.Load()); repairs > asked {
		problems = append(problems, fmt.Sprintf("%d packets arrived late to fill a gap, but only %d were NACKed: reordered, not repaired", repairs, asked))
	}
	return repairs, problems
}

// TestFrameChecker shows the checker above can fail: the forwarding test
// is only as good as it.
func TestFrameChecker(t *testing.T) {
	// Twelve two-packet frames: seq 100+2i starts frame i, timestamps 3000 apart.
	frames := func(order ...int) []int { return order }
	inOrder := make([]int, 24)
	for i := range inOrder {
		inOrder[i] = 100 + i
	}
	swapped := append([]int(nil), inOrder...)
	swapped[5], swapped[6] = swapped[6], swapped[5]
	tests := []struct {
		name     string
		seqs     []int
		nacked   int
		problems bool
	}{
		{"in order", inOrder, 0, false},
		{"a repair after a NACK", swapped, 1, false},
		{"reordered without a NACK", swapped, 0, true},
		{"a duplicate", append(append([]int(nil), inOrder...), 110), 0, true},
		{"a frame starting mid-way", frames(100, 101, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFrameChecker()
			tr := &client.RemoteTrack{ID: "v", Kind: webrtc.RTPCodecTypeVideo}
			for _, s := range tt.seqs {
				i := s - 100
				payload := []byte{0, 0, 0, 0, 0}
				if i%2 == 0 {
					payload[0] = 0x10 // start of partition
				}
				p := &client.Packet{}
				p.SequenceNumber, p.Timestamp, p.Payload = uint16(s), uint32(3000*(i/2)), payload
				fc.onRTP(tr, p)
			}
			_, problems := fc.judge(tt.nacked)
			if got := len(problems) > 0; got != tt.problems {
				t.Errorf("problems %v, want some: %v", problems, tt.problems)
			}
		})
	}
}

// nackCounter is a pion interceptor counting the packets that the RTCP
// NACKs a PeerConnection receives ask for.
type nackCounter struct{ n atomic.Int64 }

func (c *nackCounter) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackCounting{counter: c}, nil
}

type nackCounting struct {
	interceptor.NoOp
	counter *nackCounter
}

func (i *nackCounting) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = make(interceptor.Attributes)
		}
		pkts, perr := a.GetRTCPPackets(b[:n])
		if perr != nil {
			return n, a, nil
		}
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				for _, pair := range nack.Nacks {
					i.counter.n.Add(int64(len(pair.PacketList())))
				}
			}
		}
		return n, a, nil
	})
}

func TestRoomForwardsEveryoneToEveryone(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("%d clients", n), func(t *testing.T) {
			ts := newTestServer(t, nil)
			fc := newFrameChecker()
			nackBefore := counterValue(t, metricNACKName)
			var clients []*client.Client
			var pubs []*client.Publication
			var ids []Identity
			for i := 0; i < n; i++ {
				c, id, _ := ts.dial(t, fmt.Sprintf("p%d", i), func(cfg *client.Config) {
					cfg.OnRTP = fc.onRTP
					cfg.Interceptors = fc.interceptors
				})
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
			fc.check(t, int(counterValue(t, metricNACKName)-nackBefore))
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
