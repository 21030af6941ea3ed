// Package client is a Go client of Chamber's signalling protocol and media:
// it joins a session with a token, publishes synthetic media (Opus-like
// audio and VP8 video, optionally simulcast, with a send timestamp in every
// payload), receives everyone else's tracks and keeps per-track statistics.
// Tests and the load generator use it; it is a real pion WebRTC peer.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/pionlog"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// Config configures a client.
type Config struct {
	// URL is the signalling endpoint, ws(s)://host/api/v1/sessions/{id}/signal.
	URL   string
	Token string
	// Header is sent with the WebSocket handshake (e.g. Origin).
	Header http.Header
	// SameOrigin follows a redirect as the browser does: to the path it
	// gives, on URL's own scheme and host, rather than to the node URL.
	SameOrigin bool
	Logger     *slog.Logger

	// ICETransportPolicy "relay" forces TURN (webrtc.ICETransportPolicyRelay).
	ICETransportPolicy webrtc.ICETransportPolicy
	// NetworkTypes restricts candidate gathering, e.g. {NetworkTypeTCP4}
	// for ICE-TCP only; nil means UDP4 and TCP4.
	NetworkTypes []webrtc.NetworkType
	// ICEURLFilter, when set, keeps only the ICE server URLs from
	// "joined" for which it returns true (tests pick one TURN transport).
	ICEURLFilter func(url string) bool
	// LoopbackOnly gathers host candidates on loopback only (tests and
	// local benchmarks).
	LoopbackOnly bool
	// Interceptors registers the client's interceptors; nil registers
	// pion's defaults (NACK, reports, TWCC), as a browser would have.
	Interceptors func(*webrtc.MediaEngine, *interceptor.Registry) error
	// ReceiveBuffer sets the receive buffer of the client's media socket
	// (bytes; 0 = the system default). The load generator enlarges it so
	// that its own scheduling hiccups do not show up as network loss.
	ReceiveBuffer int
	// ReceiveLoss drops this fraction of incoming RTP datagrams at the
	// client's UDP socket: packet loss on the path, for tests.
	ReceiveLoss float64
	// OnRTP, when set, sees every received RTP packet (tests use it to
	// check frame boundaries). It runs on the track's reader goroutine.
	OnRTP func(t *RemoteTrack, p *Packet)
	// OnTrack is called when a remote track starts.
	OnTrack func(t *RemoteTrack)
	// Events receives every server message the client does not consume
	// itself (chat, session events, peer and track events, layer, active
	// speaker, errors without a pending request). Nil discards them.
	Events chan<- protocol.Envelope
	// Trace, when set, sees every message from the server, "joined"
	// first, in order and before the client acts on it (tests record all
	// that a participant learns). It runs on the client's reader.
	Trace func(env protocol.Envelope)
	// JoinAttempts bounds how often Dial tries a join the server answers
	// "unavailable" (a database or store outage); 0 tries until ctx ends.
	JoinAttempts int
}

// Client is a joined participant connection.
type Client struct {
	cfg     Config
	log     *slog.Logger
	ws      *websocket.Conn
	joined  protocol.Joined
	started time.Time // when Dial began

	pub, sub *webrtc.PeerConnection
	udpMuxes []*ice.UDPMuxDefault // our own sockets, one per PeerConnection

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	pending   map[string]chan protocol.Envelope // replies by request ID
	subLines  map[string]protocol.MediaLine     // subscribe mids
	remote    []*RemoteTrack
	cands     [2][]webrtc.ICECandidateInit
	hasRemote [2]bool
	nextID    atomic.Uint64
	firstRTP  atomic.Int64 // ns after started when the first RTP arrived, 0 before
	offers    chan protocol.Envelope
	closeErr  error
	closed    chan struct{}
	byeReason atomic.Value
	publishes []*Publication
}

// ErrClosed is returned after the connection closed.
var ErrClosed = errors.New("client: closed")

