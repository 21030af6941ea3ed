package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddrs tells the client address of a request, which the rate
// limiters count against: the TCP peer — or, when the peer is one of the
// trusted proxies (--trusted-proxy), the address that proxy forwarded in
// Forwarded or X-Forwarded-For. Forwarded addresses are read from the
// right, skipping trusted proxies, so a client cannot choose its address
// by sending the header itself. IPv6 clients are counted per /64, the
// block one subscriber usually holds.
type ClientAddrs struct {
	trusted []netip.Prefix
}

// NewClientAddrs trusts the listed proxies.
func NewClientAddrs(trusted []netip.Prefix) ClientAddrs { return ClientAddrs{trusted: trusted} }

// Of returns the client address of r.
func (c ClientAddrs) Of(r *http.Request) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	addr := peer
	if c.trusts(addr) {
		hops := forwardedHops(r.Header)
		for i := len(hops) - 1; i >= 0; i-- {
			h, ok := parseHop(hops[i])
			if !ok {
				break // a hop a trusted proxy would not write: stop at the last good one
			}
			addr = h
			if !c.trusts(h) {
				break
			}
		}
	}
	return key(addr)
}

func (c ClientAddrs) trusts(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedHops lists the forwarded-for addresses, nearest last: from
// Forwarded (RFC 7239) when present, else from X-Forwarded-For.
func forwardedHops(h http.Header) []string {
	var hops []string
	if fw := h.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						hops = append(hops, strings.Trim(v, `"`))
					}
				}
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				hops = append(hops, v)
			}
		}
	}
	return hops
}

// parseHop reads "1.2.3.4", "1.2.3.4:5678", "[2001:db8::1]:80" or "2001:db8::1".
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// key is what an address is counted as: itself, or its /64 for IPv6.
func key(a netip.Addr) string {
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// ParseTrustedProxy reads a --trusted-proxy value: a CIDR or one address.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
