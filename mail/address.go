package mail

import (
	"errors"
	netmail "net/mail"
	"strings"

	"golang.org/x/net/idna"
)

// MaxAddress is the longest address accepted (RFC 5321's path limit less
// the angle brackets).
const MaxAddress = 254

// ParseAddress checks an address someone typed for a recipient and
// returns it normalised: one bare address (no display name, no comment, no
// group), a local part of printable ASCII of at most 64 octets, and a
// domain name, converted to its ASCII (IDNA) form when written in Unicode
// and lower-cased. Its errors are fit to show the caller.
func ParseAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("an e-mail address is required")
	}
	if len(s) > MaxAddress {
		return "", errors.New("the e-mail address is too long")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errors.New("the e-mail address contains control characters")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", errors.New("give one plain e-mail address, like name@example.org")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) == 0 || len(local) > 64 {
		return "", errors.New("the part before @ must have 1 to 64 characters")
	}
	for i := 0; i < len(local); i++ {
		if local[i] < 0x21 || local[i] > 0x7e {
			return "", errors.New("the part before @ must be plain ASCII")
		}
	}
	if strings.HasPrefix(domain, "[") {
		return "", errors.New("an address at an IP literal is not accepted; give a domain name")
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || ascii == "" || !strings.Contains(ascii, ".") {
		return "", errors.New("the part after @ must be a domain name, like example.org")
	}
	out := local + "@" + strings.ToLower(ascii)
	if len(out) > MaxAddress {
		return "", errors.New("the e-mail address is too long")
	}
	return out, nil
}