// Dial connects, joins and returns once "joined" has arrived. A join the
// server answers "unavailable" — it cannot reach its database or store —
// is tried again with exponential back-off (0.25 s doubling to 5 s, with
// jitter) until it succeeds, ctx ends, or Config.JoinAttempts is used up;
// every other refusal is final.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	redirects := 0
	for attempt := 1; ; attempt++ {
		c, err := dial(ctx, cfg)
		var rd *redirected
		if errors.As(err, &rd) && redirects < maxRedirects {
			// Placed on another node (a public gallery's edge): join
			// there at once, with the same token.
			redirects++
			cfg.Logger.Info("join redirected", "url", rd.URL, "path", rd.Path, "reason", rd.Reason)
			next := rd.URL
			if cfg.SameOrigin {
				if next, err = sameOrigin(cfg.URL, rd.Path); err != nil {
					return nil, err
				}
			}
			cfg.URL = next
			attempt--
			continue
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable || (cfg.JoinAttempts > 0 && attempt >= cfg.JoinAttempts) {
			return c, err
		}
		wait := joinBackoff(attempt)
		cfg.Logger.Info("join answered unavailable; retrying", "attempt", attempt, "in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: join: %w (last answer: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// sameOrigin is path on base's scheme and host.
func sameOrigin(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return "", fmt.Errorf("client: redirect path %q on %q", path, base)
	}
	return u.Scheme + "://" + u.Host + path, nil
}

// maxRedirects bounds the redirects Dial follows for one join.
const maxRedirects = 3

// redirected is a join answered with redirect.
type redirected struct{ protocol.Redirect }

func (r *redirected) Error() string { return "client: join redirected to " + r.URL }

// URL is the signalling URL the client joined at (after any redirect).
func (c *Client) URL() string { return c.cfg.URL }

// joinBackoff is the wait before join attempt n+1.
func joinBackoff(n int) time.Duration {
	d := min(5*time.Second, 250*time.Millisecond<<min(n-1, 5))
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

// dial makes one attempt at connecting and joining.
func dial(ctx context.Context, cfg Config) (*Client, error) {
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		started:  time.Now(),
		pending:  make(map[string]chan protocol.Envelope),
		subLines: make(map[string]protocol.MediaLine),
		offers:   make(chan protocol.Envelope, 16),
		closed:   make(chan struct{}),
	}
	ws, _, err := websocket.Dial(ctx, cfg.URL, &websocket.DialOptions{HTTPHeader: cfg.Header})
	if err != nil {
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	c.ws = ws
	c.ctx, c.cancel = context.WithCancel(context.Background())

	if err := c.write(ctx, protocol.TypeJoin, "join", protocol.Join{Version: protocol.Version, Token: cfg.Token, Redirect: true}); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("client: reading joined: %w", err)
	}
	var env protocol.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("client: malformed reply: %w", err)
	}
	if cfg.Trace != nil {
		cfg.Trace(env)
	}
	if env.Type == protocol.TypeError {
		var pe protocol.Error
		_ = json.Unmarshal(env.Data, &pe)
		_ = ws.CloseNow()
		return nil, &pe
	}
	if env.Type == protocol.TypeRedirect {
		rd := &redirected{}
		_ = ws.CloseNow()
		if err := json.Unmarshal(env.Data, &rd.Redirect); err != nil || rd.URL == "" {
			return nil, fmt.Errorf("client: malformed redirect: %v", err)
		}
		return nil, rd
	}
	if env.Type != protocol.TypeJoined {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("client: expected joined, got %q", env.Type)
	}
	if err := json.Unmarshal(env.Data, &c.joined); err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("client: malformed joined: %w", err)
	}
	if err := c.newPeerConnections(); err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	c.wg.Add(3)
	go c.readLoop()
	go c.offerLoop()
	go c.pingLoop()
	return c, nil
}

func (c *Client) newPeerConnections() error {
	// One API each: with a socket of our own (ReceiveBuffer, ReceiveLoss)
	// the two PeerConnections must not share it, or the server, which
	// tells connections apart by their address on its one UDP port, would
	// take both for one.
	conf := webrtc.Configuration{ICEServers: c.iceServers(), ICETransportPolicy: c.cfg.ICETransportPolicy}
	api, err := c.api()
	if err != nil {
		return err
	}
	if c.pub, err = api.NewPeerConnection(conf); err != nil {
		c.closeMuxes()
		return err
	}
	if api, err = c.api(); err == nil {
		c.sub, err = api.NewPeerConnection(conf)
	}
	if err != nil {
		_ = c.pub.Close()
		c.closeMuxes()
		return err
	}
	for i, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
		name := protocol.PCPublish
		if i == 1 {
			name = protocol.PCSubscribe
		}
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			init := cand.ToJSON()
			_ = c.write(c.ctx, protocol.TypeCandidate, "", protocol.Candidate{
				PC: name, Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex,
			})
		})
	}
	c.sub.OnTrack(c.onTrack)
	return nil
}

// api builds the pion API both PeerConnections share: codecs and
// extensions, interceptors, and the network settings.
func (c *Client) api() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.ABSSendTimeURI}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	register := c.cfg.Interceptors
	if register == nil {
		register = webrtc.RegisterDefaultInterceptors
	}
	if err := register(me, ir); err != nil {
		return nil, err
	}
	se, err := c.settingEngine()
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

