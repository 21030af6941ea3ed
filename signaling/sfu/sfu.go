// Package sfu is Chamber's media path: a selective forwarding unit on pion.
//
// Every participant connection (a Peer) has two PeerConnections: "publish",
// on which the participant sends its tracks and the server only receives, and
// "subscribe", on which the server sends everyone else's tracks. Each
// published track (an UpTrack; with simulcast, one reader per layer) is read
// by exactly one goroutine that stores every packet once in a shared packet
// cache and hands its sequence number to a small pool of writer goroutines,
// each serving several subscribers' down-tracks. A down-track rewrites SSRC,
// payload type, sequence number and timestamp (and, after a simulcast switch,
// the VP8 picture ID) so that its subscriber sees one continuous stream.
//
// No pion interceptor runs on the forwarding path. NACKs from subscribers are
// answered from the shared cache, sender reports are generated per down-track
// once a second, PLI/FIR from subscribers are forwarded to the publisher with
// a rate limit, and REMB from subscribers drives simulcast layer selection.
// On the publish side, where the cost is per received rather than per
// forwarded packet, pion's NACK generator, receiver reports and TWCC feedback
// interceptors do their usual job.
//
// A Peer is assembled from parts with one job each: its negotiator makes
// and answers the session descriptions and handles the candidates (and the
// candidate filter), its bandwidth holds the subscriber's estimate and runs
// the allocator, a pure function of (time, estimate, state, tracks) to
// target layers, and the peer itself keeps the set of up- and down-tracks.
//
// Lock order. Where two locks are held at once they are taken in this
// order, never the reverse:
//
//	Room.mu → Peer.mu → downTrack.mu → UpTrack.mu → layer.actMu
//	bandwidth.mu (the allocator's) → Peer.mu
//	Peer.mu → negotiator.mu
//
// Peer.mu → UpTrack.mu also occurs directly (a new stream's layer is
// installed under the peer lock). bandwidth.mu and Room.mu are never held
// together. negotiator.mu, layer.srMu and the tap queues are leaves. No lock
// is held across a pion call that can call back into the SFU (Bind, from
// SetRemoteDescription, runs the allocator).
//
// Goroutines and their owners. The room owns its speaker detector; a Peer
// owns its negotiator, its RTCP sender and its down-tracks' RTCP readers
// (Peer.wg); an UpTrack owns each layer's reader and RTCP reader and the
// goroutine opening its recording tap (UpTrack.wg), and Peer.Close waits
// for every track the peer published; a layer's reader starts, stops and
// waits for the layer's writers (layer.writersWG); a tap queue's goroutine
// ends when the queue is closed. Each ends when its PeerConnection closes
// or its owner tells it to.
//
// docs/media.md explains the design; the benchmark is in docs/benchmarks.md.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/pionlog"
)

// Defaults for Config. The media ports are written here and nowhere else:
// the signalling server and the command line take them from these.
const (
	DefaultUDPPort                = 7882
	DefaultTCPPort                = 7881
	DefaultSubscriberBitrate      = 2_500_000 // bit/s assumed until a subscriber reports an estimate
	DefaultICEDisconnectedTimeout = 5 * time.Second
	DefaultICEFailedTimeout       = 15 * time.Second
	// ICE-TCP connections are open to anyone: these bound what strangers
	// can hold (Config.TCPMaxConnsPerAddress …).
	// A browser opens a TCP connection or two per PeerConnection; 64
	// leave room for a court building's participants behind one NAT.
	DefaultTCPMaxConnsPerAddress  = 64
	DefaultTCPMaxConns            = 1024
	DefaultTCPFirstMessageTimeout = 3 * time.Second
)

// DefaultUDPAddr and DefaultTCPAddr are the listen addresses of the default ports.
var (
	DefaultUDPAddr = ":" + itoa(DefaultUDPPort)
	DefaultTCPAddr = ":" + itoa(DefaultTCPPort)
)

