package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// blindAudience keeps one receiver from learning anything of one subject:
// no event whose Subject is them or whose data names them. It counts the
// types it was asked about, so the test knows every path consulted it.
type blindAudience struct {
	receiver, hidden uuid.UUID
	mu               sync.Mutex
	asked            map[string]int
}

func (a *blindAudience) Filter(_, receiver uuid.UUID, ev Event) (json.RawMessage, bool) {
	a.mu.Lock()
	a.asked[ev.Type]++
	a.mu.Unlock()
	if receiver != a.receiver {
		return ev.Data, true
	}
	if ev.Subject == a.hidden || bytes.Contains(ev.Data, []byte(a.hidden.String())) {
		return nil, false
	}
	return ev.Data, true
}

// MayPublish and MayForward make blindAudience the media Policy as well:
// its receiver gets none of the hidden participant's media, which the
// session layer's rules guarantee for whomever the audience keeps unaware.
func (a *blindAudience) MayPublish(uuid.UUID, uuid.UUID, Source) bool { return true }

func (a *blindAudience) MayForward(_, sub, pub uuid.UUID, _ Source) bool {
	return sub != a.receiver || pub != a.hidden
}

func (a *blindAudience) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked[typ]
}

// TestAudienceDecidesEveryEvent: every event bound for a connection — the
// peers of joined, peer_joined, peer_left, track and active-speaker
// announcements, session events and room messages — passes the Audience,
// and what it drops never reaches the connection.
func TestAudienceDecidesEveryEvent(t *testing.T) {
	aud := &blindAudience{asked: map[string]int{}}
	ts := newTestServer(t, func(c *Config) { c.Audience, c.Permissions = aud, aud })
	tokHidden, hidden := ts.tokens.issue(ts.session, "Hidden Witness", "witness")
	tokBlind, blind := ts.tokens.issue(ts.session, "Observer", "observer")
	aud.receiver, aud.hidden = blind.ParticipantID, hidden.ParticipantID

	// Everything the blind receiver is sent, in order.
	var (
		mu  sync.Mutex
		got []protocol.Envelope
	)
	trace := func(env protocol.Envelope) {
		mu.Lock()
		got = append(got, env)
		mu.Unlock()
	}
	dial := func(tok string, cfg client.Config) (*client.Client, chan protocol.Envelope) {
		t.Helper()
		events := make(chan protocol.Envelope, 1024)
		cfg.URL, cfg.Token, cfg.LoopbackOnly, cfg.Events, cfg.Logger = ts.url(ts.session), tok, true, events, testenv.Logger(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c, events
	}
	_, known, knownEvents := ts.dial(t, "Judge", nil)
	hiddenC, hiddenEvents := dial(tokHidden, client.Config{})
	_, blindEvents := dial(tokBlind, client.Config{Trace: trace})
	waitEvent(t, hiddenEvents, protocol.TypePeerJoined, 5*time.Second)

	// The hidden participant speaks: their track and their voice are
	// announced to others, never to the blind receiver, whom the Policy
	// keeps from their media.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := hiddenC.Publish(ctx, client.PublishOptions{Audio: true, AudioLevel: 25})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, knownEvents, protocol.TypeTrackPublished, 10*time.Second)
	waitEvent(t, knownEvents, protocol.TypeActiveSpeaker, 10*time.Second)
	pub.Stop()

	// A session event and a room message naming them.
	ts.Notify(ts.session, nil, "participant_updated", json.RawMessage(`{"id":"`+hidden.ParticipantID.String()+`","space":"waiting"}`))
	waitEvent(t, knownEvents, "participant_updated", 5*time.Second)
	if err := hiddenC.Send(context.Background(), protocol.TypeChat, map[string]string{"text": "may I speak?"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, knownEvents, protocol.TypeChat, 5*time.Second)

	// They leave.
	_ = hiddenC.Close()
	waitEvent(t, knownEvents, protocol.TypePeerLeft, 5*time.Second)

	// A last event both receive: the blind receiver has been sent all that
	// precedes it by then, since a connection's messages keep their order.
	ts.Notify(ts.session, nil, "marker", json.RawMessage(`{}`))
	waitEvent(t, blindEvents, "marker", 5*time.Second)

	for _, typ := range []string{protocol.TypePeerJoined, protocol.TypePeerLeft, protocol.TypeTrackPublished,
		protocol.TypeActiveSpeaker, protocol.TypeChat, "participant_updated", "marker"} {
		if aud.count(typ) == 0 {
			t.Errorf("the audience was never asked about %s", typ)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var joined protocol.Joined
	for _, env := range got {
		if env.Type == protocol.TypeJoined {
			joined = decode[protocol.Joined](t, env)
			continue
		}
		b, _ := json.Marshal(env)
		if bytes.Contains(b, []byte(hidden.ParticipantID.String())) || bytes.Contains(b, []byte("Hidden Witness")) {
			t.Errorf("the blind receiver learnt of the hidden participant: %s", b)
		}
	}
	if len(joined.Peers) != 1 || joined.Peers[0].Participant.ID != known.ParticipantID.String() {
		t.Fatalf("joined.peers = %+v, want the judge alone", joined.Peers)
	}
}