// settingEngine sets the network types and addresses, and the socket of
// our own when receive loss or a receive buffer is asked for.
func (c *Client) settingEngine() (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: c.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	types := c.cfg.NetworkTypes
	if types == nil {
		types = []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}
	}
	se.SetNetworkTypes(types)
	if c.cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if c.cfg.ReceiveLoss > 0 || c.cfg.ReceiveBuffer > 0 {
		// A socket of our own for this PeerConnection. Loss must happen
		// below SRTP, as on a real path: a packet dropped after decryption
		// would make its retransmission look like a replay.
		addr := &net.UDPAddr{IP: net.IPv4zero}
		if c.cfg.LoopbackOnly {
			addr.IP = net.IPv4(127, 0, 0, 1)
		}
		uc, err := net.ListenUDP("udp4", addr)
		if err != nil {
			return se, err
		}
		if c.cfg.ReceiveBuffer > 0 {
			_ = uc.SetReadBuffer(c.cfg.ReceiveBuffer)
		}
		var conn net.PacketConn = uc
		if c.cfg.ReceiveLoss > 0 {
			conn = newLossyConn(uc, c.cfg.ReceiveLoss)
		}
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn})
		c.udpMuxes = append(c.udpMuxes, mux)
		se.SetICEUDPMux(mux)
	}
	return se, nil
}

// iceServers returns the joined message's ICE servers, less the URLs
// Config.ICEURLFilter refuses.
func (c *Client) iceServers() []webrtc.ICEServer {
	var servers []webrtc.ICEServer
	for _, s := range c.joined.ICEServers {
		urls := s.URLs
		if c.cfg.ICEURLFilter != nil {
			urls = nil
			for _, u := range s.URLs {
				if c.cfg.ICEURLFilter(u) {
					urls = append(urls, u)
				}
			}
		}
		if len(urls) > 0 {
			servers = append(servers, webrtc.ICEServer{URLs: urls, Username: s.Username, Credential: s.Credential})
		}
	}
	return servers
}

// Joined returns the server's joined message.
func (c *Client) Joined() protocol.Joined { return c.joined }

// Done is closed when the connection has closed.
func (c *Client) Done() <-chan struct{} { return c.closed }

// Err returns why the connection closed (nil while open).
func (c *Client) Err() error {
	select {
	case <-c.closed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closeErr
	default:
		return nil
	}
}

// ByeReason returns the code of the server's bye message (protocol.Bye*), if any.
func (c *Client) ByeReason() string {
	s, _ := c.byeReason.Load().(string)
	return s
}

// JoinLatency returns the time from Dial to the first RTP packet received,
// or 0 if none has arrived.
func (c *Client) JoinLatency() time.Duration { return time.Duration(c.firstRTP.Load()) }

// PublishPeerConnection and SubscribePeerConnection expose the underlying
// PeerConnections (tests inspect the selected candidate pair).
func (c *Client) PublishPeerConnection() *webrtc.PeerConnection   { return c.pub }
func (c *Client) SubscribePeerConnection() *webrtc.PeerConnection { return c.sub }

// write sends one message.
func (c *Client) write(ctx context.Context, typ, id string, data any) error {
	b, err := protocol.Encode(typ, id, data)
	if err != nil {
		return err
	}
	return c.WriteRaw(ctx, b)
}

// WriteRaw sends raw bytes as one text message (tests send malformed input with it).
func (c *Client) WriteRaw(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// Send sends a message of any type (chat, present, …) without waiting.
func (c *Client) Send(ctx context.Context, typ string, data any) error {
	return c.write(ctx, typ, "", data)
}

// Request sends a message with a fresh ID and waits for the reply carrying
// that ID (or an error message).
func (c *Client) Request(ctx context.Context, typ string, data any) (protocol.Envelope, error) {
	id := "r" + strconv.FormatUint(c.nextID.Add(1), 10)
	ch := make(chan protocol.Envelope, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.write(ctx, typ, id, data); err != nil {
		return protocol.Envelope{}, err
	}
	select {
	case env := <-ch:
		if env.Type == protocol.TypeError {
			var pe protocol.Error
			_ = json.Unmarshal(env.Data, &pe)
			return env, &pe
		}
		return env, nil
	case <-ctx.Done():
		return protocol.Envelope{}, ctx.Err()
	case <-c.closed:
		return protocol.Envelope{}, ErrClosed
	}
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.closed)
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			c.cancel()
			return
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			c.log.Warn("malformed server message", "err", err)
			continue
		}
		if c.cfg.Trace != nil {
			c.cfg.Trace(env)
		}
		if env.ID != "" {
			c.mu.Lock()
			ch := c.pending[env.ID]
			c.mu.Unlock()
			if ch != nil {
				ch <- env
				continue
			}
		}
		switch env.Type {
		case protocol.TypeOffer:
			select {
			case c.offers <- env:
			case <-c.ctx.Done():
				return
			}
			continue
		case protocol.TypeCandidate:
			var cand protocol.Candidate
			if err := json.Unmarshal(env.Data, &cand); err == nil {
				c.addCandidate(cand)
			}
			continue
		case protocol.TypeBye:
			var bye protocol.Bye
			_ = json.Unmarshal(env.Data, &bye)
			c.byeReason.Store(bye.Code)
		}
		if c.cfg.Events != nil {
			select {
			case c.cfg.Events <- env:
			default:
				c.log.Warn("event dropped: channel full", "type", env.Type)
			}
		}
	}
}

