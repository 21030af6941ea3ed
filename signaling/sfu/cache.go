package sfu

import "sync"

// maxPacketSize is the largest RTP packet the SFU stores and forwards. Larger
// packets cannot cross a 1500-byte path after SRTP anyway.
const maxPacketSize = 1500

// packetMeta is what the reader learnt about a packet, stored next to it so
// that no writer parses it again.
type packetMeta struct {
	seq         uint16
	ts          uint32
	marker      bool
	padding     bool
	paddingSize uint8
	payloadOff  uint16 // start of the payload in the stored packet
	payloadEnd  uint16 // end of the payload (before padding)
	size        uint16 // bytes stored
	frame       frameInfo
	arrival     int64 // monotonic nanoseconds, see clock()
}

type cacheSlot struct {
	mu    sync.RWMutex
	valid bool
	meta  packetMeta
	buf   [maxPacketSize]byte
}

// packetCache keeps the last packets of one incoming stream, indexed by
// sequence number. It is shared by every writer serving that stream and by
// the NACK responder of every subscriber: one copy of each packet, whatever
// the number of subscribers. Each slot has its own lock, held only while
// bytes are copied in or out, never across I/O.
type packetCache struct {
	slots []cacheSlot
	mask  uint16
}

// newPacketCache returns a cache of n slots; n must be a power of two ≤ 32768.
func newPacketCache(n int) *packetCache {
	return &packetCache{slots: make([]cacheSlot, n), mask: uint16(n - 1)}
}

// store copies a packet into the cache. It returns false for a duplicate
// (the same sequence number is already stored) and for a packet too old to
// keep, so that the caller forwards each packet at most once.
func (c *packetCache) store(m *packetMeta, data []byte) bool {
	if len(data) > maxPacketSize {
		return false
	}
	s := &c.slots[m.seq&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.valid {
		if s.meta.seq == m.seq {
			return false
		}
		// The slot holds a newer packet: m is more than a cache length late.
		if seqNewer(s.meta.seq, m.seq) {
			return false
		}
	}
	s.valid = true
	s.meta = *m
	s.meta.size = uint16(len(data))
	copy(s.buf[:], data)
	return true
}

// get copies the packet with sequence number seq into dst (which must hold
// maxPacketSize bytes) and returns its meta data.
func (c *packetCache) get(seq uint16, dst []byte) (packetMeta, bool) {
	s := &c.slots[seq&c.mask]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.valid || s.meta.seq != seq {
		return packetMeta{}, false
	}
	copy(dst, s.buf[:s.meta.size])
	return s.meta, true
}

// seqNewer reports whether sequence number a is after b, modulo 2^16.
func seqNewer(a, b uint16) bool {
	return a != b && a-b < 0x8000
}

// tsNewer reports whether RTP timestamp a is after b, modulo 2^32.
func tsNewer(a, b uint32) bool {
	return a != b && a-b < 0x80000000
}
