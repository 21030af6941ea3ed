package sessions

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Token prefixes say what a secret is, so a leaked one is easy to
// recognise and the right table is searched.
const (
	invitationPrefix = "chi_" // an invitation: one participant of one session
	publicLinkPrefix = "chp_" // a public hearing's link
	apiTokenPrefix   = "cha_" // a staff member's API token, for automation
	browserPrefix    = "chb_" // a staff member's console cookie
	ticketPrefix     = "cht_" // a staff member's join ticket for one session's signalling
)

// newToken returns a token with 256 random bits and its stored hash.
func newToken(prefix string) (token, hash string) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token)
}

// hashToken is how tokens are stored: only their SHA-256. A token has 256
// bits of entropy, so an unsalted fast hash is enough to make the table
// useless to a thief.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenShape rejects strings that cannot be a token of this kind before any
// database lookup.
func tokenShape(token, prefix string) bool {
	rest, ok := strings.CutPrefix(token, prefix)
	return ok && len(rest) == 43 && strings.Trim(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// sameHash compares a stored hash with a computed one in constant time.
// The lookup itself is by hash, which leaks nothing useful about the
// token; this guards the final comparison all the same.
func sameHash(stored, computed string) bool {
	return subtle.ConstantTimeCompare([]byte(stored), []byte(computed)) == 1
}

// TokenKind tells what kind of token a bearer string looks like.
func TokenKind(token string) string {
	switch {
	case strings.HasPrefix(token, apiTokenPrefix):
		return "api_token"
	case strings.HasPrefix(token, invitationPrefix):
		return "invitation"
	case strings.HasPrefix(token, publicLinkPrefix):
		return "public_link"
	case strings.HasPrefix(token, ticketPrefix):
		return "join_ticket"
	case strings.HasPrefix(token, browserPrefix):
		return "browser_session"
	}
	return ""
}
