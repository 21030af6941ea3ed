package turnserver

import (
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/pion/turn/v4"
)

// grants is who may allocate, and what each holds: the credentials of live
// signalling connections, the allocations made with them and the quotas.
// pion calls in from its read loops; no lock is held across a Close.
type grants struct {
	perParticipant, perAddress int
	log                        *slog.Logger

	mu     sync.Mutex
	live   map[string]struct{}        // user ("participant/connection") whose credential is good
	relays map[string]*trackedConn    // relay address → its socket
	allocs map[string]allocation      // five-tuple → what it holds
	byUser map[string]int             // participant → allocations
	byAddr map[string]int             // client IP → allocations
	byName map[string]map[string]bool // user → five-tuples
}

type allocation struct {
	user, participant, ip, relay string
}

func newGrants(perParticipant, perAddress int, log *slog.Logger) *grants {
	return &grants{
		perParticipant: perParticipant, perAddress: perAddress, log: log,
		live: map[string]struct{}{}, relays: map[string]*trackedConn{}, allocs: map[string]allocation{},
		byUser: map[string]int{}, byAddr: map[string]int{}, byName: map[string]map[string]bool{},
	}
}

// userOf returns the user part of a REST username ("expiry:user").
func userOf(username string) string {
	_, user, _ := strings.Cut(username, ":")
	return user
}

func participantOf(user string) string {
	p, _, _ := strings.Cut(user, "/")
	return p
}

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

func tupleKey(src, dst net.Addr, protocol string) string {
	return protocol + " " + src.String() + " " + dst.String()
}

func (g *grants) grant(user string) {
	g.mu.Lock()
	g.live[user] = struct{}{}
	g.mu.Unlock()
}

func (g *grants) isLive(user string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.live[user]
	return ok
}

// authHandler refuses the credentials of connections that are gone, then
// checks the signature and expiry as the REST scheme does.
func (g *grants) authHandler(next turn.AuthHandler) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		if !g.isLive(userOf(username)) {
			metricRefused.WithLabelValues("revoked").Inc()
			return nil, false
		}
		return next(username, realm, src)
	}
}

// quota decides whether one more allocation fits (pion answers 486 if not).
func (g *grants) quota(username, _ string, src net.Addr) bool {
	user := userOf(username)
	g.mu.Lock()
	defer g.mu.Unlock()
	reason := ""
	switch {
	case g.byUser[participantOf(user)] >= g.perParticipant:
		reason = "participant_quota"
	case g.byAddr[hostOf(src)] >= g.perAddress:
		reason = "address_quota"
	}
	if reason != "" {
		metricRefused.WithLabelValues(reason).Inc()
		g.log.Info("TURN allocation refused", "reason", reason, "user", user, "from", src)
		return false
	}
	return true
}

// track registers a relay socket under its address.
func (g *grants) track(pc net.PacketConn, relayed net.Addr) net.PacketConn {
	tc := &trackedConn{PacketConn: pc, g: g, key: relayed.String()}
	g.mu.Lock()
	g.relays[tc.key] = tc
	g.mu.Unlock()
	return tc
}

func (g *grants) untrack(tc *trackedConn) {
	g.mu.Lock()
	if g.relays[tc.key] == tc {
		delete(g.relays, tc.key)
	}
	g.mu.Unlock()
}

// created counts a new allocation; one whose credential was revoked while
// it was being made is closed at once.
func (g *grants) created(src, dst net.Addr, protocol, username, _ string, relay net.Addr, _ int) {
	user := userOf(username)
	key := tupleKey(src, dst, protocol)
	a := allocation{user: user, participant: participantOf(user), ip: hostOf(src), relay: relay.String()}
	g.mu.Lock()
	_, live := g.live[user]
	g.allocs[key] = a
	g.byUser[a.participant]++
	g.byAddr[a.ip]++
	if g.byName[user] == nil {
		g.byName[user] = map[string]bool{}
	}
	g.byName[user][key] = true
	conn := g.relays[a.relay]
	g.mu.Unlock()
	metricAllocations.Inc()
	if !live && conn != nil {
		_ = conn.Close()
	}
}

// deleted forgets an allocation (expired, refreshed to 0, or closed).
func (g *grants) deleted(src, dst net.Addr, protocol, _, _ string) {
	key := tupleKey(src, dst, protocol)
	g.mu.Lock()
	a, ok := g.allocs[key]
	if ok {
		delete(g.allocs, key)
		decr(g.byUser, a.participant)
		decr(g.byAddr, a.ip)
		if m := g.byName[a.user]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(g.byName, a.user)
			}
		}
	}
	g.mu.Unlock()
	if ok {
		metricAllocations.Dec()
	}
}

func decr(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// revoke ends a user's credential and closes its allocations' relay
// sockets; pion then deletes the allocations (and calls deleted).
func (g *grants) revoke(user string) {
	g.mu.Lock()
	delete(g.live, user)
	var conns []*trackedConn
	for key := range g.byName[user] {
		if c := g.relays[g.allocs[key].relay]; c != nil {
			conns = append(conns, c)
		}
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// trackedConn is a relay socket that leaves the register when closed.
type trackedConn struct {
	net.PacketConn
	g    *grants
	key  string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.g.untrack(c) })
	return c.PacketConn.Close()
}
