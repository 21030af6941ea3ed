package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/signaling/protocol"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// switchPolicy forbids what its maps say; everything else is allowed.
type switchPolicy struct {
	mu        sync.Mutex
	noPublish map[uuid.UUID]Source
	noForward map[[2]uuid.UUID]Source // (subscriber, publisher) → source
}

func (p *switchPolicy) MayPublish(_, participant uuid.UUID, src Source) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.noPublish[participant]
	return !ok || s != src
}

func (p *switchPolicy) MayForward(_, sub, pub uuid.UUID, src Source) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.noForward[[2]uuid.UUID{sub, pub}]
	return !ok || s != src
}

func (p *switchPolicy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

func sources(c *client.Client, participant uuid.UUID) map[string]bool {
	out := map[string]bool{}
	for _, t := range tracksOf(c, participant) {
		out[t.Source] = true
	}
	return out
}

func TestPolicyDecidesWhoReceivesWhomAndNotifyReevaluates(t *testing.T) {
	pol := &switchPolicy{noPublish: map[uuid.UUID]Source{}, noForward: map[[2]uuid.UUID]Source{}}
	ts := newTestServer(t, func(c *Config) { c.Permissions = pol })
	judgeC, judge, _ := ts.dial(t, "judge", nil)
	witnessC, witness, wEvents := ts.dial(t, "witness", nil)
	counselC, counsel, _ := ts.dial(t, "counsel", nil)
	_ = judgeC
	// The witness may not see counsel's camera; counsel is muted by the server.
	pol.set(func() {
		pol.noForward[[2]uuid.UUID{witness.ParticipantID, counsel.ParticipantID}] = SourceCamera
		pol.noPublish[counsel.ParticipantID] = SourceMicrophone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := counselC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	waitFor(t, 15*time.Second, "judge receives counsel's camera", func() bool {
		tr := tracksOf(judgeC, counsel.ParticipantID)
		return len(tr) == 1 && tr[0].Stats().Packets > 10
	})
	// Both of counsel's tracks are published on the server (their
	// forwarding decided); nothing more arrives in an explicit window.
	waitFor(t, 10*time.Second, "counsel's two tracks on the server", func() bool {
		return ts.connOf(t, counsel.ParticipantID).peer.Stats().Published == 2
	})
	wait.Throughout(500*time.Millisecond, func() {
		if got := sources(judgeC, counsel.ParticipantID); !got["camera"] || got["microphone"] {
			t.Fatalf("judge receives %v of counsel; want the camera only (microphone muted)", got)
		}
		if got := sources(witnessC, counsel.ParticipantID); len(got) != 0 {
			t.Fatalf("witness receives %v of counsel; want nothing", got)
		}
	})

	// The session layer lifts both restrictions and tells the room.
	pol.set(func() {
		delete(pol.noForward, [2]uuid.UUID{witness.ParticipantID, counsel.ParticipantID})
		delete(pol.noPublish, counsel.ParticipantID)
	})
	ts.Notify(ts.session, nil, "participant_updated", json.RawMessage(`{"participant_id":"`+counsel.ParticipantID.String()+`","muted":false}`))
	env := waitEvent(t, wEvents, "participant_updated", 5*time.Second)
	if string(env.Data) == "" {
		t.Error("notify lost its payload")
	}
	waitFor(t, 15*time.Second, "witness receives counsel's camera and microphone", func() bool {
		tr := tracksOf(witnessC, counsel.ParticipantID)
		if len(tr) != 2 {
			return false
		}
		for _, x := range tr {
			if x.Stats().Packets < 10 {
				return false
			}
		}
		return true
	})

	// Sequestration: the witness may no longer see counsel's camera.
	pol.set(func() { pol.noForward[[2]uuid.UUID{witness.ParticipantID, counsel.ParticipantID}] = SourceCamera })
	ts.Notify(ts.session, []uuid.UUID{witness.ParticipantID}, "space_changed", json.RawMessage(`{}`))
	ev := waitEvent(t, wEvents, protocol.TypeTrackUnpublished, 5*time.Second)
	if tr := decode[protocol.TrackEvent](t, ev).Track; tr.Source != "camera" {
		t.Errorf("unpublished %s, want the camera", tr.Source)
	}
	var cam *client.RemoteTrack
	for _, tr := range tracksOf(witnessC, counsel.ParticipantID) {
		if tr.Source == "camera" {
			cam = tr
		}
	}
	// What was in flight when the down-track went arrives; then nothing
	// more in an explicit window of a second.
	n := settled(t, func() uint64 { return cam.Stats().Packets })
	wait.Throughout(time.Second, func() {
		if m := cam.Stats().Packets; m != n {
			t.Fatalf("witness still receives counsel's camera after the policy forbade it (%d → %d packets)", n, m)
		}
	})
	_ = judge
}

// recordingHooks is a Hooks implementation like the session layer's.
type recordingHooks struct {
	mu           sync.Mutex
	refuse       map[uuid.UUID]bool
	disconnected []uuid.UUID
}

func (h *recordingHooks) Connected(_ context.Context, id Identity) (json.RawMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse[id.ParticipantID] {
		return nil, &protocol.Error{Code: "waiting_room", Message: "wait to be admitted"}
	}
	return json.RawMessage(`{"title":"Case 42","role":"` + id.Role + `"}`), nil
}

func (h *recordingHooks) Disconnected(_ context.Context, id Identity) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disconnected = append(h.disconnected, id.ParticipantID)
}

func (h *recordingHooks) Message(_ context.Context, from Identity, typ string, payload json.RawMessage) (json.RawMessage, error) {
	switch typ {
	case "present":
		var in struct {
			To []uuid.UUID `json:"to"`
		}
		if err := json.Unmarshal(payload, &in); err != nil {
			return nil, fault.BadRequest
		}
		to, _ := json.Marshal(in.To)
		return json.RawMessage(`{"exhibit":"P-1","by":"` + from.ParticipantID.String() + `","to":` + string(to) + `}`), nil
	case "chat":
		return payload, nil
	case "forbidden":
		return nil, fault.Forbidden
	}
	return nil, unknownType(typ)
}

// addressedAudience delivers a "present" only to the participants its data
// lists in "to", without the list; everything else to everyone.
type addressedAudience struct{}

func (addressedAudience) Filter(_, receiver uuid.UUID, ev Event) (json.RawMessage, bool) {
	if ev.Type != "present" {
		return ev.Data, true
	}
	var in struct {
		Exhibit string      `json:"exhibit"`
		By      string      `json:"by"`
		To      []uuid.UUID `json:"to"`
	}
	if err := json.Unmarshal(ev.Data, &in); err != nil || !slices.Contains(in.To, receiver) {
		return nil, false
	}
	out, _ := json.Marshal(struct {
		Exhibit string `json:"exhibit"`
		By      string `json:"by"`
	}{in.Exhibit, in.By})
	return out, true
}

func TestHooksOwnRoomMessages(t *testing.T) {
	hooks := &recordingHooks{refuse: map[uuid.UUID]bool{}}
	ts := newTestServer(t, func(c *Config) { c.Hooks, c.Audience = hooks, addressedAudience{} })
	a, aid, aEvents := ts.dial(t, "clerk", nil)
	if got := string(a.Joined().Session); got != `{"title":"Case 42","role":"party"}` {
		t.Errorf("joined.session = %s", got)
	}
	b, bid, bEvents := ts.dial(t, "party b", nil)
	_, _, cEvents := ts.dial(t, "party c", nil)
	pj := waitEvent(t, aEvents, protocol.TypePeerJoined, 5*time.Second)
	if p := decode[protocol.PeerEvent](t, pj); p.Participant.ID != bid.ParticipantID.String() || p.Participant.Name != "party b" {
		t.Errorf("peer_joined %+v", p)
	}

	// present goes only where the audience lets it, as it shapes it.
	if err := a.Send(context.Background(), "present", map[string]any{"to": []uuid.UUID{bid.ParticipantID}}); err != nil {
		t.Fatal(err)
	}
	env := waitEvent(t, bEvents, "present", 5*time.Second)
	if string(env.Data) != `{"exhibit":"P-1","by":"`+aid.ParticipantID.String()+`"}` {
		t.Errorf("present data %s", env.Data)
	}
	select {
	case env := <-cEvents:
		if env.Type == "present" {
			t.Error("present reached a participant it was not addressed to")
		}
	case <-time.After(300 * time.Millisecond):
	}
	// chat goes to everyone, the sender included.
	if err := b.Send(context.Background(), protocol.TypeChat, map[string]string{"text": "hello"}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan protocol.Envelope{aEvents, bEvents, cEvents} {
		waitEvent(t, ch, protocol.TypeChat, 5*time.Second)
	}
	// Errors from the hook reach the sender only.
	_, err := b.Request(context.Background(), "forbidden", map[string]int{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Errorf("forbidden message: %v", err)
	}
	_, err = b.Request(context.Background(), "teleport", map[string]int{})
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnknownType {
		t.Errorf("unknown message: %v", err)
	}

	// Disconnect: the participant gets a bye with the reason, the others peer_left.
	ts.Disconnect(ts.session, bid.ParticipantID, "removed")
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the removed participant's connection stayed open")
	}
	if r := b.ByeReason(); r != "removed" {
		t.Errorf("bye reason %q", r)
	}
	if st := websocket.CloseStatus(b.Err()); st != websocket.StatusNormalClosure {
		t.Errorf("close status %v", st)
	}
	pl := waitEvent(t, aEvents, protocol.TypePeerLeft, 5*time.Second)
	if p := decode[protocol.PeerEvent](t, pl); p.Participant.ID != bid.ParticipantID.String() {
		t.Errorf("peer_left %+v", p)
	}
	waitFor(t, 5*time.Second, "Disconnected hook", func() bool {
		hooks.mu.Lock()
		defer hooks.mu.Unlock()
		return len(hooks.disconnected) == 1 && hooks.disconnected[0] == bid.ParticipantID
	})

	// A participant the session layer refuses gets its error and a close.
	tok, id := ts.tokens.issue(ts.session, "late", "party")
	hooks.mu.Lock()
	hooks.refuse[id.ParticipantID] = true
	hooks.mu.Unlock()
	_, err = client.Dial(context.Background(), client.Config{URL: ts.url(ts.session), Token: tok})
	if !errors.As(err, &pe) || pe.Code != "waiting_room" {
		t.Errorf("refused join: %v", err)
	}
}

func TestActiveSpeaker(t *testing.T) {
	rec := &memRecorder{}
	ts := newTestServer(t, func(c *Config) { c.Recorder = rec })
	aC, a, _ := ts.dial(t, "a", nil)
	bC, b, _ := ts.dial(t, "b", nil)
	_, _, events := ts.dial(t, "listener", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pa, err := aC.Publish(ctx, client.PublishOptions{Audio: true, AudioLevel: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Stop()
	pb, err := bC.Publish(ctx, client.PublishOptions{Audio: true, AudioLevel: 127})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Stop()
	speaker := func(want uuid.UUID) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case env := <-events:
				if env.Type == protocol.TypeActiveSpeaker {
					if s := decode[protocol.ActiveSpeaker](t, env); s.ParticipantID == want.String() {
						return
					}
				}
			case <-deadline:
				t.Fatalf("%s never became the active speaker", want)
			}
		}
	}
	speaker(a.ParticipantID)
	// b starts talking, a falls silent.
	pb.SetAudioLevel(20)
	pa.SetAudioLevel(127)
	speaker(b.ParticipantID)
	// The recorder was told the same changes, naming each speaker's
	// audio track, so that a recording keeps who spoke when.
	waitFor(t, 5*time.Second, "both changes at the recorder", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var got []uuid.UUID
		for _, s := range rec.speakers {
			if s.track == "" {
				return false
			}
			got = append(got, s.participant)
		}
		return slices.Equal(got, []uuid.UUID{a.ParticipantID, b.ParticipantID})
	})
}

// memTap is a recording tap in memory.
type memTap struct {
	mu      sync.Mutex
	info    sfu.TrackInfo
	packets int
	sawKey  bool
	lastSeq uint16
	gaps    int
	slow    atomic.Int64 // nanoseconds per packet
	lost    atomic.Int64
	closed  chan struct{}
	ssrc    uint32             // of the packets
	srs     []sfu.SenderReport // as delivered, in order with the packets
	srFirst bool               // a report came before the first packet
}

func (m *memTap) WriteRTP(p *rtp.Packet) error {
	if d := m.slow.Load(); d > 0 {
		time.Sleep(time.Duration(d)) // a slow recorder: the test's input
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(p.Payload) > 4 && p.Payload[0]&0x10 != 0 && p.Payload[4]&0x01 == 0 {
		// The synthetic VP8 payload: S bit, 4-byte descriptor, P bit clear.
		m.sawKey = true
	}
	if m.packets > 0 && p.SequenceNumber != m.lastSeq+1 {
		m.gaps++
	}
	m.packets++
	m.lastSeq = p.SequenceNumber
	m.ssrc = p.SSRC
	return nil
}

func (m *memTap) SenderReport(sr sfu.SenderReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.srFirst = m.srFirst || m.packets == 0
	m.srs = append(m.srs, sr)
}

func (m *memTap) Close() error      { close(m.closed); return nil }
func (m *memTap) TapLost(n int)     { m.lost.Add(int64(n)) }
func (m *memTap) count() (int, int) { m.mu.Lock(); defer m.mu.Unlock(); return m.packets, m.gaps }

type memRecorder struct {
	mu       sync.Mutex
	on       bool
	slow     time.Duration
	taps     []*memTap
	speakers []speakerChange
}

type speakerChange struct {
	participant uuid.UUID
	track       string
}

func (r *memRecorder) ActiveSpeaker(_, participant uuid.UUID, trackID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.speakers = append(r.speakers, speakerChange{participant, trackID})
}

func (r *memRecorder) MayRecord(_, _ uuid.UUID, src Source) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.on && src == SourceCamera
}

func (r *memRecorder) OpenTap(_ uuid.UUID, info sfu.TrackInfo) (sfu.Tap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &memTap{info: info, closed: make(chan struct{})}
	t.slow.Store(int64(r.slow))
	r.taps = append(r.taps, t)
	return t, nil
}

func TestRecorderTap(t *testing.T) {
	rec := &memRecorder{}
	ts := newTestServer(t, func(c *Config) { c.Recorder = rec })
	pubC, pubID, _ := ts.dial(t, "witness", nil)
	sub, _, _ := ts.dial(t, "judge", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	waitFor(t, 15*time.Second, "media", func() bool { return len(tracksOf(sub, pubID.ParticipantID)) == 2 })
	if len(rec.taps) != 0 {
		t.Fatal("a tap opened while recording was off")
	}
	// The judge starts recording: the session layer flips its state and notifies.
	// The subscriber's join asked for keyframes: wait until no request has
	// been made for longer than the rate limit, so that the tap's own
	// request is not swallowed by it.
	settledFor(t, 600*time.Millisecond, func() uint64 { return uint64(counterValue(t, "chamber_pli_total")) })
	pliBefore := counterValue(t, "chamber_pli_total")
	rec.mu.Lock()
	rec.on = true
	rec.mu.Unlock()
	ts.Notify(ts.session, nil, "recording", json.RawMessage(`{"on":true}`))
	waitFor(t, 5*time.Second, "a tap on the camera", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.taps) == 1
	})
	tap := rec.taps[0]
	if tap.info.ParticipantID != pubID.ParticipantID || tap.info.ParticipantName != "witness" || tap.info.Source != SourceCamera ||
		tap.info.Kind != webrtc.RTPCodecTypeVideo || tap.info.Codec.MimeType != webrtc.MimeTypeVP8 || tap.info.StreamID == "" || tap.info.RequestKeyframe == nil {
		t.Errorf("tap info %+v", tap.info)
	}
	tap.info.RequestKeyframe() // must not block
	// Opening the tap asked the publisher for a keyframe, so that the
	// recording can start soon.
	waitFor(t, 5*time.Second, "a keyframe request for the tap", func() bool { return counterValue(t, "chamber_pli_total") > pliBefore })
	waitFor(t, 5*time.Second, "a keyframe in the tap", func() bool {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		return tap.sawKey
	})
	waitFor(t, 5*time.Second, "packets in the tap", func() bool { n, _ := tap.count(); return n > 100 })
	waitFor(t, 5*time.Second, "a sender report in the tap", func() bool {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		return len(tap.srs) > 0
	})
	rec.mu.Lock()
	rec.on = false
	rec.mu.Unlock()
	ts.Notify(ts.session, nil, "recording", json.RawMessage(`{"on":false}`))
	select {
	case <-tap.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the tap was not closed when recording stopped")
	}
	if n, gaps := tap.count(); gaps > 0 {
		t.Errorf("tap saw %d gaps in %d packets on a loss-free path", gaps, n)
	}
	// The publisher's sender reports came through, for the stream the tap
	// received.
	tap.mu.Lock()
	for _, sr := range tap.srs {
		if sr.SSRC != tap.ssrc || sr.NTPTime == 0 {
			t.Errorf("sender report %+v for a tap receiving SSRC %d", sr, tap.ssrc)
		}
	}
	tap.mu.Unlock()
	// A tap opened on a stream whose reports the SFU has seen gets the
	// latest before its first packet: a recording need not wait for the
	// next one.
	rec.mu.Lock()
	rec.on = true
	rec.mu.Unlock()
	ts.Notify(ts.session, nil, "recording", json.RawMessage(`{"on":true}`))
	waitFor(t, 5*time.Second, "a second tap with packets", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.taps) != 2 {
			return false
		}
		n, _ := rec.taps[1].count()
		return n > 0
	})
	second := rec.taps[1]
	second.mu.Lock()
	defer second.mu.Unlock()
	if !second.srFirst || len(second.srs) == 0 || second.srs[0].SSRC != second.ssrc {
		t.Errorf("second tap: reports %+v, the first before any packet: %v", second.srs, second.srFirst)
	}
}

