package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// bare is the reference: a pion fan-out with nothing of Chamber's media path.
// It speaks enough of the signalling protocol for the load generator.
type bare struct {
	log *slog.Logger
	api *webrtc.API
	mux *ice.UDPMuxDefault

	mu     sync.Mutex
	peers  map[*barePeer]struct{}
	tracks []*bareTrack
}

type bareTrack struct {
	id     string
	owner  *barePeer
	source string
	remote *webrtc.TrackRemote
	pub    *webrtc.PeerConnection

	mu     sync.Mutex
	locals map[*barePeer]*webrtc.TrackLocalStaticRTP
}

type barePeer struct {
	b        *bare
	ws       *websocket.Conn
	id       uuid.UUID
	pub, sub *webrtc.PeerConnection
	out      chan []byte
	ctx      context.Context
	cancel   context.CancelFunc

	mu          sync.Mutex
	mids        map[string]string // publish mid → source
	lines       map[string]protocol.MediaLine
	negotiating bool
	pending     bool
	cands       [2][]webrtc.ICECandidateInit
	hasRemote   [2]bool
}

func newBare(log *slog.Logger, udp string, interceptors bool) (*bare, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if interceptors {
		if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
			return nil, err
		}
	}
	addr, err := net.ResolveUDPAddr("udp", udp)
	if err != nil {
		return nil, err
	}
	uc, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: uc})
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
	return &bare{log: log, api: api, mux: mux, peers: map[*barePeer]struct{}{}}, nil
}

func (b *bare) close() error { return b.mux.Close() }

func (b *bare) handle(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	p := &barePeer{b: b, ws: ws, id: uuid.New(), out: make(chan []byte, 1024), ctx: ctx, cancel: cancel,
		mids: map[string]string{}, lines: map[string]protocol.MediaLine{}}
	defer p.close()
	go p.writeLoop()

	_, data, err := ws.Read(ctx)
	if err != nil {
		return
	}
	var env protocol.Envelope
	if json.Unmarshal(data, &env) != nil || env.Type != protocol.TypeJoin {
		return
	}
	// Like Chamber, the publish PeerConnection is created by the first
	// publish offer, so that receive-only participants cost the same.
	if p.sub, err = b.api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return
	}
	p.candidates(p.sub, protocol.PCSubscribe)
	p.send(protocol.TypeJoined, env.ID, protocol.Joined{
		Version: protocol.Version, ConnectionID: uuid.NewString(),
		Participant: protocol.Participant{ID: p.id.String(), Name: "bench"},
		ICEServers:  []protocol.ICEServer{}, Peers: []protocol.PeerEvent{},
	})
	b.mu.Lock()
	b.peers[p] = struct{}{}
	tracks := append([]*bareTrack(nil), b.tracks...)
	b.mu.Unlock()
	added := false
	for _, t := range tracks {
		added = t.addSubscriber(p) || added
	}
	if added {
		p.negotiate()
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var env protocol.Envelope
		if json.Unmarshal(data, &env) != nil {
			continue
		}
		p.handleMessage(env)
	}
}

func (p *barePeer) candidates(pc *webrtc.PeerConnection, name string) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.send(protocol.TypeCandidate, "", protocol.Candidate{PC: name, Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex})
	})
}

func (p *barePeer) handleMessage(env protocol.Envelope) {
	switch env.Type {
	case protocol.TypeOffer:
		var sd protocol.SessionDescription
		if json.Unmarshal(env.Data, &sd) != nil {
			return
		}
		if p.pub == nil {
			pc, err := p.b.api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				return
			}
			p.candidates(pc, protocol.PCPublish)
			pc.OnTrack(p.onTrack)
			p.mu.Lock()
			p.pub = pc
			p.mu.Unlock()
		}
		p.mu.Lock()
		for _, l := range sd.Tracks {
			p.mids[l.Mid] = l.Source
		}
		p.mu.Unlock()
		if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.SDP}); err != nil {
			p.send(protocol.TypeError, env.ID, protocol.Error{Code: protocol.CodeBadSDP, Message: err.Error()})
			return
		}
		p.remoteSet(0)
		ans, err := p.pub.CreateAnswer(nil)
		if err == nil {
			err = p.pub.SetLocalDescription(ans)
		}
		if err != nil {
			p.send(protocol.TypeError, env.ID, protocol.Error{Code: protocol.CodeBadSDP, Message: err.Error()})
			return
		}
		p.send(protocol.TypeAnswer, env.ID, protocol.SessionDescription{PC: protocol.PCPublish, SDP: p.pub.LocalDescription().SDP})
	case protocol.TypeAnswer:
		var sd protocol.SessionDescription
		if json.Unmarshal(env.Data, &sd) != nil {
			return
		}
		if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sd.SDP}); err != nil {
			p.b.log.Warn("bare: answer", "err", err)
		}
		p.remoteSet(1)
		p.mu.Lock()
		p.negotiating = false
		again := p.pending
		p.pending = false
		p.mu.Unlock()
		if again {
			p.negotiate()
		}
	case protocol.TypeCandidate:
		var c protocol.Candidate
		if json.Unmarshal(env.Data, &c) != nil || c.Candidate == "" {
			return
		}
		idx := 0
		if c.PC == protocol.PCSubscribe {
			idx = 1
		}
		init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
		p.mu.Lock()
		pc := p.pub
		if idx == 1 {
			pc = p.sub
		}
		if !p.hasRemote[idx] {
			p.cands[idx] = append(p.cands[idx], init)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		_ = pc.AddICECandidate(init)
	case protocol.TypePing:
		p.send(protocol.TypePong, env.ID, env.Data)
	case protocol.TypeLeave:
		p.cancel()
	}
}

