package turnserver

import (
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v4"
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

	user, pass, err := srv.Credentials("participant-1", time.Minute)
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

	expiredUser, expiredPass, _ := srv.Credentials("participant-2", -time.Minute)
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
