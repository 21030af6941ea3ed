package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// PublishOptions describe synthetic media to publish.
type PublishOptions struct {
	Audio bool
	Video bool
	// VideoSource is "camera" (default) or "screen".
	VideoSource string
	// Simulcast sends three VP8 layers with RIDs q, h and f at 1/10, 1/3
	// and all of VideoBitrate.
	Simulcast bool
	// H264 sends H.264 (constrained baseline, packetization mode 1)
	// instead of VP8: SPS and PPS in a STAP-A before each IDR, frames
	// fragmented in FU-A.
	H264 bool
	// VideoBitrate of the (top) layer in bit/s; default 1,500,000.
	VideoBitrate int
	// FPS is the frame rate; default 30.
	FPS int
	// KeyframeInterval; default 3 s (and on every PLI).
	KeyframeInterval time.Duration
	// PacketSize is the largest video payload in bytes; default 1100.
	PacketSize int
	// AudioLevel is sent in the audio-level extension, in -dBov (0 loudest,
	// 127 silence); default 30, i.e. speech.
	AudioLevel int
	// VP8Frames, when set, are real VP8 frames (the first a keyframe, the
	// others predicted from it, e.g. an IVF file's) sent in a loop instead
	// of synthetic ones — from the first again on every keyframe request
	// — and without the synthetic trailer, so that what the server
	// records decodes. Not with Simulcast or H264.
	VP8Frames [][]byte
}

// Publication is synthetic media being published.
type Publication struct {
	c      *Client
	opts   PublishOptions
	audio  *webrtc.TrackLocalStaticRTP
	video  []*webrtc.TrackLocalStaticRTP // by layer
	rids   []string
	asend  *webrtc.RTPSender
	vsend  *webrtc.RTPSender
	mids   []string
	level  atomic.Int32
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	audioSent atomic.Uint64
	videoSent [3]atomic.Uint64
	keyframe  [3]atomic.Bool
	// keyframeRequests counts the PLIs and FIRs the server sent.
	keyframeRequests atomic.Uint64
	// layerKeyframeRequests counts them by the video layer asked for.
	layerKeyframeRequests [3]atomic.Uint64
}

// KeyframeRequests counts the keyframe requests (PLI, FIR) the server has
// sent this publication.
func (p *Publication) KeyframeRequests() uint64 { return p.keyframeRequests.Load() }

// LayerKeyframeRequests counts the keyframe requests the server has sent
// for one video layer (0 without simulcast; 0, 1, 2 for q, h, f).
func (p *Publication) LayerKeyframeRequests(layer int) uint64 {
	if layer < 0 || layer >= len(p.layerKeyframeRequests) {
		return 0
	}
	return p.layerKeyframeRequests[layer].Load()
}

// Layer bitrate fractions of a simulcast publication, lowest first.
var simulcastRIDs = []string{"q", "h", "f"}

var simulcastShare = []float64{0.1, 1.0 / 3, 1}

// Publish negotiates and starts synthetic media.
func (c *Client) Publish(ctx context.Context, opts PublishOptions) (*Publication, error) {
	if !opts.Audio && !opts.Video {
		return nil, errors.New("client: nothing to publish")
	}
	p := &Publication{c: c, opts: opts.withDefaults(), stopCh: make(chan struct{})}
	p.level.Store(int32(p.opts.AudioLevel))
	stream := "chamber-" + strconvItoa(int(c.nextID.Add(1)))
	var lines []protocol.MediaLine
	var trs []*webrtc.RTPTransceiver
	if opts.Audio {
		tr, err := p.addAudio(stream)
		if err != nil {
			return nil, err
		}
		trs = append(trs, tr)
		lines = append(lines, protocol.MediaLine{Source: "microphone"})
	}
	if opts.Video {
		tr, err := p.addVideo(stream)
		if err != nil {
			return nil, err
		}
		trs = append(trs, tr)
		lines = append(lines, protocol.MediaLine{Source: p.opts.VideoSource})
	}
	if err := p.negotiate(ctx, trs, lines); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.publishes = append(c.publishes, p)
	c.mu.Unlock()
	p.start()
	return p, nil
}

// withDefaults fills in the options left zero.
func (o PublishOptions) withDefaults() PublishOptions {
	if o.VideoBitrate <= 0 {
		o.VideoBitrate = 1_500_000
	}
	if o.FPS <= 0 {
		o.FPS = 30
	}
	if o.KeyframeInterval <= 0 {
		o.KeyframeInterval = 3 * time.Second
	}
	if o.PacketSize <= 0 {
		o.PacketSize = 1100
	}
	if o.AudioLevel == 0 {
		o.AudioLevel = 30
	}
	if o.VideoSource == "" {
		o.VideoSource = "camera"
	}
	return o
}

