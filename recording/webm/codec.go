package webm

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// Codec names used in manifests.
const (
	codecOpus = "opus"
	codecVP8  = "vp8"
	codecH264 = "h264"
)

// codecSpec describes how one RTP codec is depacketised and stored.
type codecSpec struct {
	name      string // opus, vp8, h264
	video     bool
	clockRate uint32
	channels  uint16
	matroska  string // Matroska CodecID
	// maxLate is the jitter buffer's size in packets: more than the largest
	// frame (a 1080p keyframe is a few hundred packets), so that a frame
	// still arriving is never forced out incomplete.
	maxLate         uint16
	newDepacketizer func() rtp.Depacketizer
}

func lookupCodec(c webrtc.RTPCodecCapability) (codecSpec, error) {
	s := codecSpec{clockRate: c.ClockRate, channels: c.Channels}
	switch strings.ToLower(c.MimeType) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		s.name, s.matroska, s.maxLate = codecOpus, "A_OPUS", 50
		s.newDepacketizer = func() rtp.Depacketizer { return &codecs.OpusPacket{} }
		if s.clockRate == 0 {
			s.clockRate = 48000
		}
		if s.channels == 0 {
			s.channels = 2
		}
	case strings.ToLower(webrtc.MimeTypeVP8):
		s.name, s.matroska, s.video, s.maxLate = codecVP8, "V_VP8", true, 1024
		s.newDepacketizer = func() rtp.Depacketizer { return &codecs.VP8Packet{} }
	case strings.ToLower(webrtc.MimeTypeH264):
		s.name, s.matroska, s.video, s.maxLate = codecH264, "V_MPEG4/ISO/AVC", true, 1024
		// Matroska stores H.264 as length-prefixed NAL units (AVCC).
		s.newDepacketizer = func() rtp.Depacketizer { return &codecs.H264Packet{IsAVC: true} }
	default:
		return codecSpec{}, fmt.Errorf("%w: %q", ErrUnsupportedCodec, c.MimeType)
	}
	if s.video && s.clockRate == 0 {
		s.clockRate = 90000
	}
	return s, nil
}

// videoConfig is what a keyframe tells about the stream.
type videoConfig struct {
	width, height int
	codecPrivate  []byte // H.264 AVCDecoderConfigurationRecord
}

// inspect reports whether a depacketised frame is a keyframe (one that
// decoding can start from: for H.264, an IDR with parameter sets seen)
// and, if so, the stream configuration it carries.
func (s codecSpec) inspect(frame []byte, h *h264State) (keyframe bool, cfg videoConfig) {
	switch s.name {
	case codecVP8:
		// RFC 6386 §9.1: a keyframe has bit 0 of the frame tag clear,
		// then the start code 9d 01 2a and 14-bit width and height.
		if len(frame) < 10 || frame[0]&1 != 0 {
			return false, cfg
		}
		if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
			return false, cfg
		}
		cfg.width = int(binary.LittleEndian.Uint16(frame[6:]) & 0x3fff)
		cfg.height = int(binary.LittleEndian.Uint16(frame[8:]) & 0x3fff)
		return true, cfg
	case codecH264:
		idr := false
		forEachNAL(frame, func(nal []byte) {
			switch nal[0] & 0x1f {
			case 5:
				idr = true
			case 7:
				h.sps = append(h.sps[:0], nal...)
			case 8:
				h.pps = append(h.pps[:0], nal...)
			}
		})
		if !idr || len(h.sps) < 4 || len(h.pps) == 0 {
			return false, cfg
		}
		cfg.width, cfg.height = spsDimensions(h.sps)
		cfg.codecPrivate = avcConfig(h.sps, h.pps)
		return true, cfg
	}
	return true, cfg // audio: every frame stands alone
}

// h264State keeps the latest parameter sets of an H.264 track.
type h264State struct{ sps, pps []byte }

// forEachNAL calls f for each NAL unit of an AVCC (4-byte length-prefixed)
// frame, stopping at the first malformed length.
func forEachNAL(frame []byte, f func(nal []byte)) {
	for len(frame) >= 4 {
		n := binary.BigEndian.Uint32(frame)
		frame = frame[4:]
		if n == 0 || uint64(n) > uint64(len(frame)) {
			return
		}
		f(frame[:n])
		frame = frame[n:]
	}
}

// avcConfig builds the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// §5.2.4.1) that Matroska's V_MPEG4/ISO/AVC takes as CodecPrivate.
func avcConfig(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1} // 4-byte lengths, one SPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1) // one PPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

// opusHead is the CodecPrivate of a Matroska Opus track (RFC 7845 §5.1):
// version 1, channel count, no pre-skip (RTP Opus carries none), the
// 48 kHz input rate, no gain, mapping family 0.
func opusHead(channels uint16) []byte {
	b := []byte("OpusHead")
	b = append(b, 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 48000)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, 0)
}
