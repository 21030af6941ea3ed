package signaling

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// continuity records what a subscriber sees of one video track.
type continuity struct {
	mu       sync.Mutex
	ssrcs    map[uint32]bool
	seqs     map[uint32]bool // extended sequence numbers
	high     uint32
	started  bool
	lastTS   uint32
	lastPic  uint16
	tsBack   int // timestamp went backwards between frames
	picJumps int // picture ID did not advance by one between frames
	layerAt  []int
}

func (c *continuity) onRTP(tr *client.RemoteTrack, p *client.Packet) {
	if tr.Kind != webrtc.RTPCodecTypeVideo {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ssrcs[p.SSRC] = true
	pic := uint16(p.Payload[2]&0x7f)<<8 | uint16(p.Payload[3])
	if !c.started {
		c.started = true
		c.high = uint32(p.SequenceNumber)
		c.lastTS, c.lastPic = p.Timestamp, pic
	}
	ext := uint32(int64(c.high) + int64(int16(p.SequenceNumber-uint16(c.high))))
	if ext > c.high {
		c.high = ext
	}
	c.seqs[ext] = true
	if p.Timestamp != c.lastTS && ext == c.high {
		if int32(p.Timestamp-c.lastTS) <= 0 {
			c.tsBack++
		}
		if pic != (c.lastPic+1)&0x7fff {
			c.picJumps++
		}
		c.lastTS, c.lastPic = p.Timestamp, pic
		c.layerAt = append(c.layerAt, p.Layer)
	}
}

func TestSimulcastFollowsBandwidthEstimate(t *testing.T) {
	ts := newTestServer(t, nil)
	pubC, _, _ := ts.dial(t, "publisher", nil)
	cont := &continuity{ssrcs: map[uint32]bool{}, seqs: map[uint32]bool{}}
	sub, _, events := ts.dial(t, "subscriber", func(cfg *client.Config) { cfg.OnRTP = cont.onRTP })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Keyframes only when asked, as browsers send them: every switch
	// depends on the SFU's keyframe request reaching the new layer.
	pub, err := pubC.Publish(ctx, client.PublishOptions{Video: true, Simulcast: true, VideoBitrate: 1_500_000, KeyframeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()

	waitLayer := func(want int) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case env := <-events:
				if env.Type == protocol.TypeLayer {
					l := decode[protocol.Layer](t, env)
					t.Logf("layer → %d (%s)", l.Layer, l.RID)
					if l.Layer == want {
						return
					}
				}
			case <-deadline:
				t.Fatalf("the subscriber never moved to layer %d", want)
			}
		}
	}
	waitFor(t, 15*time.Second, "the video track", func() bool { return len(sub.RemoteTracks()) == 1 })
	// Without an estimate the subscriber gets the default budget, enough
	// for the top layer once all three are measured.
	waitLayer(2)
	layerPackets := func(l int) uint64 { return sub.RemoteTracks()[0].Stats().Layers[l] }
	waitFor(t, 10*time.Second, "packets of layer 2", func() bool { return layerPackets(2) >= 30 })
	// The estimate falls (congestion): only the quarter layer (~150
	// kbit/s) fits. A first estimate below the layer would not do: a
	// browser's estimator starts low and ramps up.
	remb := func(bps uint64) {
		if err := sub.SendREMB(bps); err != nil {
			t.Fatal(err)
		}
	}
	// Both reports reach the one down-track's RTCP reader, in order: the
	// second is a fall from the first.
	remb(5_000_000)
	remb(300_000)
	waitLayer(0)
	// A high estimate at once: the switch up waits for the hold-off after
	// the switch down (the allocator runs every second), then happens.
	remb(5_000_000)
	waitLayer(2)
	top := layerPackets(2)
	waitFor(t, 10*time.Second, "30 more packets of layer 2", func() bool { return layerPackets(2) >= top+30 })

	st := sub.RemoteTracks()[0].Stats()
	cont.mu.Lock()
	defer cont.mu.Unlock()
	if len(cont.ssrcs) != 1 {
		t.Errorf("the subscriber saw %d SSRCs, want one continuous stream", len(cont.ssrcs))
	}
	var missing int
	for s := uint32(st.FirstSeq); s <= cont.high; s++ {
		if !cont.seqs[s] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d sequence numbers missing in the subscriber's stream", missing)
	}
	if cont.tsBack > 0 || cont.picJumps > 0 {
		t.Errorf("stream not continuous: %d timestamp steps back, %d picture ID jumps", cont.tsBack, cont.picJumps)
	}
	var saw [3]bool
	for _, l := range cont.layerAt {
		if l >= 0 && l < 3 {
			saw[l] = true
		}
	}
	if !saw[0] || !saw[2] {
		t.Errorf("frames by layer: %v; want frames from layers 0 and 2", st.Layers)
	}
	if counterValue(t, "chamber_layer_switches_total") < 2 {
		t.Errorf("layer switches not counted")
	}
}
