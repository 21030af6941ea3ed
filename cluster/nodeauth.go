package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
)

// NodeAuthHeader carries the MAC of a request one node makes to another:
// "t=<unix seconds>,n=<nonce>,m=<hex HMAC-SHA256>". The MAC covers the
// method, the path, the sending node's ID (ProxiedHeader) and the time, so
// a captured request cannot be turned into another one, and is refused
// after MaxNodeClockSkew or when its nonce was seen already.
const NodeAuthHeader = "X-Chamber-Node-Auth"

// MaxNodeClockSkew is how far a signed request's time may be from the
// receiver's clock (nodes run NTP; the bound is the replay window).
const MaxNodeClockSkew = 30 * time.Second

// MinSecretLen is the shortest cluster secret accepted (bytes).
const MinSecretLen = 32

// maxNonces bounds the replay cache: beyond it signed requests are refused
// (Unavailable) until old nonces age out, rather than growing memory.
const maxNonces = 1 << 16

// errNodeAuth refuses a request that claims to come from a node and does
// not prove it.
var errNodeAuth = fault.New(fault.Unauthenticated, "node-to-node request without a valid signature")

// nodeAuth signs this node's requests to other nodes and checks theirs.
type nodeAuth struct {
	secret []byte
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce → when it may be forgotten
}

func newNodeAuth(secret []byte) *nodeAuth {
	return &nodeAuth{secret: secret, now: time.Now, seen: map[string]time.Time{}}
}

// mac is the HMAC of one request's signed fields.
func (a *nodeAuth) mac(method, path, node, ts, nonce string) []byte {
	m := hmac.New(sha256.New, a.secret)
	for _, f := range []string{"chamber-node-v1", method, path, node, ts, nonce} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// sign sets the node headers of an outgoing request.
func (a *nodeAuth) sign(h http.Header, method, path, node string) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	ts := strconv.FormatInt(a.now().Unix(), 10)
	h.Set(ProxiedHeader, node)
	h.Set(NodeAuthHeader, "t="+ts+",n="+nonce+",m="+hex.EncodeToString(a.mac(method, path, node, ts, nonce)))
}

// Sign sets on r the headers that prove it comes from this node: every
// request a node makes to another carries them.
func (c *Cluster) Sign(r *http.Request) {
	if a := c.auth.Load(); a != nil {
		a.sign(r.Header, r.Method, r.URL.Path, c.cfg.NodeID)
	}
}

// verify checks the node headers of an incoming request and returns the
// sending node's ID; errNodeAuth when they are missing, malformed, out of
// time, replayed or forged.
func (a *nodeAuth) verify(r *http.Request) (string, error) {
	node := r.Header.Get(ProxiedHeader)
	ts, nonce, sum, ok := parseNodeAuth(r.Header.Get(NodeAuthHeader))
	if node == "" || !ok {
		return "", errNodeAuth
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", errNodeAuth
	}
	now := a.now()
	at := time.Unix(sec, 0)
	if at.Before(now.Add(-MaxNodeClockSkew)) || at.After(now.Add(MaxNodeClockSkew)) {
		return "", fmt.Errorf("node %q: signed at %s, %s here: %w", node, at.UTC(), now.UTC(), errNodeAuth)
	}
	if !hmac.Equal(sum, a.mac(r.Method, r.URL.Path, node, ts, nonce)) {
		return "", fmt.Errorf("node %q: bad MAC: %w", node, errNodeAuth)
	}
	// Only a valid MAC reaches the cache: forgeries cannot fill it.
	return node, a.fresh(nonce, at.Add(MaxNodeClockSkew), now)
}

// fresh records a nonce until it could no longer pass the time check, and
// refuses one seen before.
func (a *nodeAuth) fresh(nonce string, until, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.seen[nonce]; dup {
		return fmt.Errorf("nonce replayed: %w", errNodeAuth)
	}
	if len(a.seen) >= maxNonces {
		for n, t := range a.seen {
			if now.After(t) {
				delete(a.seen, n)
			}
		}
		if len(a.seen) >= maxNonces {
			return fault.New(fault.Unavailable, "too many node-to-node requests; retry")
		}
	}
	a.seen[nonce] = until
	return nil
}

// parseNodeAuth splits "t=…,n=…,m=…".
func parseNodeAuth(v string) (ts, nonce string, sum []byte, ok bool) {
	if v == "" || len(v) > 256 {
		return "", "", nil, false
	}
	var m string
	for _, part := range strings.Split(v, ",") {
		k, val, found := strings.Cut(part, "=")
		if !found {
			return "", "", nil, false
		}
		switch k {
		case "t":
			ts = val
		case "n":
			nonce = val
		case "m":
			m = val
		default:
			return "", "", nil, false
		}
	}
	sum, err := hex.DecodeString(m)
	if err != nil || ts == "" || len(nonce) < 16 || len(sum) != sha256.Size {
		return "", "", nil, false
	}
	return ts, nonce, sum, true
}

