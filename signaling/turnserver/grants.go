package turnserver

import (
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/pion/turn/v5"
)

// grants is who may allocate, and what each holds: the credentials of live
// signalling connections, their relay sockets and the quotas. pion calls
// in from its read loops; no lock is held across a Close.
type grants struct {
	perParticipant, perAddress int
	log                        *slog.Logger

	mu     sync.Mutex
	live   map[string]struct{}                  // user ("participant/connection") whose credential is good
	relays map[string]map[*trackedConn]struct{} // user → its relay sockets
	allocs map[string]allocation                // five-tuple → whose allocation
	byUser map[string]int                       // participant → allocations
	byAddr map[string]int                       // client IP → allocations
}

type allocation struct {
	participant, ip string
}

func newGrants(perParticipant, perAddress int, log *slog.Logger) *grants {
	return &grants{
		perParticipant: perParticipant, perAddress: perAddress, log: log,
		live: map[string]struct{}{}, relays: map[string]map[*trackedConn]struct{}{},
		allocs: map[string]allocation{}, byUser: map[string]int{}, byAddr: map[string]int{},
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
	return func(ra *turn.RequestAttributes) (string, []byte, bool) {
		if !g.isLive(userOf(ra.Username)) {
			metricRefused.WithLabelValues("revoked").Inc()
			return "", nil, false
		}
		return next(ra)
	}
}

// quota decides whether one more allocation fits (pion answers 486 if not).
func (g *grants) quota(user, _ string, src net.Addr) bool {
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

// track registers a user's new relay socket. One whose credential was
// revoked while it was being made is closed at once (pion then gives up
// the allocation).
func (g *grants) track(pc net.PacketConn, user string) net.PacketConn {
	tc := &trackedConn{PacketConn: pc, g: g, user: user}
	g.mu.Lock()
	_, live := g.live[user]
	if live {
		if g.relays[user] == nil {
			g.relays[user] = map[*trackedConn]struct{}{}
		}
		g.relays[user][tc] = struct{}{}
	}
	g.mu.Unlock()
	if !live {
		_ = pc.Close()
	}
	return tc
}

func (g *grants) untrack(tc *trackedConn) {
	g.mu.Lock()
	if m := g.relays[tc.user]; m != nil {
		delete(m, tc)
		if len(m) == 0 {
			delete(g.relays, tc.user)
		}
	}
	g.mu.Unlock()
}

// created counts a new allocation.
func (g *grants) created(src, dst net.Addr, protocol, user, _ string, _ net.Addr, _ int) {
	a := allocation{participant: participantOf(user), ip: hostOf(src)}
	g.mu.Lock()
	g.allocs[tupleKey(src, dst, protocol)] = a
	g.byUser[a.participant]++
	g.byAddr[a.ip]++
	g.mu.Unlock()
	metricAllocations.Inc()
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

// revoke ends a user's credential and closes its relay sockets; pion then
// deletes the allocations (and calls deleted).
func (g *grants) revoke(user string) {
	g.mu.Lock()
	delete(g.live, user)
	conns := make([]*trackedConn, 0, len(g.relays[user]))
	for c := range g.relays[user] {
		conns = append(conns, c)
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
	user string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.g.untrack(c) })
	return c.PacketConn.Close()
}
