package sfu

import (
	"net"
	"net/netip"
	"sync"
)

// tcpGuard is the ICE-TCP listener as pion's TCP mux sees it: a connection
// beyond the caps (per remote address, and in total) is closed the moment
// it is accepted, before pion spends a goroutine and a read buffer on it.
// Anyone on the internet can open these connections without credentials:
// until its first STUN message names one of our ICE agents, a connection is
// nobody's, so it must cost little and not for long (the first-message
// timeout, TCPMuxParams.FirstStunBindTimeout, closes the silent ones).
type tcpGuard struct {
	net.Listener
	perIP, total int

	mu   sync.Mutex
	byIP map[netip.Addr]int
	n    int
}

func newTCPGuard(ln net.Listener, perIP, total int) *tcpGuard {
	return &tcpGuard{Listener: ln, perIP: perIP, total: total, byIP: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps.
func (g *tcpGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if reason := g.admit(ip); reason != "" {
			metricICETCPRefused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		return &guardedConn{Conn: c, g: g, ip: ip}, nil
	}
}

// admit counts a new connection from ip, or says which cap refuses it.
func (g *tcpGuard) admit(ip netip.Addr) (refused string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.n >= g.total:
		return "total"
	case g.byIP[ip] >= g.perIP:
		return "per_address"
	}
	g.n++
	g.byIP[ip]++
	return ""
}

func (g *tcpGuard) release(ip netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
}

// open returns how many connections are held.
func (g *tcpGuard) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// guardedConn gives its place back when closed (once, however often pion
// closes it).
type guardedConn struct {
	net.Conn
	g    *tcpGuard
	ip   netip.Addr
	once sync.Once
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.ip) })
	return err
}