// Config configures an SFU.
type Config struct {
	// Logger receives the SFU's logs; nil discards them.
	Logger *slog.Logger
	// UDPAddr is the one UDP address all media uses (ICE UDP mux).
	// Empty means DefaultUDPAddr; "127.0.0.1:0" picks a free loopback port.
	UDPAddr string
	// TCPAddr is the ICE-TCP address. Empty means DefaultTCPAddr; "off" disables ICE-TCP.
	TCPAddr string
	// TCPMaxConnsPerAddress and TCPMaxConns cap the ICE-TCP connections
	// held at once from one remote IP address and in total; a connection
	// beyond either is closed as soon as it is accepted. Zero means the
	// defaults.
	TCPMaxConnsPerAddress, TCPMaxConns int
	// TCPFirstMessageTimeout closes an ICE-TCP connection whose first STUN
	// message has not arrived in time; zero means the default.
	TCPFirstMessageTimeout time.Duration
	// NATIPs are the public addresses of a 1:1 NAT in front of the server;
	// host candidates then carry them instead of the local addresses.
	NATIPs []string
	// IncludeLoopback announces loopback candidates. It is implied when
	// UDPAddr is a loopback address (tests, local benchmarks).
	IncludeLoopback bool
	// Candidates filters the ICE candidates participants send (in SDP and
	// trickled); nil lets every candidate through.
	Candidates *CandidateFilter
	// ICEDisconnectedTimeout and ICEFailedTimeout bound how long a peer whose
	// network went away keeps its resources: after the failed timeout the peer
	// is closed. Zero means the defaults.
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	// SubscriberBitrate is the bandwidth assumed for a subscriber until it
	// sends a REMB; zero means DefaultSubscriberBitrate.
	SubscriberBitrate uint64
	// NoBatching sends every datagram with its own system call instead of
	// batching a fan-out round with sendmmsg (for comparison benchmarks).
	NoBatching bool
	// Clock reads the time for the allocator and the sender reports; nil
	// means the monotonic clock. Tests pass a clock they move.
	Clock Clock
}

// withDefaults fills in the zero fields.
func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = DefaultUDPAddr
	}
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = DefaultTCPAddr
	}
	if cfg.TCPMaxConnsPerAddress == 0 {
		cfg.TCPMaxConnsPerAddress = DefaultTCPMaxConnsPerAddress
	}
	if cfg.TCPMaxConns == 0 {
		cfg.TCPMaxConns = DefaultTCPMaxConns
	}
	if cfg.TCPFirstMessageTimeout == 0 {
		cfg.TCPFirstMessageTimeout = DefaultTCPFirstMessageTimeout
	}
	if cfg.ICEDisconnectedTimeout == 0 {
		cfg.ICEDisconnectedTimeout = DefaultICEDisconnectedTimeout
	}
	if cfg.ICEFailedTimeout == 0 {
		cfg.ICEFailedTimeout = DefaultICEFailedTimeout
	}
	if cfg.SubscriberBitrate == 0 {
		cfg.SubscriberBitrate = DefaultSubscriberBitrate
	}
	if cfg.Clock == nil {
		cfg.Clock = monotonic{}
	}
	return cfg
}

// SFU owns the media sockets and the pion APIs shared by every room.
type SFU struct {
	log      *slog.Logger
	cfg      Config
	clock    Clock
	udpConn  net.PacketConn
	batch    *batchConn // nil with NoBatching
	udpMux   *ice.UDPMuxDefault
	tcpLn    net.Listener
	tcpGuard *tcpGuard
	tcpMux   *ice.TCPMuxDefault
	pubAPI   *webrtc.API
	subAPI   *webrtc.API

	mu     sync.Mutex
	rooms  map[*Room]struct{}
	closed bool
}

// ErrClosed is returned when using a closed SFU, room or peer.
var ErrClosed = errors.New("sfu: closed")

// New opens the media sockets and prepares the SFU.
func New(cfg Config) (*SFU, error) {
	cfg = cfg.withDefaults()
	for _, ip := range cfg.NATIPs {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("sfu: NAT IP %q is not an IP address", ip)
		}
	}
	s := &SFU{log: cfg.Logger, cfg: cfg, clock: cfg.Clock, rooms: make(map[*Room]struct{})}
	lf := pionlog.Factory{Logger: cfg.Logger}
	udpAddr, err := s.openUDP(lf)
	if err != nil {
		return nil, err
	}
	if err := s.openTCP(lf); err != nil {
		s.closeSockets()
		return nil, err
	}
	se := s.settingEngine(lf, cfg.IncludeLoopback || (udpAddr.IP != nil && udpAddr.IP.IsLoopback()))
	if s.pubAPI, err = publishAPI(se); err != nil {
		s.closeSockets()
		return nil, err
	}
	subME, err := subscribeMediaEngine()
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("sfu: media engine: %w", err)
	}
	// An empty registry: nothing between a down-track and SRTP.
	s.subAPI = webrtc.NewAPI(webrtc.WithMediaEngine(subME), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return s, nil
}

