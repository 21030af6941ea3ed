// Package turnserver is Chamber's embedded TURN server (pion/turn): UDP, TCP
// and TLS listeners, time-limited REST-style credentials (RFC draft
// uberti-behave-turn-rest: username "expiry:user", password
// base64(HMAC-SHA1(secret, username))), and relaying only towards the
// SFU's own addresses, so that it cannot be used as an open relay.
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

	"github.com/pion/turn/v4"

	"github.com/chamber-court/chamber/signaling/internal/pionlog"
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
	// AllowPeer says which peer addresses clients may relay to; nil allows
	// only loopback. The signalling server passes the SFU's addresses.
	AllowPeer func(ip net.IP) bool
}

// Server is a running TURN server.
type Server struct {
	srv                    *turn.Server
	secret                 string
	realm                  string
	udpAddr, tcpAddr, tlsA net.Addr
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
	allow := cfg.AllowPeer
	if allow == nil {
		allow = func(ip net.IP) bool { return ip.IsLoopback() }
	}
	s := &Server{secret: base64.StdEncoding.EncodeToString(secret), realm: cfg.Realm}
	lf := pionlog.Factory{Logger: cfg.Logger}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP, Address: cfg.RelayIP.String()}
	}
	perm := func(_ net.Addr, peer net.IP) bool { return allow(peer) }

	var sc turn.ServerConfig
	var closers []func()
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			c()
		}
		return nil, err
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
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			return fail(fmt.Errorf("turnserver: TCP: %w", err))
		}
		closers = append(closers, func() { _ = ln.Close() })
		s.tcpAddr = ln.Addr()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: ln, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	if cfg.TLSAddr != "" {
		ln, err := tls.Listen("tcp", cfg.TLSAddr, cfg.TLS)
		if err != nil {
			return fail(fmt.Errorf("turnserver: TLS: %w", err))
		}
		closers = append(closers, func() { _ = ln.Close() })
		s.tlsA = ln.Addr()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: ln, RelayAddressGenerator: gen(), PermissionHandler: perm})
	}
	sc.Realm = cfg.Realm
	sc.LoggerFactory = lf
	sc.AuthHandler = turn.LongTermTURNRESTAuthHandler(s.secret, lf.NewLogger("turn-auth"))
	srv, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turnserver: %w", err))
	}
	s.srv = srv
	return s, nil
}

// Credentials returns a username and password valid for ttl, for user (a
// participant ID, so that allocations can be traced to a participant).
func (s *Server) Credentials(user string, ttl time.Duration) (username, password string, err error) {
	return turn.GenerateLongTermTURNRESTCredentials(s.secret, user, ttl)
}

// UDPAddr, TCPAddr and TLSAddr return the listeners' addresses (nil when disabled).
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// TCPAddr returns the TCP listener's address, or nil.
func (s *Server) TCPAddr() net.Addr { return s.tcpAddr }

// TLSAddr returns the TLS listener's address, or nil.
func (s *Server) TLSAddr() net.Addr { return s.tlsA }

// Close stops the server and closes every allocation.
func (s *Server) Close() error { return s.srv.Close() }
