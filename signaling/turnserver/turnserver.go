// Package turnserver is Chamber's embedded TURN server (pion/turn): UDP, TCP
// and TLS listeners, time-limited REST-style credentials (RFC draft
// uberti-behave-turn-rest: username "expiry:participant/connection",
// password base64(HMAC-SHA1(secret, username))), and relaying only towards
// the SFU's own addresses, so that it cannot be used as an open relay.
//
// A credential is good only while the signalling connection it was issued
// to lives: Revoke (called when the connection goes, whatever the reason)
// refuses it from then on and closes the allocations made with it. Quotas
// bound the allocations of one participant and of one client address.
package turnserver

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/turn/v5"

	"github.com/chamber-court/chamber/internal/pionlog"
)

// Config configures the TURN server. At least one listener address must be set.
type Config struct {
	Logger *slog.Logger
	// Realm of the long-term credentials; default "chamber".
	Realm string
	// UDPAddr, TCPAddr and TLSAddr are the listener addresses (e.g. ":3478",
	// ":3478", ":443"); empty disables that listener.
	UDPAddr, TCPAddr, TLSAddr string
	// TLS is the configuration of the TLS listener (certificate required).
	TLS *tls.Config
	// RelayIP is the address relayed candidates carry and relay sockets bind
	// to. The relay only talks to the SFU on this host, so a local address
	// works; it must be one the SFU can send to.
	RelayIP net.IP
	// Secret signs credentials; empty means 32 random bytes (credentials
	// then die with the process).
	Secret []byte
	// AllowPeerIP says which peer IPs clients may get a permission (or a
	// channel) for; nil allows only loopback. It runs once per permission,
	// not per datagram: pion relays only to IPs holding one. The signalling
	// server allows the host's own addresses and nothing else, so that a
	// participant cannot use the relay to reach other hosts.
	AllowPeerIP func(ip net.IP) bool
	// PeerPort, if not 0, is the only peer port datagrams are relayed to
	// (the SFU's media port), checked on every datagram since permissions
	// are per IP; 0 allows any port.
	PeerPort int
	// MaxAllocationsPerParticipant and MaxAllocationsPerAddress bound the
	// allocations held at once by one participant (all its connections)
	// and from one client IP address; beyond them an Allocate is refused
	// with 486 (Allocation Quota Reached). Zero means the defaults.
	MaxAllocationsPerParticipant, MaxAllocationsPerAddress int
}

// Defaults for Config. A browser allocates once per TURN URL (UDP, TCP,
// TLS) for each of its two PeerConnections: six per connection, twelve
// while a rejoin overlaps the old connection. 256 per address leave room
// for some forty participants behind one NAT (a court building's network)
// while one host cannot take the relay's ports.
const (
	DefaultMaxAllocationsPerParticipant = 12
	DefaultMaxAllocationsPerAddress     = 256
)

// Server is a running TURN server.
type Server struct {
	srv                    *turn.Server
	secret                 string
	realm                  string
	udpAddr, tcpAddr, tlsA net.Addr
	grants                 *grants
}

// ErrNoListener is returned when no listener address is configured.
var ErrNoListener = errors.New("turnserver: no listener configured")

// New starts the TURN server.
func New(cfg Config) (*Server, error) {
	if cfg.UDPAddr == "" && cfg.TCPAddr == "" && cfg.TLSAddr == "" {
		return nil, ErrNoListener
	}
	if cfg.RelayIP == nil {
		return nil, errors.New("turnserver: RelayIP is required")
	}
	if cfg.TLSAddr != "" && (cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil)) {
		return nil, errors.New("turnserver: the TLS listener needs a certificate")
	}
	if cfg.Realm == "" {
		cfg.Realm = "chamber"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	secret := cfg.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("turnserver: secret: %w", err)
		}
	}
	allow := cfg.AllowPeerIP
	if allow == nil {
		allow = net.IP.IsLoopback
	}
	if cfg.MaxAllocationsPerParticipant == 0 {
		cfg.MaxAllocationsPerParticipant = DefaultMaxAllocationsPerParticipant
	}
	if cfg.MaxAllocationsPerAddress == 0 {
		cfg.MaxAllocationsPerAddress = DefaultMaxAllocationsPerAddress
	}
	g := newGrants(cfg.MaxAllocationsPerParticipant, cfg.MaxAllocationsPerAddress, cfg.Logger)
	s := &Server{secret: base64.StdEncoding.EncodeToString(secret), realm: cfg.Realm, grants: g}
	lf := pionlog.Factory{Logger: cfg.Logger}
	gen := func() turn.RelayAddressGenerator {
		return &relayGenerator{ip: cfg.RelayIP, port: cfg.PeerPort, grants: g}
	}
	// Permissions are per IP (RFC 8656); the port is checked on every
	// relayed datagram by the relay socket.
	perm := func(_ net.Addr, peer net.IP) bool { return allow(peer) }

	sc, closers, err := s.listen(cfg, gen, perm)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			c()
		}
		return nil, err
	}
	sc.Realm = cfg.Realm
	sc.LoggerFactory = lf
	sc.AuthHandler = g.authHandler(turn.LongTermTURNRESTAuthHandler(s.secret, lf.NewLogger("turn-auth")))
	sc.QuotaHandler = g.quota
	sc.EventHandler = turn.EventHandler{OnAllocationCreated: g.created, OnAllocationDeleted: g.deleted}
	srv, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turnserver: %w", err))
	}
	s.srv = srv
	return s, nil
}