// addAudio adds the Opus track's sendonly transceiver.
func (p *Publication) addAudio(stream string) (*webrtc.RTPTransceiver, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", stream)
	if err != nil {
		return nil, err
	}
	tr, err := p.c.pub.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	p.audio, p.asend = t, tr.Sender()
	return tr, nil
}

// addVideo adds the video transceiver: one track, or one per simulcast layer.
func (p *Publication) addVideo(stream string) (*webrtc.RTPTransceiver, error) {
	vc := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if p.opts.H264 {
		vc = h264Capability
	}
	rids := []string{""}
	if p.opts.Simulcast {
		p.rids, rids = simulcastRIDs, simulcastRIDs
	}
	for _, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		t, err := webrtc.NewTrackLocalStaticRTP(vc, "video", stream, opts...)
		if err != nil {
			return nil, err
		}
		p.video = append(p.video, t)
	}
	tr, err := p.c.pub.AddTransceiverFromTrack(p.video[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	if p.opts.H264 {
		if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: h264Capability}}); err != nil {
			return nil, err
		}
	}
	for _, t := range p.video[1:] {
		if err := tr.Sender().AddEncoding(t); err != nil {
			return nil, err
		}
	}
	p.vsend = tr.Sender()
	return tr, nil
}

// negotiate sends the publish offer and applies the answer.
func (p *Publication) negotiate(ctx context.Context, trs []*webrtc.RTPTransceiver, lines []protocol.MediaLine) error {
	c := p.c
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	for i, tr := range trs {
		lines[i].Mid = tr.Mid()
		p.mids = append(p.mids, tr.Mid())
	}
	env, err := c.Request(ctx, protocol.TypeOffer, protocol.SessionDescription{PC: protocol.PCPublish, SDP: c.pub.LocalDescription().SDP, Tracks: lines})
	if err != nil {
		return fmt.Errorf("client: publish offer: %w", err)
	}
	var ans protocol.SessionDescription
	if err := jsonUnmarshal(env.Data, &ans); err != nil {
		return fmt.Errorf("client: publish answer: %w", err)
	}
	if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		return fmt.Errorf("client: publish answer: %w", err)
	}
	c.remoteSet(0)
	return nil
}

// start runs the senders and the RTCP readers of each track.
func (p *Publication) start() {
	if p.audio != nil {
		p.wg.Add(2)
		go p.sendAudio()
		go p.readRTCP(p.asend, "", -1)
	}
	for i := range p.video {
		p.keyframe[i].Store(true)
		rid := ""
		if p.rids != nil {
			rid = p.rids[i]
		}
		p.wg.Add(2)
		go p.sendVideo(i)
		go p.readRTCP(p.vsend, rid, i)
	}
}

// awaitDTLS waits until the sender's DTLS transport is connected; false
// means the publication was stopped or the transport failed first.
func (p *Publication) awaitDTLS(s *webrtc.RTPSender) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		switch s.Transport().State() {
		case webrtc.DTLSTransportStateConnected:
			return true
		case webrtc.DTLSTransportStateFailed, webrtc.DTLSTransportStateClosed:
			return false
		}
		select {
		case <-p.stopCh:
			return false
		case <-tick.C:
		}
	}
}

// Mids returns the mids of the publication's m-lines (audio first).
func (p *Publication) Mids() []string { return p.mids }

// SetAudioLevel changes the audio level sent (0 loudest … 127 silence).
func (p *Publication) SetAudioLevel(dBov int) { p.level.Store(int32(dBov)) }

// Sent returns the packets sent: audio, and video per layer.
func (p *Publication) Sent() (audio uint64, video []uint64) {
	audio = p.audioSent.Load()
	for i := range p.video {
		video = append(video, p.videoSent[i].Load())
	}
	return audio, video
}

// Stop stops sending (the tracks stay negotiated).
func (p *Publication) Stop() { p.stop() }

func (p *Publication) stop() {
	p.once.Do(func() { close(p.stopCh) })
	p.wg.Wait()
}

// extIDs returns the negotiated IDs of the extensions a sender writes.
func extIDs(s *webrtc.RTPSender) (mid, rid, level uint8) {
	for _, e := range s.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			mid = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			rid = uint8(e.ID)
		case sdp.AudioLevelURI:
			level = uint8(e.ID)
		}
	}
	return
}

func (p *Publication) sendAudio() {
	defer p.wg.Done()
	_, _, levelID := extIDs(p.asend)
	payload := make([]byte, 80+trailerSize)
	for i := range payload[:80] {
		payload[i] = byte(i * 7)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(time.Now().UnixNano()), Timestamp: uint32(time.Now().UnixNano())}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stopCh:
			return
		case <-tick.C:
		}
		pkt.Extension, pkt.Extensions = false, pkt.Extensions[:0]
		if levelID != 0 {
			_ = pkt.SetExtension(levelID, []byte{0x80 | byte(p.level.Load()&0x7f)})
		}
		putTrailer(payload, 0, time.Now())
		pkt.Payload = payload
		if err := p.audio.WriteRTP(&pkt); err == nil {
			p.audioSent.Add(1)
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 960
	}
}

