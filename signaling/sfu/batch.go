package sfu

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
)

// batchSize is the most datagrams sent by one sendmmsg call.
const batchSize = 64

// batchConn is the media UDP socket. While a writer goroutine fans a
// packet out (between begin and end), every datagram written to the socket
// — by that writer or anyone else — is copied into a batch, and end sends
// the batch with one sendmmsg system call instead of one sendto per
// subscriber. Outside a fan-out round writes go straight to the socket.
// The batch lock guards only the copy; the system call runs on a batch
// taken out of the lock.
type batchConn struct {
	*net.UDPConn
	pc     *ipv4.PacketConn
	active atomic.Int32 // writers inside a round

	mu   sync.Mutex
	cur  *batch
	pool sync.Pool
}

type batch struct {
	n      int
	msgs   [batchSize]ipv4.Message
	bufs   [batchSize][maxPacketSize + 64]byte
	slices [batchSize][1][]byte
	addrs  [batchSize]net.UDPAddr
	ips    [batchSize][16]byte
}

func newBatchConn(c *net.UDPConn) *batchConn {
	b := &batchConn{UDPConn: c, pc: ipv4.NewPacketConn(c)}
	b.pool.New = func() any { return new(batch) }
	b.cur = b.pool.Get().(*batch)
	return b
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.UDPConn.ReadFromUDPAddrPort(p)
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if b.active.Load() == 0 || len(p) > maxPacketSize+64 {
		return b.UDPConn.WriteToUDPAddrPort(p, addr)
	}
	b.mu.Lock()
	bt := b.cur
	i := bt.n
	bt.n++
	n := copy(bt.bufs[i][:], p)
	bt.slices[i][0] = bt.bufs[i][:n]
	ip := addr.Addr().Unmap()
	var ipb []byte
	if ip.Is4() {
		a := ip.As4()
		ipb = bt.ips[i][:4]
		copy(ipb, a[:])
	} else {
		a := ip.As16()
		ipb = bt.ips[i][:16]
		copy(ipb, a[:])
	}
	bt.addrs[i] = net.UDPAddr{IP: ipb, Port: int(addr.Port())}
	bt.msgs[i] = ipv4.Message{Buffers: bt.slices[i][:], Addr: &bt.addrs[i]}
	var full *batch
	if bt.n == batchSize {
		full = bt
		b.cur = b.pool.Get().(*batch)
	}
	b.mu.Unlock()
	if full != nil {
		b.send(full)
	}
	return len(p), nil
}

// WriteTo writes through the batch as well (pion uses WriteToAddrPort).
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return b.WriteToAddrPort(p, ua.AddrPort())
	}
	return b.UDPConn.WriteTo(p, addr)
}

// begin marks the start of a fan-out round.
func (b *batchConn) begin() { b.active.Add(1) }

// end sends what the round (and anyone else meanwhile) queued.
func (b *batchConn) end() {
	b.active.Add(-1)
	b.mu.Lock()
	bt := b.cur
	if bt.n == 0 {
		b.mu.Unlock()
		return
	}
	b.cur = b.pool.Get().(*batch)
	b.mu.Unlock()
	b.send(bt)
}

func (b *batchConn) send(bt *batch) {
	msgs := bt.msgs[:bt.n]
	for len(msgs) > 0 {
		n, err := b.pc.WriteBatch(msgs, 0)
		if err != nil {
			// One bad destination must not lose the rest: skip it.
			droppedWrite.Inc()
			if n <= 0 {
				n = 1
			}
		}
		msgs = msgs[n:]
	}
	bt.n = 0
	b.pool.Put(bt)
}
