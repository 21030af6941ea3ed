package api

import (
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chamber-court/chamber/fault"
)

// FailureLimiter gives each client address a budget: a burst, then one
// every few seconds. Failed authentications spend it (and public joins and
// verifications, each its own limiter); successes cost nothing.
type FailureLimiter struct {
	mu      sync.Mutex
	every   time.Duration
	burst   int
	clients map[string]*clientLimit
	now     func() time.Time
}

type clientLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewFailureLimiter allows burst failures, then one every interval.
func NewFailureLimiter(every time.Duration, burst int) *FailureLimiter {
	return &FailureLimiter{every: every, burst: burst, clients: map[string]*clientLimit{}, now: time.Now}
}

// NewAuthFailureLimiter is the limiter of failed authentications shared by
// the REST API and the signalling joins: ten failures, then one every six
// seconds.
func NewAuthFailureLimiter() *FailureLimiter { return NewFailureLimiter(6*time.Second, 10) }

// maxTrackedClients bounds the limiter's memory; beyond it the entries
// not seen for a while are dropped.
const maxTrackedClients = 50000

func (l *FailureLimiter) get(addr string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.clients[addr]
	if c == nil {
		if len(l.clients) >= maxTrackedClients {
			for k, v := range l.clients {
				if now.Sub(v.seen) > time.Duration(l.burst)*l.every {
					delete(l.clients, k)
				}
			}
		}
		c = &clientLimit{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.clients[addr] = c
	}
	c.seen = now
	return c.lim
}

// Blocked reports whether addr has no budget left, and how long until it
// has some again.
func (l *FailureLimiter) Blocked(addr string) (bool, time.Duration) {
	tokens := l.get(addr).TokensAt(l.now())
	if tokens >= 1 {
		return false, 0
	}
	wait := time.Duration((1 - tokens) * float64(l.every))
	return true, max(time.Second, wait.Round(time.Second))
}

// Failed spends one from addr's budget.
func (l *FailureLimiter) Failed(addr string) { l.get(addr).AllowN(l.now(), 1) }

// Guard runs an authentication for addr and settles it with the budget: a
// success always passes, however spent the budget; a failure spends one,
// and from an address already out of budget it is answered 429 instead of
// its own error. Outages and internal errors are not the client's fault
// and spend nothing.
func (l *FailureLimiter) Guard(addr, what string, authenticate func() error) error {
	blocked, wait := l.Blocked(addr)
	err := authenticate()
	if err == nil || !CountsAsFailure(err) {
		return err
	}
	l.Failed(addr)
	if blocked {
		return tooMany(wait, what)
	}
	return err
}

// CountsAsFailure reports whether an authentication error is the client's:
// not an outage, a cancellation or a server fault.
func CountsAsFailure(err error) bool {
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Internal, fault.Canceled:
		return false
	}
	return true
}

// tooMany is the answer to a rate-limited client: 429 with Retry-After.
func tooMany(wait time.Duration, what string) *fault.Error {
	secs := strconv.Itoa(int(wait.Seconds()))
	return &fault.Error{Kind: fault.RateLimited,
		Message: "too many " + what + " from this address; retry after " + secs + "s", RetryAfter: wait}
}