// listen opens the configured listeners; closers close those opened.
func (s *Server) listen(cfg Config, gen func() turn.RelayAddressGenerator, perm turn.PermissionHandler) (turn.ServerConfig, []func(), error) {
	var sc turn.ServerConfig
	var closers []func()
	fail := func(err error) (turn.ServerConfig, []func(), error) {
		for _, c := range closers {
			c()
		}
		return sc, nil, err
	}
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			return fail(fmt.Errorf("turnserver: UDP: %w", err))
		}
		closers = append(closers, func() { _ = pc.Close() })
		s.udpAddr = pc.LocalAddr()
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	for _, l := range []struct {
		addr, name string
		tls        *tls.Config
		set        *net.Addr
	}{{cfg.TCPAddr, "TCP", nil, &s.tcpAddr}, {cfg.TLSAddr, "TLS", cfg.TLS, &s.tlsA}} {
		if l.addr == "" {
			continue
		}
		var ln net.Listener
		var err error
		if l.tls != nil {
			ln, err = tls.Listen("tcp", l.addr, l.tls)
		} else {
			ln, err = net.Listen("tcp", l.addr)
		}
		if err != nil {
			return fail(fmt.Errorf("turnserver: %s: %w", l.name, err))
		}
		closers = append(closers, func() { _ = ln.Close() })
		*l.set = ln.Addr()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: ln, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	return sc, closers, nil
}

// Credentials returns a username and password for one signalling
// connection of a participant, valid for ttl or until Revoke, whichever
// comes first. The username names both, so that allocations are traced to
// a participant and die with the connection.
func (s *Server) Credentials(participant, connection string, ttl time.Duration) (username, password string, err error) {
	user := participant + "/" + connection
	username, password, err = turn.GenerateLongTermTURNRESTCredentials(s.secret, user, ttl)
	if err == nil {
		s.grants.grant(user)
	}
	return username, password, err
}

// Revoke ends a connection's credential: it is refused from now on and the
// allocations made with it are closed (they stop relaying at once).
func (s *Server) Revoke(participant, connection string) {
	s.grants.revoke(participant + "/" + connection)
}

// Allocations returns how many allocations are open.
func (s *Server) Allocations() int { return s.srv.AllocationCount() }

// UDPAddr, TCPAddr and TLSAddr return the listeners' addresses (nil when disabled).
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// TCPAddr returns the TCP listener's address, or nil.
func (s *Server) TCPAddr() net.Addr { return s.tcpAddr }

// TLSAddr returns the TLS listener's address, or nil.
func (s *Server) TLSAddr() net.Addr { return s.tlsA }

// Close stops the server and closes every allocation.
func (s *Server) Close() error { return s.srv.Close() }

// relayGenerator allocates relay sockets that only send to the allowed
// peer port, and registers them under their user so that Revoke can close
// them.
type relayGenerator struct {
	ip     net.IP
	port   int // 0: any
	grants *grants
}

func (g *relayGenerator) Validate() error {
	if g.ip == nil {
		return errors.New("turnserver: no relay IP")
	}
	return nil
}

func (g *relayGenerator) AllocatePacketConn(cfg turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if cfg.RequestedPort != 0 {
		return nil, nil, errors.New("turnserver: relay ports are not chosen by clients")
	}
	pc, err := net.ListenPacket(cfg.Network, net.JoinHostPort(g.ip.String(), "0"))
	if err != nil {
		return nil, nil, err
	}
	relayed := &net.UDPAddr{IP: g.ip, Port: pc.LocalAddr().(*net.UDPAddr).Port}
	if g.port != 0 {
		pc = &filteredConn{PacketConn: pc, port: g.port}
	}
	return g.grants.track(pc, cfg.UserID), relayed, nil
}

// AllocateListener and AllocateConn refuse TCP relay allocations (RFC
// 6062): media is relayed over UDP to the SFU, whatever carries it to the
// TURN server.
func (g *relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errors.New("turnserver: TCP allocations are not supported")
}

func (g *relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errors.New("turnserver: TCP allocations are not supported")
}

// filteredConn drops datagrams to any peer port but the allowed one, and
// reports them as sent so that the allocation lives on. The peer's IP needs
// no check here: pion relays only to IPs holding a permission, which
// AllowPeerIP granted.
type filteredConn struct {
	net.PacketConn
	port int
}

func (c *filteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); !ok || ua.Port != c.port {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}
