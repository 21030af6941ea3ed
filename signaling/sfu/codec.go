package sfu

import (
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Header extension URIs the SFU negotiates.
const (
	uriAbsSendTime = sdp.ABSSendTimeURI
	uriAudioLevel  = sdp.AudioLevelURI
	uriTransportCC = sdp.TransportCCURI
)

// codecKind is the family of a codec, as far as forwarding cares.
type codecKind uint8

const (
	codecOther codecKind = iota
	codecOpus
	codecVP8
	codecVP9
	codecH264
)

func kindOfCodec(mime string) codecKind {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		return codecOpus
	case strings.ToLower(webrtc.MimeTypeVP8):
		return codecVP8
	case strings.ToLower(webrtc.MimeTypeVP9):
		return codecVP9
	case strings.ToLower(webrtc.MimeTypeH264):
		return codecH264
	}
	return codecOther
}

// videoCodecs lists the video codecs Chamber forwards, in order of preference.
// H.264 is offered in the profiles browsers use (constrained baseline and main,
// packetization mode 1); VP9 profile 0 where the browser offers it.
func videoCodecs(feedback []webrtc.RTCPFeedback, rtx bool) []webrtc.RTPCodecParameters {
	type c struct {
		mime string
		fmtp string
		pt   webrtc.PayloadType
	}
	list := []c{
		{webrtc.MimeTypeVP8, "", 96},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 104},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 106},
		{webrtc.MimeTypeVP9, "profile-id=0", 98},
	}
	var out []webrtc.RTPCodecParameters
	for _, x := range list {
		out = append(out, webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: x.mime, ClockRate: 90000, SDPFmtpLine: x.fmtp, RTCPFeedback: feedback},
			PayloadType:        x.pt,
		})
		if rtx {
			out = append(out, webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=" + itoa(int(x.pt))},
				PayloadType:        x.pt + 1,
			})
		}
	}
	return out
}

