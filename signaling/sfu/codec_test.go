package sfu

import (
	"testing"
	"time"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name  string
		k     codecKind
		p     []byte
		key   bool
		start bool
		pic   uint16
	}{
		{"vp8 keyframe, 15-bit picture ID", codecVP8, []byte{0x90, 0x80, 0x81, 0x02, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, true, true, 0x102},
		{"vp8 delta", codecVP8, []byte{0x90, 0x80, 0x81, 0x03, 0x11, 0x00}, false, true, 0x103},
		{"vp8 continuation", codecVP8, []byte{0x80, 0x80, 0x81, 0x03, 0xff}, false, false, 0x103},
		{"vp8 7-bit picture ID and TL0", codecVP8, []byte{0x90, 0xc0, 0x05, 0x07, 0x00}, true, true, 5},
		{"vp8 no extension", codecVP8, []byte{0x10, 0x00}, true, true, 0},
		{"vp8 truncated", codecVP8, []byte{0x90, 0x80, 0x81}, false, false, 0},
		{"vp8 empty", codecVP8, nil, false, false, 0},
		{"h264 IDR", codecH264, []byte{0x65, 0x88}, true, true, 0},
		{"h264 non-IDR", codecH264, []byte{0x41, 0x9a}, false, true, 0},
		{"h264 STAP-A with SPS", codecH264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true, true, 0},
		{"h264 FU-A start of IDR", codecH264, []byte{0x7c, 0x85, 0x00}, true, true, 0},
		{"h264 FU-A middle", codecH264, []byte{0x7c, 0x05, 0x00}, false, false, 0},
		{"h264 STAP-A truncated", codecH264, []byte{0x78, 0xff, 0xff}, false, true, 0},
		{"h264 STAP-A with AUD, then SPS", codecH264, []byte{0x78, 0x00, 0x02, 0x09, 0xf0, 0x00, 0x02, 0x67, 0x42}, true, true, 0},
		{"h264 STAP-A with SEI, then IDR", codecH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88}, true, true, 0},
		{"h264 STAP-A without a keyframe unit", codecH264, []byte{0x78, 0x00, 0x02, 0x09, 0xf0, 0x00, 0x02, 0x41, 0x9a}, false, true, 0},
		{"vp9 keyframe", codecVP9, []byte{0x08}, true, true, 0},
		{"vp9 inter", codecVP9, []byte{0x48}, false, true, 0},
		{"opus", codecOpus, []byte{0x01}, true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fi := parseFrame(tc.k, tc.p)
			if fi.keyframe != tc.key || fi.start != tc.start || fi.picID != tc.pic {
				t.Errorf("got key=%v start=%v pic=%d, want %v %v %d", fi.keyframe, fi.start, fi.picID, tc.key, tc.start, tc.pic)
			}
		})
	}
}

func TestRewriteVP8(t *testing.T) {
	p := []byte{0x90, 0xc0, 0x81, 0x02, 0x07, 0x10}
	fi := parseVP8(p)
	rewriteVP8(p, &fi, 0x7ffe, 9)
	got := parseVP8(p)
	if got.picID != 0x7ffe || got.tl0 != 9 || !got.picLong || !got.keyframe {
		t.Errorf("after rewrite: %+v", got)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(uint8(codecVP8), []byte{0x90, 0x80, 0x81, 0x02, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a})
	f.Add(uint8(codecVP8), []byte{0x90, 0xf0, 0x81, 0x02, 0x07, 0x20, 0x10})
	f.Add(uint8(codecH264), []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce})
	f.Add(uint8(codecH264), []byte{0x7c, 0x85, 0x00})
	f.Add(uint8(codecVP9), []byte{0x08, 0x80})
	f.Fuzz(func(t *testing.T, k uint8, p []byte) {
		fi := parseFrame(codecKind(k%5), p)
		if int(fi.picOff) > len(p) || int(fi.tl0Off) > len(p) {
			t.Fatalf("offsets beyond the payload: %+v", fi)
		}
		q := append([]byte(nil), p...)
		rewriteVP8(q, &fi, 1, 1)
	})
}

func TestOrderRIDs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"f", "h", "q"}, []string{"q", "h", "f"}},
		{[]string{"h", "m", "l"}, []string{"l", "m", "h"}},
		{[]string{"high", "low"}, []string{"low", "high"}},
		{[]string{"b", "a"}, []string{"b", "a"}},
		{[]string{"x"}, []string{"x"}},
	}
	for _, tc := range tests {
		got := orderRIDs(tc.in)
		if len(got) != len(tc.want) {
			t.Fatalf("%v: %v", tc.in, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("orderRIDs(%v) = %v, want %v", tc.in, got, tc.want)
				break
			}
		}
	}
}

func TestAbsSendTime(t *testing.T) {
	var b [3]byte
	tm := time.Unix(1700000000, 500_000_000) // …:00.5 s
	putAbsSendTime(b[:], tm)
	v := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	want := uint32((1700000000%64)<<18 | 1<<17)
	if v != want {
		t.Errorf("abs-send-time %#x, want %#x", v, want)
	}
}

func TestPacketCache(t *testing.T) {
	c := newPacketCache(8)
	buf := make([]byte, maxPacketSize)
	for s := uint16(65530); s != 4; s++ {
		if !c.store(&packetMeta{seq: s}, []byte{byte(s)}) {
			t.Fatalf("store %d refused", s)
		}
	}
	if c.store(&packetMeta{seq: 2}, []byte{2}) {
		t.Error("duplicate stored")
	}
	if c.store(&packetMeta{seq: 65530}, []byte{0}) {
		t.Error("packet older than the cache stored")
	}
	if m, ok := c.get(65535, buf); !ok || m.seq != 65535 || m.size != 1 || buf[0] != 0xff {
		t.Errorf("get 65535: %+v %v", m, ok)
	}
	if _, ok := c.get(65531, buf); ok {
		t.Error("evicted packet returned")
	}
	if c.store(&packetMeta{seq: 9}, make([]byte, maxPacketSize+1)) {
		t.Error("oversized packet stored")
	}
}