func (p *barePeer) remoteSet(idx int) {
	p.mu.Lock()
	pc := p.pub
	if idx == 1 {
		pc = p.sub
	}
	p.hasRemote[idx] = true
	cands := p.cands[idx]
	p.cands[idx] = nil
	p.mu.Unlock()
	for _, c := range cands {
		_ = pc.AddICECandidate(c)
	}
}

func (p *barePeer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	mid := recv.RTPTransceiver().Mid()
	p.mu.Lock()
	src := p.mids[mid]
	p.mu.Unlock()
	t := &bareTrack{id: uuid.NewString(), owner: p, source: src, remote: remote, pub: p.pub, locals: map[*barePeer]*webrtc.TrackLocalStaticRTP{}}
	b := p.b
	b.mu.Lock()
	b.tracks = append(b.tracks, t)
	var subs []*barePeer
	for q := range b.peers {
		if q != p {
			subs = append(subs, q)
		}
	}
	b.mu.Unlock()
	for _, q := range subs {
		if t.addSubscriber(q) {
			q.negotiate()
		}
	}
	// Read RTCP so that the receive-side interceptors work.
	go func() {
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1500)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		t.mu.Lock()
		for _, l := range t.locals {
			_, _ = l.Write(buf[:n])
		}
		t.mu.Unlock()
	}
}

// addSubscriber gives q its own local track copy of t.
func (t *bareTrack) addSubscriber(q *barePeer) bool {
	l, err := webrtc.NewTrackLocalStaticRTP(t.remote.Codec().RTPCodecCapability, t.id, t.owner.id.String())
	if err != nil {
		return false
	}
	sender, err := q.sub.AddTrack(l)
	if err != nil {
		return false
	}
	// The interceptors (NACK responder, reports) need the RTCP read.
	go func() {
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	t.mu.Lock()
	t.locals[q] = l
	t.mu.Unlock()
	q.mu.Lock()
	q.lines[t.id] = protocol.MediaLine{TrackID: t.id, ParticipantID: t.owner.id.String(), Source: t.source, Kind: t.remote.Kind().String()}
	q.mu.Unlock()
	return true
}

func (p *barePeer) negotiate() {
	p.mu.Lock()
	if p.negotiating {
		p.pending = true
		p.mu.Unlock()
		return
	}
	p.negotiating = true
	p.mu.Unlock()
	offer, err := p.sub.CreateOffer(nil)
	if err == nil {
		err = p.sub.SetLocalDescription(offer)
	}
	if err != nil {
		p.b.log.Warn("bare: offer", "err", err)
		return
	}
	var lines []protocol.MediaLine
	p.mu.Lock()
	for _, tr := range p.sub.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Track() != nil {
			if l, ok := p.lines[s.Track().ID()]; ok {
				l.Mid = tr.Mid()
				lines = append(lines, l)
			}
		}
	}
	p.mu.Unlock()
	p.send(protocol.TypeOffer, "", protocol.SessionDescription{PC: protocol.PCSubscribe, SDP: p.sub.LocalDescription().SDP, Tracks: lines})
}

func (p *barePeer) send(typ, id string, data any) {
	b, err := protocol.Encode(typ, id, data)
	if err != nil {
		return
	}
	select {
	case p.out <- b:
	case <-p.ctx.Done():
	}
}

func (p *barePeer) writeLoop() {
	for {
		select {
		case b := <-p.out:
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			err := p.ws.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				p.cancel()
				return
			}
		case <-p.ctx.Done():
			return
		}
	}
}

func (p *barePeer) close() {
	p.cancel()
	b := p.b
	b.mu.Lock()
	delete(b.peers, p)
	kept := b.tracks[:0]
	for _, t := range b.tracks {
		if t.owner != p {
			kept = append(kept, t)
		}
	}
	b.tracks = kept
	all := append([]*bareTrack(nil), b.tracks...)
	b.mu.Unlock()
	for _, t := range all {
		t.mu.Lock()
		delete(t.locals, p)
		t.mu.Unlock()
	}
	p.mu.Lock()
	pub := p.pub
	p.mu.Unlock()
	if pub != nil {
		_ = pub.Close()
	}
	if p.sub != nil {
		_ = p.sub.Close()
	}
	_ = p.ws.CloseNow()
}
