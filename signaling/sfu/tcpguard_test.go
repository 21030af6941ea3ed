package sfu

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/wait"
)

// closedWithin reports whether the server closed c within d (a read ends
// with EOF or a reset rather than the deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestICETCPCapsAndFirstMessageTimeout(t *testing.T) {
	const perAddr, firstMsg = 4, 2 * time.Second
	s, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		TCPMaxConnsPerAddress: perAddr, TCPMaxConns: 100, TCPFirstMessageTimeout: firstMsg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refusedBefore := counterOf(t, "chamber_ice_tcp_refused_total", "cap", "per_address")

	var conns []net.Conn
	for range perAddr + 6 {
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	// Beyond the cap: closed at once, long before the first-message timeout.
	for i, c := range conns[perAddr:] {
		if !closedWithin(c, firstMsg/2) {
			t.Errorf("connection %d beyond the cap of %d is still open", perAddr+i, perAddr)
		}
	}
	if got := counterOf(t, "chamber_ice_tcp_refused_total", "cap", "per_address") - refusedBefore; got != 6 {
		t.Errorf("refused connections counted: %v, want 6", got)
	}
	if n := s.tcpGuard.open(); n != perAddr {
		t.Errorf("%d connections held, want %d", n, perAddr)
	}
	// Within the cap but silent: closed by the first-message timeout.
	for i, c := range conns[:perAddr] {
		if !closedWithin(c, firstMsg+5*time.Second) {
			t.Fatalf("silent connection %d still open %v after it was made", i, time.Since(start))
		}
	}
	if d := time.Since(start); d < firstMsg/2 {
		t.Errorf("silent connections closed after %v, before the first-message timeout of %v", d, firstMsg)
	}
	// Their places are free again.
	if !wait.WithinEvery(5*time.Second, 10*time.Millisecond, func() bool { return s.tcpGuard.open() == 0 }) {
		t.Fatalf("%d places still held", s.tcpGuard.open())
	}
	c, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if closedWithin(c, firstMsg/4) {
		t.Error("a new connection within the cap was closed at once")
	}
}

func TestICETCPTotalCap(t *testing.T) {
	s, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", TCPMaxConnsPerAddress: 10, TCPMaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns[3:] {
		if !closedWithin(c, time.Second) {
			t.Errorf("connection %d beyond the total cap of 3 is still open", 3+i)
		}
	}
	if n := s.tcpGuard.open(); n != 3 {
		t.Errorf("%d connections held, want 3", n)
	}
}
