// Package cluster lets several Chamber nodes share one PostgreSQL database:
// every node registers itself and beats its heart in cluster_nodes, and
// each room has one home node at a time, held through a lease row in
// room_leases with a fencing token.
//
// Nothing here is home-made consensus. The lease is a compare-and-set
// UPDATE whose row lock PostgreSQL arbitrates; the database's clock is the
// only clock (nodes' clocks may disagree); a node's writes for a room
// carry its token and are checked under a row lock in their own
// transaction (Fence), so a node that lost the room — paused past its
// lease, cut off, or just slow — can no longer write for it, whatever it
// believes. LISTEN/NOTIFY carries the ids of events that other nodes
// leave in room_events for a room's home.
//
// SQLite has none of this: a single node holds every room and New refuses
// any other engine than PostgreSQL.
package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
)

// Defaults of Config.
const (
	DefaultLeaseTTL  = 5 * time.Second
	DefaultHeartbeat = 1500 * time.Millisecond
	DefaultCapacity  = 200
)

// dbNow is the database's clock in Unix microseconds. clock_timestamp, not
// now(): now() is the start of the transaction, which may have waited on
// a row lock.
const dbNow = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT`

// ErrNotPostgres refuses a cluster on SQLite.
var ErrNotPostgres = errors.New("cluster: several nodes need PostgreSQL (--database postgres://…); SQLite is for a single node, without --node-id")

// Config configures a node.
type Config struct {
	DB *database.DB
	// DSN is the PostgreSQL URL, for the connection LISTEN holds.
	DSN string
	// NodeID names this node, stable across restarts (a StatefulSet pod's
	// name) [--node-id].
	NodeID string
	// PublicURL is where browsers reach this node [--node-url];
	// InternalURL where other nodes do [--node-internal-url, default
	// PublicURL]; MediaAddr its media address, for operators.
	PublicURL, InternalURL, MediaAddr string
	// Capacity is how many peers the node takes at most [--node-capacity].
	Capacity int
	// LeaseTTL is how long a lease lasts without renewal; Heartbeat how
	// often the node renews its leases and reports its load.
	LeaseTTL, Heartbeat time.Duration
	// Load reports the node's load for its heartbeat; nil reports none.
	Load func() Load
	// Lost is called (on the heartbeat goroutine) for every room whose
	// lease this process held and no longer holds: the room's connections
	// must end and its live state be forgotten.
	Lost func(sessionID uuid.UUID)
	// Empty reports whether a room has no connections here; a room empty
	// at two heartbeats in a row, and not claimed within the lease TTL, is
	// released, so that placement may put it elsewhere next time. Nil
	// keeps every room until the process ends.
	Empty func(sessionID uuid.UUID) bool
	// Secret authenticates the nodes' requests to one another
	// [--cluster-secret-file]; empty means the one in the database's
	// cluster_secret row, which the first node to start generates.
	Secret []byte
	Logger *slog.Logger
}

// Load is what a node reports of itself in its heartbeat.
type Load struct {
	CPU   float64 // share of the machine's CPU this process used since the last beat, 0…1
	Peers int     // media connections
	Rooms int     // rooms with connections
}

// Node is a registered node as the database knows it.
type Node struct {
	ID, PublicURL, InternalURL, MediaAddr string
	Capacity                              int
	Load
	Draining bool
	// Alive reports a heartbeat within the lease TTL (database clock).
	Alive bool
}

// headroom is the share of the node still free: the smaller of its idle
// CPU and its free peer slots.
func (n Node) headroom() float64 {
	peers := 1 - float64(n.Peers)/float64(max(n.Capacity, 1))
	return min(1-n.CPU, peers)
}

// Lease is a room's home as the database knows it.
type Lease struct {
	SessionID uuid.UUID
	NodeID    string
	Token     int64
	// Previous is the node whose process held the room until its lease
	// ended without a release — it died, stalled or was cut off, or was
	// restarted under the same ID (then it is its own previous node) — and
	// "" for a new room, a released one (drained, idle, shut down) or one
	// this process held last.
	Previous string
}

// Cluster is this process's membership: its node row, the leases it
// holds, and its listener for room events.
type Cluster struct {
	cfg         Config
	log         *slog.Logger
	incarnation string // this process: a restarted node is a new holder
	// auth signs and checks node-to-node requests; set by Register.
	auth atomic.Pointer[nodeAuth]

	mu      sync.Mutex
	held    map[uuid.UUID]int64 // room → token of the leases this process holds
	losing  map[uuid.UUID]bool  // rooms whose Lost is running (still fenced)
	claimed map[uuid.UUID]time.Time
	empty   map[uuid.UUID]int // heartbeats in a row a held room was empty
	// lastRenew is when the last successful renewal began.
	lastRenew time.Time
	draining  bool
	handler   func(ctx context.Context, sessionID uuid.UUID, body []byte)
	// listening, when set, is closed once LISTEN is in place (tests).
	listening chan struct{}
}

// New checks the configuration; Register then makes the node known.
func New(cfg Config) (*Cluster, error) {
	if cfg.DB == nil || cfg.DB.Engine != database.Postgres {
		return nil, ErrNotPostgres
	}
	if cfg.NodeID == "" || cfg.PublicURL == "" {
		return nil, errors.New("cluster: a node needs an ID and a public URL")
	}
	cfg.InternalURL = cmp.Or(cfg.InternalURL, cfg.PublicURL)
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, DefaultLeaseTTL)
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.Capacity = cmp.Or(cfg.Capacity, DefaultCapacity)
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("cluster: the cluster secret must have %d bytes or more", MinSecretLen)
	}
	if cfg.Heartbeat*2 > cfg.LeaseTTL {
		return nil, fmt.Errorf("cluster: the heartbeat (%s) must fit twice in the lease (%s)", cfg.Heartbeat, cfg.LeaseTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Load == nil {
		cfg.Load = func() Load { return Load{} }
	}
	if cfg.Lost == nil {
		cfg.Lost = func(uuid.UUID) {}
	}
	return &Cluster{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), incarnation: uuid.NewString(),
		held: map[uuid.UUID]int64{}, losing: map[uuid.UUID]bool{}, claimed: map[uuid.UUID]time.Time{},
		empty: map[uuid.UUID]int{}}, nil
}

// NodeID is this node's ID.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// Register writes this node's row; a restarted node takes its row over.
func (c *Cluster) Register(ctx context.Context) error {
	if c.auth.Load() == nil {
		secret, err := c.loadSecret(ctx)
		if err != nil {
			return err
		}
		c.auth.Store(newNodeAuth(secret))
	}
	_, err := c.cfg.DB.ExecContext(ctx, `
		INSERT INTO cluster_nodes (id, incarnation, public_url, internal_url, media_addr, capacity, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $6, `+dbNow+`, `+dbNow+`)
		ON CONFLICT (id) DO UPDATE SET incarnation = excluded.incarnation, public_url = excluded.public_url,
			internal_url = excluded.internal_url, media_addr = excluded.media_addr, capacity = excluded.capacity,
			cpu = 0, peers = 0, rooms = 0, draining = FALSE, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
		c.cfg.NodeID, c.incarnation, c.cfg.PublicURL, c.cfg.InternalURL, c.cfg.MediaAddr, c.cfg.Capacity)
	if err != nil {
		return fmt.Errorf("cluster: register node %s: %w", c.cfg.NodeID, err)
	}
	c.renewed(time.Now())
	c.log.Info("node registered", "public_url", c.cfg.PublicURL, "internal_url", c.cfg.InternalURL, "media", c.cfg.MediaAddr)
	return nil
}

