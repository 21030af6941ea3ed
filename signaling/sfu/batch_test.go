package sfu

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBatchConn sends through a batch on an IPv4 socket and on a
// dual-stack one, and checks every datagram arrives intact and in order.
func TestBatchConn(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			addr, _ := net.ResolveUDPAddr("udp", listen)
			uc, err := net.ListenUDP("udp", addr)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", listen, err)
			}
			defer uc.Close()
			sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			b := newBatchConn(uc)
			to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sink.LocalAddr().(*net.UDPAddr).Port))
			const n = batchSize + 10 // one full batch sent early, the rest at end
			b.begin()
			for i := 0; i < n; i++ {
				if _, err := b.WriteToAddrPort([]byte{byte(i), 0xaa}, to); err != nil {
					t.Fatal(err)
				}
			}
			b.end()
			// Outside a round, writes go straight out.
			if _, err := b.WriteToAddrPort([]byte{n, 0xbb}, to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			_ = sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := 0; i <= n; i++ {
				k, _, err := sink.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if k != 2 || buf[0] != byte(i) {
					t.Fatalf("datagram %d: got % x", i, buf[:k])
				}
			}
		})
	}
}