// sendVideo produces the frames of one layer (VP8-shaped, or H.264 with
// opts.H264; see frameWriter) at opts.FPS, keyframes when asked and every
// KeyframeInterval. Packets of a frame are paced at 2.5× the bitrate, as
// browsers' pacers do.
func (p *Publication) sendVideo(layer int) {
	defer p.wg.Done()
	track := p.video[layer]
	bitrate := p.opts.VideoBitrate
	if p.rids != nil {
		bitrate = int(float64(bitrate) * simulcastShare[layer])
	}
	midID, ridID, _ := extIDs(p.vsend)
	frameInterval := time.Second / time.Duration(p.opts.FPS)
	frameBytes := bitrate / 8 / p.opts.FPS
	pacing := time.Duration(float64(time.Second) * float64(p.opts.PacketSize*8) / (2.5 * float64(bitrate)))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(time.Now().UnixNano() >> 8)}}
	buf := make([]byte, p.opts.PacketSize)
	picID := uint16(layer * 1000)
	ts := uint32(time.Now().UnixNano())
	lastKey := time.Time{}
	next := time.Now()
	real := 0 // the next of opts.VP8Frames
	for {
		select {
		case <-p.stopCh:
			return
		default:
		}
		now := time.Now()
		if d := next.Sub(now); d > 0 {
			select {
			case <-p.stopCh:
				return
			case <-time.After(d):
			}
		}
		frameStart := next
		next = next.Add(frameInterval)
		key := p.keyframe[layer].Swap(false) || time.Since(lastKey) >= p.opts.KeyframeInterval
		size := frameBytes
		if key {
			size *= 4
			lastKey = time.Now()
		}
		if size < 20 {
			size = 20
		}
		f := frameWriter{p: p, track: track, layer: layer, pkt: &pkt, ts: ts, start: frameStart, pacing: pacing, midID: midID, ridID: ridID}
		if frames := p.opts.VP8Frames; len(frames) > 0 {
			if key {
				real = 0
			}
			f.raw = true
			f.vp8Frame(frames[real], picID, buf)
			real = (real + 1) % len(frames)
		} else if p.opts.H264 {
			f.h264(key, size, buf)
		} else {
			f.vp8(key, size, picID, buf)
		}
		picID = (picID + 1) & 0x7fff
		ts += uint32(90000 / p.opts.FPS)
		if time.Since(next) > time.Second {
			next = time.Now() // fell far behind (machine overloaded): do not burst
		}
	}
}

func (p *Publication) vsendMid() string {
	if len(p.mids) == 0 {
		return ""
	}
	return p.mids[len(p.mids)-1]
}

// readRTCP reads the server's RTCP for a sender (driving pion's NACK
// responder) and turns PLI/FIR into a keyframe.
func (p *Publication) readRTCP(s *webrtc.RTPSender, rid string, layer int) {
	defer p.wg.Done()
	// Pion's ReadRTCP, and SetReadDeadline with it, block until SRTP is up.
	// Wait for DTLS first, so that Stop returns even when the connection
	// never comes up (a blocked network, a refused TURN certificate).
	if !p.awaitDTLS(s) {
		return
	}
	go func() {
		<-p.stopCh
		if rid != "" {
			_ = s.SetReadDeadlineSimulcast(time.Now(), rid)
		} else {
			_ = s.SetReadDeadline(time.Now())
		}
	}()
	for {
		var pkts []rtcp.Packet
		var err error
		if rid != "" {
			pkts, _, err = s.ReadSimulcastRTCP(rid)
		} else {
			pkts, _, err = s.ReadRTCP()
		}
		if err != nil {
			select {
			case <-p.stopCh:
				return
			default:
			}
			if isClosedErr(err) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if layer < 0 {
			continue
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.keyframe[layer].Store(true)
				p.keyframeRequests.Add(1)
				p.layerKeyframeRequests[layer].Add(1)
			}
		}
	}
}

var h264Capability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// frameWriter sends the packets of one video frame of one layer: each
// with the synthetic trailer, the simulcast mid/rid extensions, the
// frame's timestamp and the next sequence number, paced at pacing apart.
type frameWriter struct {
	p            *Publication
	track        *webrtc.TrackLocalStaticRTP
	layer        int
	pkt          *rtp.Packet
	ts           uint32
	start        time.Time
	pacing       time.Duration
	sent         int
	midID, ridID uint8
	raw          bool // real media: no trailer
}