func opusCodec(feedback []webrtc.RTCPFeedback) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: feedback},
		PayloadType:        111,
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// publishMediaEngine is used for the PeerConnections that receive media from
// participants: RTX so browsers can repair losses, TWCC so their congestion
// controller gets feedback, the audio level for active-speaker detection and
// the MID/RID extensions simulcast needs.
func publishMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	videoFB := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}
	if err := m.RegisterCodec(opusCodec([]webrtc.RTCPFeedback{{Type: "transport-cc"}}), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for _, c := range videoCodecs(videoFB, true) {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, e := range []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{uriTransportCC, webrtc.RTPCodecTypeVideo},
		{uriTransportCC, webrtc.RTPCodecTypeAudio},
		{uriAudioLevel, webrtc.RTPCodecTypeAudio},
	} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// subscribeMediaEngine is used for the PeerConnections that carry media to
// participants. No RTX (retransmissions go on the media SSRC, as Galène does),
// no TWCC: the receiver's REMB, which browsers compute from abs-send-time,
// is the bandwidth estimate, so forwarding does no per-packet feedback work.
func subscribeMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	videoFB := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(opusCodec(nil), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for _, c := range videoCodecs(videoFB, false) {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uriAbsSendTime}, k); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// fmtpParam returns one parameter of an fmtp line.
func fmtpParam(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// sameCodec reports whether a subscriber's negotiated codec can carry a
// publisher's stream unchanged.
func sameCodec(a, b webrtc.RTPCodecCapability) bool {
	if !strings.EqualFold(a.MimeType, b.MimeType) || a.ClockRate != b.ClockRate {
		return false
	}
	switch kindOfCodec(a.MimeType) {
	case codecH264:
		pa, pb := fmtpParam(a.SDPFmtpLine, "profile-level-id"), fmtpParam(b.SDPFmtpLine, "profile-level-id")
		// The profile (first two bytes) must match; the level may differ.
		if len(pa) >= 4 && len(pb) >= 4 && !strings.EqualFold(pa[:4], pb[:4]) {
			return false
		}
		ma, mb := fmtpParam(a.SDPFmtpLine, "packetization-mode"), fmtpParam(b.SDPFmtpLine, "packetization-mode")
		if ma == "" {
			ma = "0"
		}
		if mb == "" {
			mb = "0"
		}
		return ma == mb
	case codecVP9:
		pa, pb := fmtpParam(a.SDPFmtpLine, "profile-id"), fmtpParam(b.SDPFmtpLine, "profile-id")
		if pa == "" {
			pa = "0"
		}
		if pb == "" {
			pb = "0"
		}
		return pa == pb
	}
	return true
}

// frameInfo is what the forwarding path needs to know about one packet's payload.
type frameInfo struct {
	keyframe bool // the packet starts a keyframe (a decoder can start here)
	start    bool // the packet starts a frame
	// VP8 only: where the picture ID and TL0PICIDX sit in the payload
	// (0 = absent) so that a simulcast switch can rewrite them.
	picOff, tl0Off uint8
	picLong        bool // 15-bit picture ID
	picID          uint16
	tl0            uint8
}

// parseFrame inspects a payload. It never fails: unknown or truncated
// payloads simply carry no flags.
func parseFrame(k codecKind, p []byte) frameInfo {
	switch k {
	case codecVP8:
		return parseVP8(p)
	case codecVP9:
		return parseVP9(p)
	case codecH264:
		return parseH264(p)
	case codecOpus:
		return frameInfo{keyframe: true, start: true}
	}
	return frameInfo{}
}

// parseVP8 reads the VP8 payload descriptor (RFC 7741 §4.2).
func parseVP8(p []byte) frameInfo {
	var fi frameInfo
	if len(p) < 1 {
		return fi
	}
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	i := 1
	if x {
		if len(p) < 2 {
			return fi
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID
			if len(p) < i+1 {
				return fi
			}
			fi.picOff = uint8(i)
			if p[i]&0x80 != 0 {
				if len(p) < i+2 {
					return fi
				}
				fi.picLong = true
				fi.picID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				fi.picID = uint16(p[i] & 0x7f)
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			if len(p) < i+1 {
				return fi
			}
			fi.tl0Off = uint8(i)
			fi.tl0 = p[i]
			i++
		}
		if ext&0x30 != 0 { // T or K
			i++
		}
	}
	if s && pid == 0 {
		fi.start = true
		if len(p) > i && p[i]&0x01 == 0 {
			fi.keyframe = true
		}
	}
	return fi
}

// rewriteVP8 writes a new picture ID and TL0PICIDX into a copy of a VP8 payload.
func rewriteVP8(p []byte, fi *frameInfo, pic uint16, tl0 uint8) {
	if fi.picOff != 0 && int(fi.picOff) < len(p) {
		if fi.picLong && int(fi.picOff)+1 < len(p) {
			p[fi.picOff] = 0x80 | byte(pic>>8)&0x7f
			p[fi.picOff+1] = byte(pic)
		} else {
			p[fi.picOff] = byte(pic) & 0x7f
		}
	}
	if fi.tl0Off != 0 && int(fi.tl0Off) < len(p) {
		p[fi.tl0Off] = tl0
	}
}

// parseVP9 reads the first byte of the VP9 payload descriptor.
func parseVP9(p []byte) frameInfo {
	var fi frameInfo
	if len(p) < 1 {
		return fi
	}
	notRef := p[0]&0x40 != 0 // P: inter-picture predicted
	begin := p[0]&0x08 != 0  // B: start of a frame
	fi.start = begin
	fi.keyframe = begin && !notRef
	return fi
}

// parseH264 looks for an IDR slice or SPS at the start of the payload
// (single NAL unit, any unit of a STAP-A, or the first fragment of an
// FU-A). internal/client has an independent parser of its own, kept as the
// tests' oracle (keyframeStart); both are tested on the same STAP-A cases.
func parseH264(p []byte) frameInfo {
	var fi frameInfo
	if len(p) < 1 {
		return fi
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		fi.start = true
		fi.keyframe = t == 5 || t == 7
	case t == 24: // STAP-A
		fi.start = true
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i >= len(p) {
				break
			}
			if nt := p[i] & 0x1f; nt == 5 || nt == 7 {
				fi.keyframe = true
			}
			i += n
		}
	case t == 28: // FU-A
		if len(p) >= 2 && p[1]&0x80 != 0 {
			fi.start = true
			nt := p[1] & 0x1f
			fi.keyframe = nt == 5 || nt == 7
		}
	}
	return fi
}