// Authenticate checks that r comes from another node of this cluster
// (Sign) and returns its ID.
func (c *Cluster) Authenticate(r *http.Request) (string, error) {
	a := c.auth.Load()
	if a == nil {
		return "", errNodeAuth // not registered yet
	}
	node, err := a.verify(r)
	if err != nil {
		nodeAuthRefused.Inc()
		c.log.Warn("node-to-node request refused", "claimed_node", r.Header.Get(ProxiedHeader),
			"path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	}
	return node, err
}

// loadSecret returns the cluster's shared secret: the configured one, or
// the row in cluster_secret, which the first node to start writes.
func (c *Cluster) loadSecret(ctx context.Context) ([]byte, error) {
	if len(c.cfg.Secret) > 0 {
		return c.cfg.Secret, nil
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	if _, err := c.cfg.DB.ExecContext(ctx, `
		INSERT INTO cluster_secret (id, secret, created) VALUES (1, $1, `+dbNow+`) ON CONFLICT (id) DO NOTHING`,
		hex.EncodeToString(b[:])); err != nil {
		return nil, fmt.Errorf("cluster: cluster secret: %w", err)
	}
	var s string
	if err := c.cfg.DB.QueryRowContext(ctx, `SELECT secret FROM cluster_secret WHERE id = 1`).Scan(&s); err != nil {
		return nil, fmt.Errorf("cluster: cluster secret: %w", err)
	}
	secret, err := hex.DecodeString(s)
	if err != nil || len(secret) < MinSecretLen {
		return nil, errors.New("cluster: the cluster_secret row is not a hex secret of 32 bytes or more")
	}
	return secret, nil
}

// edgeTicketTTL bounds how long a redirected observer has to reach the
// edge node it was placed on.
const edgeTicketTTL = time.Minute

// EdgeTicket is the placement of one gallery observer of a room on an edge
// node, for the redirect the room's home sends: it names the session, the
// participant and the node, expires after a minute, and is signed with the
// cluster secret, so that no one can choose their node or carry someone
// else's placement.
func (c *Cluster) EdgeTicket(sessionID, participant uuid.UUID, node string) (string, error) {
	a := c.auth.Load()
	if a == nil {
		return "", errNodeAuth
	}
	body := strings.Join([]string{sessionID.String(), participant.String(), node,
		strconv.FormatInt(a.now().Add(edgeTicketTTL).Unix(), 10)}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + hex.EncodeToString(a.mac("chamber-edge-v1", body, "", "", "")), nil
}

// CheckEdgeTicket checks a placement ticket for this node and the session
// and returns the observer it places here.
func (c *Cluster) CheckEdgeTicket(ticket string, sessionID uuid.UUID) (uuid.UUID, error) {
	participant, node, err := c.EdgeTicketFor(ticket, sessionID)
	if err != nil || node != c.cfg.NodeID {
		return uuid.Nil, errEdgeTicket
	}
	return participant, nil
}

// EdgeTicketFor checks a placement ticket for the session — signed, not
// expired — and returns the observer and the node it places them on, which
// may be another: a browser follows a redirect on its own origin, and the
// node its load balancer picks passes the connection on (Router.Forward).
func (c *Cluster) EdgeTicketFor(ticket string, sessionID uuid.UUID) (participant uuid.UUID, node string, err error) {
	a := c.auth.Load()
	b64, sum, ok := strings.Cut(ticket, ".")
	if a == nil || !ok || len(ticket) > 512 {
		return uuid.Nil, "", errEdgeTicket
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	mac, herr := hex.DecodeString(sum)
	if err != nil || herr != nil || !hmac.Equal(mac, a.mac("chamber-edge-v1", string(raw), "", "", "")) {
		return uuid.Nil, "", errEdgeTicket
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 4 || f[0] != sessionID.String() || f[2] == "" {
		return uuid.Nil, "", errEdgeTicket
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	participant, perr := uuid.Parse(f[1])
	if err != nil || perr != nil || a.now().After(time.Unix(exp, 0)) {
		return uuid.Nil, "", errEdgeTicket
	}
	return participant, f[2], nil
}

var errEdgeTicket = fault.New(fault.Unauthenticated, "no valid placement on this node; join the room at its usual address")
