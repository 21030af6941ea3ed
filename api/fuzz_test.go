package api

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientAddrs: whatever Forwarded and X-Forwarded-For say, the client
// address is the peer or an address the headers hold — never a hop left of
// an untrusted one — and parsing never panics.
func FuzzClientAddrs(f *testing.F) {
	f.Add("10.1.2.3:4000", "203.0.113.9, 10.9.9.9", "")
	f.Add("10.1.2.3:4000", "", `for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`)
	f.Add("192.0.2.1:1", "garbage,,, ::ffff:1.2.3.4", "for=unknown")
	f.Add("[::1]:5", "[fe80::1%eth0]:80", `For="_hidden"; by=x`)
	c := NewClientAddrs([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		got := c.Of(r)
		peer, ok := parseHop(remote)
		if !ok {
			if got != remote {
				t.Fatalf("an unparsable peer %q became %q", remote, got)
			}
			return
		}
		if !c.trusts(peer) && got != key(peer) {
			t.Fatalf("an untrusted peer %q's headers chose the address %q", remote, got)
		}
	})
}

// FuzzSafeReturn: the post-sign-in destination is always a path on this
// site.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/#/session/x", "//evil.example", "/\\evil", "https://evil.example", "/%2F%2Fevil", "\t/x", "/a\r\nLocation: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := safeReturn(s)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeReturn(%q) = %q leaves the site", s, got)
		}
	})
}