func (c *Client) addCandidate(cand protocol.Candidate) {
	if cand.Candidate == "" {
		return
	}
	idx, pc := 0, c.pub
	if cand.PC == protocol.PCSubscribe {
		idx, pc = 1, c.sub
	}
	init := webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid, SDPMLineIndex: cand.SDPMLineIndex}
	c.mu.Lock()
	if !c.hasRemote[idx] {
		c.cands[idx] = append(c.cands[idx], init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := pc.AddICECandidate(init); err != nil {
		c.log.Debug("candidate rejected", "err", err)
	}
}

func (c *Client) remoteSet(idx int) {
	pc := c.pub
	if idx == 1 {
		pc = c.sub
	}
	c.mu.Lock()
	c.hasRemote[idx] = true
	cands := c.cands[idx]
	c.cands[idx] = nil
	c.mu.Unlock()
	for _, init := range cands {
		_ = pc.AddICECandidate(init)
	}
}

// offerLoop answers the server's subscribe offers, one at a time.
func (c *Client) offerLoop() {
	defer c.wg.Done()
	for {
		var env protocol.Envelope
		select {
		case env = <-c.offers:
		case <-c.ctx.Done():
			return
		}
		var sd protocol.SessionDescription
		if err := json.Unmarshal(env.Data, &sd); err != nil {
			continue
		}
		c.mu.Lock()
		for _, l := range sd.Tracks {
			c.subLines[l.Mid] = l
		}
		c.mu.Unlock()
		if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.SDP}); err != nil {
			c.log.Error("subscribe offer rejected", "err", err)
			continue
		}
		c.remoteSet(1)
		answer, err := c.sub.CreateAnswer(nil)
		if err != nil {
			c.log.Error("subscribe answer", "err", err)
			continue
		}
		if err := c.sub.SetLocalDescription(answer); err != nil {
			c.log.Error("subscribe answer", "err", err)
			continue
		}
		_ = c.write(c.ctx, protocol.TypeAnswer, "", protocol.SessionDescription{PC: protocol.PCSubscribe, SDP: c.sub.LocalDescription().SDP})
	}
}

func (c *Client) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			_ = c.write(c.ctx, protocol.TypePing, "", nil)
		}
	}
}

// SetQuality sends a quality preference for one received track.
func (c *Client) SetQuality(ctx context.Context, q protocol.Quality) error {
	return c.write(ctx, protocol.TypeQuality, "", q)
}

// SendREMB reports a receive bandwidth estimate to the server for every
// received track, as a browser does.
func (c *Client) SendREMB(bps uint64) error {
	var ssrcs []uint32
	for _, t := range c.RemoteTracks() {
		ssrcs = append(ssrcs, t.SSRC)
	}
	if len(ssrcs) == 0 {
		return errors.New("client: no remote tracks")
	}
	return c.sub.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bps), SSRCs: ssrcs}})
}

// SendPLI asks for a keyframe of a received track.
func (c *Client) SendPLI(t *RemoteTrack) error {
	return c.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.SSRC}})
}

// Close leaves the session and releases everything.
func (c *Client) Close() error {
	for _, p := range c.publications() {
		p.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = c.write(ctx, protocol.TypeLeave, "", nil)
	cancel()
	_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
	c.cancel()
	_ = c.ws.CloseNow()
	err1 := c.pub.Close()
	err2 := c.sub.Close()
	c.closeMuxes()
	c.wg.Wait()
	c.mu.Lock()
	remote := c.remote
	c.mu.Unlock()
	for _, t := range remote {
		<-t.done
	}
	return errors.Join(err1, err2)
}

func (c *Client) closeMuxes() {
	for _, m := range c.udpMuxes {
		_ = m.Close()
	}
}

func (c *Client) publications() []*Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Publication(nil), c.publishes...)
}
