package signaling

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// observers is a Policy under which the listed participants publish nothing.
type observers struct {
	mu  sync.Mutex
	ids map[uuid.UUID]bool
}

func (o *observers) MayPublish(_, participant uuid.UUID, _ Source) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.ids[participant]
}

func (o *observers) MayForward(uuid.UUID, uuid.UUID, uuid.UUID, Source) bool { return true }

func (o *observers) add(id uuid.UUID) {
	o.mu.Lock()
	o.ids[id] = true
	o.mu.Unlock()
}

func TestObserverPublishIsRefused(t *testing.T) {
	pol := &observers{ids: map[uuid.UUID]bool{}}
	ts := newTestServer(t, func(c *Config) { c.Permissions = pol })
	obsC, obs, _ := ts.dial(t, "observer", nil)
	pol.add(obs.ParticipantID)
	partyC, party, _ := ts.dial(t, "party", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := obsC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 100_000})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("observer's publish: %v, want a %q error", err, protocol.CodeForbidden)
	}
	// No publish PeerConnection, no up-track on the server.
	if c := ts.connOf(t, obs.ParticipantID); c.peer.Stats().Published != 0 {
		t.Errorf("the observer has %d published tracks", c.peer.Stats().Published)
	}

	// An admitted party publishes, and the observer receives it.
	mediaFlows(t, partyC, obsC, party)
	if got := ts.connOf(t, obs.ParticipantID).peer.Stats().Published; got != 0 {
		t.Errorf("the observer has %d published tracks", got)
	}
}

// connOf returns a participant's one signalling connection.
func (ts *testServer) connOf(t testing.TB, participant uuid.UUID) *conn {
	t.Helper()
	conns, _ := ts.connsOf(ts.session, []uuid.UUID{participant})
	if len(conns) != 1 {
		t.Fatalf("%d connections of %s", len(conns), participant)
	}
	return conns[0]
}

// turnAllocate allocates a relay on the test server's TURN UDP listener
// with the credentials of a "joined".
func turnAllocate(t *testing.T, ts *testServer, ice protocol.ICEServer) (net.PacketConn, error) {
	t.Helper()
	udp, _, _ := ts.TURNAddrs()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: udp.String(), TURNServerAddr: udp.String(),
		Conn: conn, Username: ice.Username, Password: ice.Credential, Realm: "chamber"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.Allocate()
}

// A removed participant's TURN credential dies with its connection: its
// allocation is closed and no new one is granted.
func TestTURNCredentialDiesWithTheParticipant(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.TURNUDPAddr = "127.0.0.1:0"
		c.PublicHost = "127.0.0.1"
	})
	c, id, _ := ts.dial(t, "witness", nil)
	ice := c.Joined().ICEServers[0]
	relay, err := turnAllocate(t, ts, ice)
	if err != nil {
		t.Fatalf("allocate with the joined credentials: %v", err)
	}
	defer relay.Close()
	// Relay towards the SFU's media port works while the participant is in.
	if _, err := relay.WriteTo([]byte("x"), ts.MediaUDPAddr()); err != nil {
		t.Fatalf("relaying: %v", err)
	}
	if n := ts.turn.Allocations(); n != 1 {
		t.Fatalf("%d allocations, want 1", n)
	}

	ts.Disconnect(ts.session, id.ParticipantID, "removed")
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed participant's connection stayed open")
	}
	waitFor(t, 10*time.Second, "the removed participant's allocation to close", func() bool { return ts.turn.Allocations() == 0 })
	if _, err := turnAllocate(t, ts, ice); err == nil {
		t.Error("the removed participant's credential allocated again")
	}
}

// With the candidate filter on, participants behind the TURN relay (whose
// relayed candidates the filter allows) connect through it, and another
// participant's loopback host candidates are dropped and counted. (That
// participant may still connect: the SFU answers the checks it receives,
// at the address they came from, which is no lever; what the filter stops
// is the SFU sending checks where a candidate points.)
func TestCandidateFilterWithTURN(t *testing.T) {
	no := false
	ts := newTestServer(t, func(c *Config) {
		c.AllowPrivateCandidates = &no
		c.TURNUDPAddr = "127.0.0.1:0"
		c.PublicHost = "127.0.0.1"
	})
	before := labeledValue(t, "chamber_ice_candidates_dropped_total", "reason", "loopback")
	relayOnly := func(cfg *client.Config) {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		cfg.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
		cfg.ICEURLFilter = func(u string) bool { return strings.HasSuffix(u, "transport=udp") }
	}
	pubC, pubID, _ := ts.dial(t, "publisher", relayOnly)
	sub, _, _ := ts.dial(t, "subscriber", relayOnly)
	host, _, _ := ts.dial(t, "host candidates", nil)
	mediaFlows(t, pubC, sub, pubID)
	for _, pc := range []*webrtc.PeerConnection{pubC.PublishPeerConnection(), sub.SubscribePeerConnection()} {
		if pair := selectedPair(t, pc); pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("selected pair %s is not relayed", pair)
		}
	}
	waitFor(t, 10*time.Second, "the loopback host candidates to be dropped", func() bool {
		return labeledValue(t, "chamber_ice_candidates_dropped_total", "reason", "loopback") > before
	})
	_ = host
}
