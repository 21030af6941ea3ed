package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/fault"
)

// ProxiedHeader marks a signalling request one node passed to another: the
// receiver serves it itself or refuses it, never passes it on (no loops).
// It names the sending node and is believed only with a valid
// NodeAuthHeader (Sign, Authenticate): anything else is refused.
const ProxiedHeader = "X-Chamber-Proxied-By"

var proxied = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "chamber_proxied_connections_total",
	Help: "Signalling connections passed to the room's home node (out) or received from another node (in).",
}, []string{"direction"})

// Router sends each signalling request to the room's home node.
type Router struct {
	c *Cluster
	// Local serves the room here.
	Local http.Handler
	// Claimed rebuilds a room this process has just become the home of,
	// before its first connection is served; an error refuses it (503).
	Claimed func(ctx context.Context, lease Lease) error
	// Fail answers a request that cannot be routed now (an error of kind
	// Unavailable: the client retries).
	Fail func(w http.ResponseWriter, r *http.Request, err error)
}

// Router returns the signalling router of this node.
func (c *Cluster) Router(local http.Handler, claimed func(context.Context, Lease) error,
	fail func(http.ResponseWriter, *http.Request, error)) *Router {
	return &Router{c: c, Local: local, Claimed: claimed, Fail: fail}
}

// ServeHTTP serves GET …/sessions/{id}/signal: here when this node is, or
// becomes, the room's home; otherwise through a reverse proxy to the home
// node's internal URL, keeping the client's Host, cookies and Origin, so
// any load balancer may send any request to any node. A room without a
// home is claimed by the node with the most headroom (Place).
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		rt.Local.ServeHTTP(w, r) // its 404
		return
	}
	if r.Header.Get(ProxiedHeader) != "" || r.Header.Get(NodeAuthHeader) != "" {
		if _, err := rt.c.Authenticate(r); err != nil {
			rt.Fail(w, r, err)
			return
		}
		proxied.WithLabelValues("in").Inc()
		rt.serveHere(w, r, id, true)
		return
	}
	ctx := r.Context()
	home, err := rt.c.Home(ctx, id)
	switch {
	case err == nil && home.NodeID != rt.c.cfg.NodeID:
		rt.proxy(w, r, home.NodeID)
	case err == nil:
		rt.serveHere(w, r, id, false)
	case errors.Is(err, fault.NotFound):
		target, perr := rt.c.Place(ctx)
		switch {
		case perr != nil:
			rt.Fail(w, r, perr)
		case target.ID == rt.c.cfg.NodeID:
			rt.serveHere(w, r, id, false)
		default:
			rt.proxy(w, r, target.ID)
		}
	default:
		rt.Fail(w, r, err)
	}
}

// serveHere claims the room and serves it; a room another process holds
// is proxied there, unless the request came from a peer already.
func (rt *Router) serveHere(w http.ResponseWriter, r *http.Request, id uuid.UUID, fromPeer bool) {
	lease, fresh, err := rt.c.Claim(r.Context(), id)
	if errors.Is(err, ErrHeld) && !fromPeer {
		rt.proxy(w, r, lease.NodeID)
		return
	}
	if errors.Is(err, ErrHeld) {
		err = fault.Wrap(fault.Unavailable, err, "the room is moving between nodes; retry")
	}
	if err != nil {
		rt.Fail(w, r, err)
		return
	}
	if fresh && rt.Claimed != nil {
		if err := rt.Claimed(r.Context(), lease); err != nil {
			// Not half-built: let the lease go so the next attempt
			// rebuilds — still as the failover it was, if it was one.
			rt.c.log.Warn("rebuilding a claimed room failed; giving it up for the next attempt", "session", id, "previous", lease.Previous, "err", err)
			rt.c.Abandon(context.WithoutCancel(r.Context()), id, lease.Previous)
			rt.Fail(w, r, fault.Wrap(fault.Unavailable, err, "the room could not be rebuilt; retry"))
			return
		}
	}
	rt.Local.ServeHTTP(w, r)
}

// Forward passes a request to another node, as ServeHTTP does when the
// room's home is elsewhere.
func (rt *Router) Forward(w http.ResponseWriter, r *http.Request, nodeID string) {
	rt.proxy(w, r, nodeID)
}

// proxy passes the request (a WebSocket upgrade) to another node.
func (rt *Router) proxy(w http.ResponseWriter, r *http.Request, nodeID string) {
	n, err := rt.c.Node(r.Context(), nodeID)
	if err != nil || !n.Alive {
		rt.Fail(w, r, fault.New(fault.Unavailable, "the room's node does not answer; retry"))
		return
	}
	target, err := url.Parse(n.InternalURL)
	if err != nil {
		rt.Fail(w, r, err)
		return
	}
	proxied.WithLabelValues("out").Inc()
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The home node checks the Origin against the Host the
			// browser used, and builds TURN URLs from it.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			rt.c.Sign(pr.Out)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rt.c.log.Warn("passing a connection to its room's node failed", "node", nodeID, "err", err)
			rt.Fail(w, r, fault.Wrap(fault.Unavailable, err, "the room's node does not answer; retry"))
		},
	}
	p.ServeHTTP(w, r)
}
