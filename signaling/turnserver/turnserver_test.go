package turnserver

import (
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/chamber-court/chamber/internal/wait"
)

func newClient(t *testing.T, srv *Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: srv.UDPAddr().String(), TURNServerAddr: srv.UDPAddr().String(),
		Conn: conn, Username: user, Password: pass, Realm: "chamber",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCredentialsAndPeerRestriction(t *testing.T) {
	local, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer local.Close()
	other, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer other.Close()
	allowedPort := local.LocalAddr().(*net.UDPAddr).Port
	srv, err := New(Config{UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1), Secret: []byte("s3cret"),
		AllowPeerIP: net.IP.IsLoopback, PeerPort: allowedPort})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	user, pass, err := srv.Credentials("participant-1", "conn-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := newClient(t, srv, user, pass).Allocate()
	if err != nil {
		t.Fatalf("allocate with fresh credentials: %v", err)
	}
	defer relay.Close()
	// Relaying to the allowed port works; another port on the same host
	// gets nothing; another host is refused outright.
	_, _ = relay.WriteTo([]byte("no"), other.LocalAddr())
	_ = other.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := other.ReadFrom(make([]byte, 10)); err == nil {
		t.Errorf("relayed %d bytes to a port that is not the SFU's", n)
	}
	if _, err := relay.WriteTo([]byte("hi"), local.LocalAddr()); err != nil {
		t.Errorf("relay to loopback: %v", err)
	}
	_ = local.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	if n, _, err := local.ReadFrom(buf); err != nil || string(buf[:n]) != "hi" {
		t.Errorf("relayed datagram: %q %v", buf[:n], err)
	}
	if _, err := relay.WriteTo([]byte("hi"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}); err == nil {
		t.Error("relay to an outside address allowed")
	}

	expiredUser, expiredPass, _ := srv.Credentials("participant-2", "conn-2", -time.Minute)
	if _, err := newClient(t, srv, expiredUser, expiredPass).Allocate(); err == nil {
		t.Error("expired credentials accepted")
	}
	if _, err := newClient(t, srv, user, "forged").Allocate(); err == nil {
		t.Error("a wrong password accepted")
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{RelayIP: net.IPv4(127, 0, 0, 1)}); err != ErrNoListener {
		t.Errorf("no listener: %v", err)
	}
	if _, err := New(Config{TLSAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1)}); err == nil {
		t.Error("TLS without a certificate accepted")
	}
	if _, err := New(Config{UDPAddr: "127.0.0.1:0"}); err == nil {
		t.Error("missing relay IP accepted")
	}
}

// relayFixture is a TURN server relaying only to sink's port, and sink.
func relayFixture(t *testing.T, cfg Config) (*Server, net.PacketConn) {
	t.Helper()
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	cfg.UDPAddr, cfg.RelayIP, cfg.AllowPeerIP = "127.0.0.1:0", net.IPv4(127, 0, 0, 1), net.IP.IsLoopback
	cfg.PeerPort = sink.LocalAddr().(*net.UDPAddr).Port
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, sink
}

func TestAllocationQuotas(t *testing.T) {
	srv, _ := relayFixture(t, Config{MaxAllocationsPerParticipant: 2, MaxAllocationsPerAddress: 3})
	allocate := func(participant, conn string) error {
		user, pass, err := srv.Credentials(participant, conn, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		relay, err := newClient(t, srv, user, pass).Allocate()
		if err == nil {
			t.Cleanup(func() { _ = relay.Close() })
		}
		return err
	}
	// Two allocations for one participant, over two of its connections.
	for _, conn := range []string{"a", "b"} {
		if err := allocate("p1", conn); err != nil {
			t.Fatalf("allocation within the participant's quota: %v", err)
		}
	}
	if err := allocate("p1", "c"); err == nil {
		t.Error("a third allocation for one participant was granted (quota 2)")
	}
	// Another participant from the same address: one more fits the
	// address quota of 3, then no more.
	if err := allocate("p2", "a"); err != nil {
		t.Fatalf("allocation within the address quota: %v", err)
	}
	if err := allocate("p3", "a"); err == nil {
		t.Error("a fourth allocation from one address was granted (quota 3)")
	}
	if n := srv.Allocations(); n != 3 {
		t.Errorf("%d allocations open, want 3", n)
	}
}

func TestRevokedCredentialStopsRelaying(t *testing.T) {
	srv, sink := relayFixture(t, Config{})
	user, pass, err := srv.Credentials("p1", "conn", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := newClient(t, srv, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	buf := make([]byte, 64)
	if _, err := relay.WriteTo([]byte("before"), sink.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := sink.ReadFrom(buf); err != nil || string(buf[:n]) != "before" {
		t.Fatalf("relayed before the revocation: %q %v", buf[:n], err)
	}

	srv.Revoke("p1", "conn")
	// The allocation is closed on the server: wait until pion has deleted it.
	if !wait.WithinEvery(5*time.Second, 10*time.Millisecond, func() bool { return srv.Allocations() == 0 }) {
		t.Fatalf("%d allocations still open after the revocation", srv.Allocations())
	}
	// What the client still sends goes nowhere (bounded negative check).
	_, _ = relay.WriteTo([]byte("after"), sink.LocalAddr())
	_ = sink.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := sink.ReadFrom(buf); err == nil {
		t.Errorf("relayed %q after the revocation", buf[:n])
	}
	// And the credential allocates nothing new.
	if _, err := newClient(t, srv, user, pass).Allocate(); err == nil {
		t.Error("a revoked credential allocated")
	}
	// Another connection of the same participant is unaffected.
	user2, pass2, _ := srv.Credentials("p1", "conn2", time.Minute)
	relay2, err := newClient(t, srv, user2, pass2).Allocate()
	if err != nil {
		t.Fatalf("the participant's new connection: %v", err)
	}
	_ = relay2.Close()
}
