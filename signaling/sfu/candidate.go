package sfu

import (
	"net/netip"
	"strings"
)

// CandidateFilter keeps the SFU from sending STUN checks where a
// participant points it: a remote candidate names any address the
// participant likes, and the SFU's connectivity checks would then probe
// the server's own loopback services, its private network or a cloud
// metadata service on the participant's behalf. The filter drops remote
// candidates (in SDP and trickled) whose address is not a literal, public,
// unicast IP address, unless it is a relayed candidate on an address
// listed in AllowRelay.
type CandidateFilter struct {
	// AllowRelay lists addresses whose relayed candidates ("typ relay")
	// are let through whatever their range: the embedded TURN server's
	// relay address, which a participant behind TURN offers. A host or
	// reflexive candidate on the same address is still filtered: it could
	// point the SFU at any other port of that host. It must not change
	// once peers exist.
	AllowRelay []netip.Addr
}

// blockedPrefixes are the ranges no participant candidate may point into,
// besides what netip's predicates cover (loopback, private, link-local,
// multicast, unspecified).
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // CGNAT (also Alibaba's metadata, 100.100.100.200)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments (Oracle's 192.0.0.192)
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64: would reach any IPv4 address through a translator
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("fec0::/10"),          // deprecated site-local
	netip.MustParsePrefix("::ffff:0:0/96"),      // IPv4-mapped (unmapped before the checks)
	netip.MustParsePrefix("2002::/16"),          // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("2001::/32"),          // Teredo: likewise
	netip.MustParsePrefix("fd00:ec2::/32"),      // AWS IPv6 metadata (inside fc00::/7 too)
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local: 169.254.169.254 metadata (IsLinkLocalUnicast too)
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// allows reports whether the SFU may send to address, a candidate of type
// typ ("host", "srflx", "prflx", "relay"), and why not.
func (f *CandidateFilter) allows(address, typ string) (ok bool, reason string) {
	if f == nil {
		return true, ""
	}
	ip, err := netip.ParseAddr(address)
	if err != nil {
		// Host names and mDNS (.local) names: the SFU resolves no names.
		return false, "name"
	}
	ip = ip.Unmap()
	if typ == "relay" {
		for _, a := range f.AllowRelay {
			if a.Unmap() == ip {
				return true, ""
			}
		}
	}
	switch {
	case ip.IsLoopback():
		return false, "loopback"
	case ip.IsPrivate():
		return false, "private"
	case ip.IsMulticast():
		return false, "multicast"
	case ip.IsLinkLocalUnicast():
		return false, "link_local"
	case ip.IsUnspecified():
		return false, "unspecified"
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return false, "reserved"
		}
	}
	return true, ""
}

// candidateAddress returns the connection address and type of an ICE
// candidate attribute ("candidate:1 1 udp 2130706431 192.0.2.1 7882 typ
// host"), with or without its "candidate:" or "a=candidate:" prefix.
func candidateAddress(c string) (address, typ string, ok bool) {
	c = strings.TrimPrefix(strings.TrimSpace(c), "a=")
	c = strings.TrimPrefix(c, "candidate:")
	f := strings.Fields(c)
	// foundation component transport priority address port "typ" type
	if len(f) < 8 || f[6] != "typ" {
		return "", "", false
	}
	return f[4], f[7], true
}