func TestSlowTapNeverBlocksForwarding(t *testing.T) {
	rec := &memRecorder{on: true, slow: 20 * time.Millisecond}
	ts := newTestServer(t, func(c *Config) { c.Recorder = rec })
	pubC, pubID, _ := ts.dial(t, "witness", nil)
	sub, _, _ := ts.dial(t, "judge", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Video: true, VideoBitrate: 1_500_000})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "media", func() bool { return len(tracksOf(sub, pubID.ParticipantID)) == 1 })
	// The tap takes 50 packets a second of the ~170 sent: its queue of
	// 1024 fills in about 9 s. Forwarding must not notice.
	var tap *memTap
	waitFor(t, 10*time.Second, "the tap", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.taps) > 0 {
			tap = rec.taps[0]
		}
		return tap != nil
	})
	waitFor(t, 30*time.Second, "the slow tap's queue to overflow", func() bool { return tap.lost.Load() > 0 })
	pub.Stop()
	tr := tracksOf(sub, pubID.ParticipantID)[0]
	settled(t, func() uint64 { return tr.Stats().Packets })
	tap.slow.Store(0)
	st := tr.Stats()
	if st.Lost() > st.Expected()/200 {
		t.Errorf("subscriber lost %d of %d packets behind a slow tap", st.Lost(), st.Expected())
	}
	_ = pubC.Close()
	select {
	case <-tap.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("tap not closed")
	}
	if tap.lost.Load() == 0 {
		t.Error("the slow tap was not told about dropped packets")
	}
	if st.Packets < 1024 {
		t.Errorf("only %d packets forwarded while the tap's queue filled", st.Packets)
	}
}
