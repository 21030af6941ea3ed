package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
)

// failureLimiter rate-limits failed authentication per client address, so
// tokens cannot be guessed online: a burst of failures, then one every few
// seconds. Successful requests cost nothing.
type failureLimiter struct {
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

func newFailureLimiter(every time.Duration, burst int) *failureLimiter {
	return &failureLimiter{every: every, burst: burst, clients: map[string]*clientLimit{}, now: time.Now}
}

// maxTrackedClients bounds the limiter's memory; beyond it the entries
// not seen for a while are dropped.
const maxTrackedClients = 50000

func (l *failureLimiter) get(addr string) *rate.Limiter {
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

// blocked reports whether addr has no failures left, and how long until
// it has one again.
func (l *failureLimiter) blocked(addr string) (bool, time.Duration) {
	tokens := l.get(addr).TokensAt(l.now())
	if tokens >= 1 {
		return false, 0
	}
	wait := time.Duration((1 - tokens) * float64(l.every))
	return true, max(time.Second, wait.Round(time.Second))
}

// failed records one failed attempt.
func (l *failureLimiter) failed(addr string) { l.get(addr).AllowN(l.now(), 1) }

// clientAddr is the address failures are counted against.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

type principalKey struct{}

// principal returns the caller authenticated by withAuth.
func principal(ctx context.Context) sessions.Principal {
	p, _ := ctx.Value(principalKey{}).(sessions.Principal)
	return p
}

// tooMany is the answer to a rate-limited client: 429 with Retry-After.
func tooMany(wait time.Duration, what string) *fault.Error {
	secs := strconv.Itoa(int(wait.Seconds()))
	return &fault.Error{Kind: fault.RateLimited,
		Message: "too many " + what + " from this address; retry after " + secs + "s", RetryAfter: wait}
}

// handler is an HTTP handler that reports failure by returning an error,
// which fail turns into the right JSON response.
type handler func(w http.ResponseWriter, r *http.Request) error

// h adapts a handler to net/http.
func (a *API) h(f handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			a.fail(w, r, err)
		}
	}
}

// auth requires a valid bearer token (staff or invitation), puts the
// principal in the request context and runs f.
func (a *API) auth(f handler) http.HandlerFunc {
	return a.withAuth(a.h(f))
}

// withAuth requires a valid bearer token (staff or invitation) and puts the
// principal in the request context.
func (a *API) withAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := clientAddr(r)
		if blocked, wait := a.authFailures.blocked(addr); blocked {
			a.fail(w, r, tooMany(wait, "failed authentications"))
			return
		}
		token := bearer(r)
		if token == "" {
			a.authFailures.failed(addr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="chamber"`)
			Error(w, http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer <token> header is required")
			return
		}
		p, err := a.sessions.Authenticate(r.Context(), token)
		if err != nil {
			// An outage says nothing about the token: it is not a failed
			// attempt, or everyone behind one address would be locked out.
			if !fault.KindOf(err).Retryable() {
				a.authFailures.failed(addr)
				w.Header().Set("WWW-Authenticate", `Bearer realm="chamber", error="invalid_token"`)
			}
			a.fail(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}