// write sends one packet whose payload is b (trailer space included) and
// waits for the pacer unless it ends the frame.
func (f *frameWriter) write(b []byte, marker bool) {
	p, pkt := f.p, f.pkt
	if !f.raw {
		putTrailer(b, f.layer, time.Now())
	}
	pkt.Payload, pkt.Marker, pkt.Timestamp = b, marker, f.ts
	pkt.Extension, pkt.Extensions = false, pkt.Extensions[:0]
	if p.rids != nil && f.midID != 0 && f.ridID != 0 {
		_ = pkt.SetExtension(f.midID, []byte(p.vsendMid()))
		_ = pkt.SetExtension(f.ridID, []byte(p.rids[f.layer]))
	}
	if err := f.track.WriteRTP(pkt); err == nil {
		p.videoSent[f.layer].Add(1)
	}
	pkt.SequenceNumber++
	if marker {
		return
	}
	f.sent++
	if d := time.Until(f.start.Add(time.Duration(f.sent) * f.pacing)); d > 200*time.Microsecond {
		time.Sleep(d)
	}
}

// vp8 sends a VP8-shaped frame: a payload descriptor with a 15-bit
// picture ID, a VP8 frame header (keyframes carry the start code and
// dimensions) and filler.
func (f *frameWriter) vp8(key bool, size int, picID uint16, buf []byte) {
	maxData := f.p.opts.PacketSize - 4 - trailerSize
	npk := (size + maxData - 1) / maxData
	for i := 0; i < npk; i++ {
		n := maxData
		if i == npk-1 {
			n = size - maxData*(npk-1)
		}
		b := buf[:4+n+trailerSize]
		b[0] = 0x80 // X
		if i == 0 {
			b[0] |= 0x10 // S, partition 0
		}
		b[1] = 0x80 // I: picture ID present
		b[2] = 0x80 | byte(picID>>8)&0x7f
		b[3] = byte(picID)
		d := b[4 : 4+n]
		for j := range d {
			d[j] = byte(j)
		}
		if i == 0 && len(d) >= 10 {
			// VP8 frame tag: bit 0 = 0 for a keyframe; show_frame set.
			if key {
				d[0] = 0x10
				copy(d[3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01})
			} else {
				d[0] = 0x11
			}
		}
		f.write(b, i == npk-1)
	}
}

// vp8Frame sends a real VP8 frame (RFC 7741): a payload descriptor with a
// 15-bit picture ID on every packet, S set on the first.
func (f *frameWriter) vp8Frame(frame []byte, picID uint16, buf []byte) {
	maxData := f.p.opts.PacketSize - 4
	for off := 0; off < len(frame); off += maxData {
		n := min(maxData, len(frame)-off)
		b := buf[:4+n]
		b[0] = 0x80 // X
		if off == 0 {
			b[0] |= 0x10 // S, partition 0
		}
		b[1] = 0x80 // I: picture ID present
		b[2] = 0x80 | byte(picID>>8)&0x7f
		b[3] = byte(picID)
		copy(b[4:], frame[off:off+n])
		f.write(b, off+n == len(frame))
	}
}

// h264 sends an H.264 frame: a keyframe is an SPS and PPS in a STAP-A and
// then an IDR slice; a slice too large for one packet goes in FU-A
// fragments.
func (f *frameWriter) h264(key bool, size int, buf []byte) {
	if key {
		sps := []byte{0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8}
		pps := []byte{0x68, 0xce, 0x3c, 0x80}
		b := buf[:0]
		b = append(b, 0x78, 0, byte(len(sps)))
		b = append(b, sps...)
		b = append(b, 0, byte(len(pps)))
		b = append(b, pps...)
		b = append(b, make([]byte, trailerSize)...)
		f.write(b, false)
	}
	nalType := byte(1)
	nalHeader := byte(0x41)
	if key {
		nalType, nalHeader = 5, 0x65
	}
	maxData := f.p.opts.PacketSize - 2 - trailerSize
	if size <= maxData+1 {
		b := buf[:1+size+trailerSize]
		b[0] = nalHeader
		for j := 1; j <= size; j++ {
			b[j] = byte(j)
		}
		f.write(b, true)
		return
	}
	npk := (size + maxData - 1) / maxData
	for i := 0; i < npk; i++ {
		n := maxData
		if i == npk-1 {
			n = size - maxData*(npk-1)
		}
		b := buf[:2+n+trailerSize]
		b[0] = 0x60 | 28 // FU indicator: NRI 3, type 28
		b[1] = nalType
		if i == 0 {
			b[1] |= 0x80
		}
		if i == npk-1 {
			b[1] |= 0x40
		}
		for j := 2; j < 2+n; j++ {
			b[j] = byte(j)
		}
		f.write(b, i == npk-1)
	}
}