// openUDP opens the one media UDP socket and its ICE mux.
func (s *SFU) openUDP(lf pionlog.Factory) (*net.UDPAddr, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", s.cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("sfu: media UDP address: %w", err)
	}
	uc, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("sfu: media UDP: %w", err)
	}
	// Larger socket buffers absorb the bursts of a keyframe fanned out to
	// many subscribers; the kernel caps them at net.core.[rw]mem_max.
	_ = uc.SetReadBuffer(4 << 20)
	_ = uc.SetWriteBuffer(4 << 20)
	s.udpConn = uc
	var muxConn net.PacketConn = uc
	if !s.cfg.NoBatching {
		s.batch = newBatchConn(uc)
		muxConn = s.batch
	}
	s.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: muxConn, Logger: lf.NewLogger("udpmux")})
	return udpAddr, nil
}

// openTCP opens the ICE-TCP listener behind its guard, unless disabled.
func (s *SFU) openTCP(lf pionlog.Factory) error {
	if strings.EqualFold(s.cfg.TCPAddr, "off") {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.TCPAddr)
	if err != nil {
		return fmt.Errorf("sfu: ICE-TCP: %w", err)
	}
	s.tcpLn = ln
	s.tcpGuard = newTCPGuard(ln, s.cfg.TCPMaxConnsPerAddress, s.cfg.TCPMaxConns)
	s.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
		Listener:        s.tcpGuard,
		Logger:          lf.NewLogger("tcpmux"),
		ReadBufferSize:  64,
		WriteBufferSize: 4 << 20, // a stalled TCP subscriber drops, it never blocks a writer
		// pion waits 30 s for a first message by default: a stranger's
		// silent connection must not hold a place that long.
		FirstStunBindTimeout: s.cfg.TCPFirstMessageTimeout,
		// A TCP connection whose first STUN names no live agent (a
		// client that left mid-handshake, or anyone on the internet)
		// is held this long in case its agent appears. Ours always
		// exist before their ufrag is sent, so pion's 30 s only keeps
		// strays and their goroutines around.
		AliveDurationForConnFromStun: 5 * time.Second,
	})
	return nil
}

// settingEngine is what both APIs share: the sockets, the network types,
// the candidates announced and the ICE timeouts.
func (s *SFU) settingEngine(lf pionlog.Factory, loopback bool) webrtc.SettingEngine {
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(s.udpMux)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	se.SetIncludeLoopbackCandidate(loopback)
	if len(s.cfg.NATIPs) > 0 {
		se.SetNAT1To1IPs(s.cfg.NATIPs, webrtc.ICECandidateTypeHost)
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(s.cfg.ICEDisconnectedTimeout, s.cfg.ICEFailedTimeout, 2*time.Second)
	// AEAD profiles first: AES-128-GCM costs a fifth of AES-CM + HMAC-SHA1 per packet.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.DisableActiveTCP(true)
	return se
}

// publishAPI builds the API of the publish PeerConnections: pion's NACK
// generator, receiver reports and TWCC feedback run there.
func publishAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	me, err := publishMediaEngine()
	if err != nil {
		return nil, fmt.Errorf("sfu: media engine: %w", err)
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: nack generator: %w", err)
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: receiver reports: %w", err)
	}
	ir.Add(rr)
	fb, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sfu: twcc: %w", err)
	}
	ir.Add(fb)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

func (s *SFU) closeSockets() {
	if s.tcpMux != nil {
		_ = s.tcpMux.Close()
	}
	if s.udpMux != nil {
		_ = s.udpMux.Close()
	}
}

// UDPAddr is the address of the media UDP socket.
func (s *SFU) UDPAddr() *net.UDPAddr { return s.udpConn.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the address of the ICE-TCP listener, or nil when disabled.
func (s *SFU) TCPAddr() *net.TCPAddr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr().(*net.TCPAddr)
}

// Close closes every room and the media sockets.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	rooms := make([]*Room, 0, len(s.rooms))
	for r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.Close()
	}
	s.closeSockets()
	return nil
}