// Nodes lists the registered nodes.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `
		SELECT id, public_url, internal_url, media_addr, capacity, cpu, peers, rooms, draining,
		       heartbeat_at > `+dbNow+` - $1
		FROM cluster_nodes ORDER BY id`, c.cfg.LeaseTTL.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		if err := rows.Scan(&n.ID, &n.PublicURL, &n.InternalURL, &n.MediaAddr, &n.Capacity, &n.CPU, &n.Peers, &n.Rooms,
			&n.Draining, &n.Alive); err != nil {
			return nil, fmt.Errorf("cluster: nodes: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Node returns one registered node.
func (c *Cluster) Node(ctx context.Context, id string) (Node, error) {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return Node{}, err
	}
	for _, n := range ns {
		if n.ID == id {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("cluster: node %s: %w", id, fault.NotFound)
}

// Place picks the home of a new room: the live node, not draining, with
// the most headroom; fault.Unavailable when there is none.
func (c *Cluster) Place(ctx context.Context) (Node, error) {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return Node{}, err
	}
	var best Node
	found := false
	for _, n := range ns {
		if !n.Alive || n.Draining {
			continue
		}
		if !found || n.headroom() > best.headroom() || (n.headroom() == best.headroom() && n.ID == c.cfg.NodeID) {
			best, found = n, true
		}
	}
	if !found {
		return Node{}, fault.New(fault.Unavailable, "no node can take the room now")
	}
	return best, nil
}

// EdgeCandidates lists the nodes a room's home may send gallery observers
// to (the cascade): live, not draining, not this one, most headroom first;
// fault.Unavailable when there is none.
func (c *Cluster) EdgeCandidates(ctx context.Context) ([]Node, error) {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(ns, func(n Node) bool { return !n.Alive || n.Draining || n.ID == c.cfg.NodeID })
	if len(out) == 0 {
		return nil, fault.New(fault.Unavailable, "no other node can take gallery observers now")
	}
	slices.SortStableFunc(out, func(a, b Node) int { return cmp.Compare(b.headroom(), a.headroom()) })
	return out, nil
}

// Draining reports whether this node refuses new rooms.
func (c *Cluster) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// beat renews this process's leases and reports its load. Rooms whose
// lease is no longer this process's are handed to Lost.
func (c *Cluster) beat(ctx context.Context) error {
	load := c.cfg.Load()
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	res, err := c.cfg.DB.ExecContext(ctx, `
		UPDATE cluster_nodes SET cpu = $1, peers = $2, rooms = $3, draining = $4, heartbeat_at = `+dbNow+`
		WHERE id = $5 AND incarnation = $6`,
		load.CPU, load.Peers, load.Rooms, draining, c.cfg.NodeID, c.incarnation)
	if err != nil {
		return fmt.Errorf("cluster: heartbeat: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Another process registered with our ID: a misconfiguration, or
		// we are the old process of a restarted node. Take the row back
		// so the operator sees both fighting in the log.
		c.log.Error("another process registered this node ID; node IDs must be unique")
		if err := c.Register(ctx); err != nil {
			return err
		}
	}
	if _, err := c.cfg.DB.ExecContext(ctx, `DELETE FROM room_events WHERE at < `+dbNow+` - $1`, eventTTL.Microseconds()); err != nil {
		c.log.Warn("deleting old room events", "err", err)
	}
	err = c.renew(ctx)
	c.releaseIdle(ctx)
	nodeRooms.Set(float64(c.HeldRooms()))
	return err
}

// stop releases every room, renewing the leases on each tick until it is
// done: ending a room's connections (and its recording) may outlast a
// lease, and a lease that expires unreleased is a failover.
func (c *Cluster) stop(ctx context.Context, tick <-chan time.Time) {
	done := make(chan struct{})
	go func() { // ends when every room is released
		defer close(done)
		c.ReleaseAll(ctx)
	}()
	for {
		select {
		case <-done:
			return
		case <-tick:
			if err := c.renew(ctx); err != nil {
				c.log.Warn("renewing leases while handing rooms over", "err", err)
			}
		}
	}
}

// Run beats the heart until ctx ends, then releases this process's leases
// so that the rooms move at once rather than after the TTL.
func (c *Cluster) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.stop(context.WithoutCancel(ctx), t.C)
			return
		case <-t.C:
			if err := c.beat(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

// releaseIdle gives up the rooms nobody has been connected to here for two
// heartbeats, unless claimed within the lease TTL (a connection may be on
// its way in).
func (c *Cluster) releaseIdle(ctx context.Context) {
	if c.cfg.Empty == nil {
		return
	}
	var idle []uuid.UUID
	c.mu.Lock()
	for id := range c.held {
		if c.losing[id] || time.Since(c.claimed[id]) < c.cfg.LeaseTTL || !c.cfg.Empty(id) {
			delete(c.empty, id)
			continue
		}
		c.empty[id]++
		if c.empty[id] >= 2 {
			idle = append(idle, id)
		}
	}
	c.mu.Unlock()
	for _, id := range idle {
		c.Release(ctx, id)
	}
}
