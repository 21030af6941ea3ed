package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
)

// ErrHeld is returned by Claim when another live process holds the room.
var ErrHeld = errors.New("cluster: the room's lease is held by another node")

// ErrDraining is returned by Claim while this node drains.
var ErrDraining = fault.New(fault.Unavailable, "this node is draining and takes no rooms")

// ErrFenced refuses a write for a room whose lease this process no longer
// holds. It is a Conflict, never Unavailable: a refused write must not wait in
// an outbox to be appended later; the participant reconnects to the new home.
var ErrFenced = fault.New(fault.Conflict, "this node no longer holds the room; reconnect")

// Claim makes this process the room's home, or renews its lease if it is
// already. The compare-and-set succeeds only when the lease is expired
// (database clock), already this process's, or its node's: a node that
// registered anew was restarted, so its old process is gone (node IDs are
// unique; Register takes the row over). The token grows by one at
// every change of holder. fresh reports a change of holder: the caller
// must rebuild the room's live state from the database before serving it.
// A lease held by another live process gives ErrHeld and that lease.
func (c *Cluster) Claim(ctx context.Context, sessionID uuid.UUID) (l Lease, fresh bool, err error) {
	if c.Draining() {
		return Lease{}, false, ErrDraining
	}
	l = Lease{SessionID: sessionID, NodeID: c.cfg.NodeID}
	var prev, prevHolder string
	var prevUntil int64
	err = c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		// The row lock first, so that what was there before is what this
		// claim replaces.
		err := tx.QueryRowContext(ctx, `SELECT node_id, holder, lease_until FROM room_leases WHERE session_id = $1 FOR UPDATE`,
			sessionID.String()).Scan(&prev, &prevHolder, &prevUntil)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return tx.QueryRowContext(ctx, `
			INSERT INTO room_leases AS l (session_id, node_id, holder, token, lease_until, claimed_at)
			VALUES ($1, $2, $3, 1, `+dbNow+` + $4, `+dbNow+`)
			ON CONFLICT (session_id) DO UPDATE SET
				token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE l.token + 1 END,
				claimed_at = CASE WHEN l.holder = excluded.holder THEN l.claimed_at ELSE excluded.claimed_at END,
				node_id = excluded.node_id, holder = excluded.holder, lease_until = excluded.lease_until
			WHERE l.lease_until < `+dbNow+` OR l.holder = excluded.holder OR l.node_id = excluded.node_id
			RETURNING l.token`,
			sessionID.String(), c.cfg.NodeID, c.incarnation, c.cfg.LeaseTTL.Microseconds(),
		).Scan(&l.Token)
	})
	if errors.Is(err, sql.ErrNoRows) {
		home, herr := c.Home(ctx, sessionID)
		if herr != nil {
			return Lease{}, false, herr
		}
		return home, false, ErrHeld
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("cluster: claim room %s: %w", sessionID, err)
	}
	c.mu.Lock()
	held, had := c.held[sessionID]
	c.held[sessionID] = l.Token
	c.claimed[sessionID] = time.Now()
	c.mu.Unlock()
	// Fresh unless this process served the room under this very token:
	// a room it lost and took back is rebuilt like any other.
	fresh = !had || held != l.Token
	if prevHolder != c.incarnation && prevUntil != 0 {
		l.Previous = prev // a lease that ended without a release: a failover
	}
	if fresh {
		leaseClaims.Inc()
		c.log.Info("room claimed", "session", sessionID, "token", l.Token)
	}
	return l, fresh, nil
}

// Home returns the room's current lease if a live process holds it;
// fault.NotFound when nobody does (never claimed, or expired).
func (c *Cluster) Home(ctx context.Context, sessionID uuid.UUID) (Lease, error) {
	l := Lease{SessionID: sessionID}
	err := c.cfg.DB.QueryRowContext(ctx, `
		SELECT node_id, token FROM room_leases WHERE session_id = $1 AND lease_until >= `+dbNow,
		sessionID.String()).Scan(&l.NodeID, &l.Token)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("cluster: room %s has no home: %w", sessionID, fault.NotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("cluster: home of room %s: %w", sessionID, err)
	}
	return l, nil
}

// Holds reports whether this process believes it holds the room. Only
// Fence, inside a transaction, knows for sure.
func (c *Cluster) Holds(sessionID uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.held[sessionID]
	return ok
}

// Fence checks, inside the caller's transaction, that this process still
// holds the room it believes it holds, and keeps the lease row share-locked
// until the transaction ends, so that no claim can slip in between the
// check and the commit. Writes for rooms this process does not believe it
// holds (a REST change made on any node) are not fenced: they read what
// they change inside their own transaction. A refused write drops the room.
func (c *Cluster) Fence(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID) error {
	c.mu.Lock()
	token, ok := c.held[sessionID]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	var holder string
	var current int64
	err := tx.QueryRowContext(ctx, `SELECT holder, token FROM room_leases WHERE session_id = $1 FOR SHARE`,
		sessionID.String()).Scan(&holder, &current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("cluster: fence room %s: %w", sessionID, err)
	}
	if err == nil && holder == c.incarnation && current == token {
		return nil
	}
	fencedWrites.Inc()
	c.log.Warn("write refused: the room's lease is no longer this node's", "session", sessionID, "token", token, "current", current)
	go c.lose(sessionID, token) // not under the caller's transaction
	return fmt.Errorf("cluster: room %s, token %d: %w", sessionID, token, ErrFenced)
}

// lose tells Lost of a held room (if still held with token) and then
// forgets it. The room stays fenced while Lost ends its connections: what
// they write on their way out is refused too.
func (c *Cluster) lose(sessionID uuid.UUID, token int64) {
	c.mu.Lock()
	if t, ok := c.held[sessionID]; !ok || t != token || c.losing[sessionID] {
		c.mu.Unlock()
		return
	}
	c.losing[sessionID] = true
	c.mu.Unlock()
	leaseLosses.Inc()
	c.log.Warn("room lost", "session", sessionID, "token", token)
	c.cfg.Lost(sessionID)
	c.mu.Lock()
	delete(c.losing, sessionID)
	if c.held[sessionID] == token {
		c.forgetLocked(sessionID)
	}
	c.mu.Unlock()
}

func (c *Cluster) forgetLocked(sessionID uuid.UUID) {
	delete(c.held, sessionID)
	delete(c.claimed, sessionID)
	delete(c.empty, sessionID)
}

// renew extends every lease this process holds, except those it released
// meanwhile (lease_until 0). Those it no longer holds are lost; so is everything when no renewal succeeded for a whole TTL (the
// database is out of reach: another node may have the rooms by now).
func (c *Cluster) renew(ctx context.Context) error {
	started := time.Now()
	c.mu.Lock()
	held := make(map[uuid.UUID]int64, len(c.held))
	for id, t := range c.held {
		held[id] = t
	}
	c.mu.Unlock()
	if len(held) == 0 {
		c.renewed(started)
		return nil
	}
	rows, err := c.cfg.DB.QueryContext(ctx, `
		UPDATE room_leases SET lease_until = `+dbNow+` + $1 WHERE holder = $2 AND lease_until > 0 RETURNING session_id, token`,
		c.cfg.LeaseTTL.Microseconds(), c.incarnation)
	if err != nil {
		c.expireIfStale()
		return fmt.Errorf("cluster: renew leases: %w", err)
	}
	kept := map[uuid.UUID]int64{}
	for rows.Next() {
		var id string
		var token int64
		if err := rows.Scan(&id, &token); err != nil {
			rows.Close()
			return fmt.Errorf("cluster: renew leases: %w", err)
		}
		if u, err := uuid.Parse(id); err == nil {
			kept[u] = token
		}
	}
	if err := rows.Close(); err != nil {
		c.expireIfStale()
		return fmt.Errorf("cluster: renew leases: %w", err)
	}
	c.renewed(started)
	leaseRenewals.Add(float64(len(kept)))
	for id, t := range held {
		if kept[id] != t {
			c.lose(id, t)
		}
	}
	return nil
}

// Renewing reports whether the last successful renewal began within the
// lease TTL: the node's leases are alive (readiness).
func (c *Cluster) Renewing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.lastRenew.IsZero() && time.Since(c.lastRenew) <= c.cfg.LeaseTTL
}

// renewed notes when the last successful renewal began (local monotonic
// clock: it began before the database stamped the lease).
func (c *Cluster) renewed(at time.Time) {
	c.mu.Lock()
	c.lastRenew = at
	c.mu.Unlock()
}

// expireIfStale drops every room when the last renewal that succeeded
// began more than a TTL ago: the leases have expired by the database's
// clock too, and another node may serve the rooms.
func (c *Cluster) expireIfStale() {
	c.mu.Lock()
	stale := !c.lastRenew.IsZero() && time.Since(c.lastRenew) > c.cfg.LeaseTTL
	held := make(map[uuid.UUID]int64, len(c.held))
	for id, t := range c.held {
		held[id] = t
	}
	c.mu.Unlock()
	if !stale {
		return
	}
	for id, t := range held {
		c.lose(id, t)
	}
}

// Release gives a room up at once (its last connection left, or the node
// drains), so the next claim need not wait for the TTL.
func (c *Cluster) Release(ctx context.Context, sessionID uuid.UUID) {
	c.mu.Lock()
	_, ok := c.held[sessionID]
	c.forgetLocked(sessionID)
	c.mu.Unlock()
	if !ok {
		return
	}
	if _, err := c.cfg.DB.ExecContext(ctx, `UPDATE room_leases SET lease_until = 0 WHERE session_id = $1 AND holder = $2`,
		sessionID.String(), c.incarnation); err != nil {
		c.log.Warn("releasing a room", "session", sessionID, "err", err)
	}
}

// Abandon gives up a room this process has just claimed but could not
// rebuild. A room it took over from a failed node (previous, the lease's
// Previous) goes back to that node's expired lease — not released, so
// that whichever node claims it next still sees the failover it has to
// journal (room.moved); the next claim's token is a newer one, as at any
// change of holder. A room claimed without a failover is released.
func (c *Cluster) Abandon(ctx context.Context, sessionID uuid.UUID, previous string) {
	if previous == "" {
		c.Release(ctx, sessionID)
		return
	}
	c.mu.Lock()
	_, ok := c.held[sessionID]
	c.forgetLocked(sessionID)
	c.mu.Unlock()
	if !ok {
		return
	}
	if _, err := c.cfg.DB.ExecContext(ctx, `UPDATE room_leases SET node_id = $3, holder = '', lease_until = 1 WHERE session_id = $1 AND holder = $2`,
		sessionID.String(), c.incarnation, previous); err != nil {
		c.log.Warn("abandoning a room", "session", sessionID, "err", err)
	}
}

// ReleaseAll gives up every room this process holds, telling Lost of each.
func (c *Cluster) ReleaseAll(ctx context.Context) {
	c.mu.Lock()
	held := make([]uuid.UUID, 0, len(c.held))
	for id := range c.held {
		held = append(held, id)
	}
	c.mu.Unlock()
	// Connections end first, while their writes are still fenced by a
	// lease this process holds; then the lease goes, with a time of its
	// own: ending the connections may have taken a while, and a lease that
	// is not released counts as a failover.
	for _, id := range held {
		c.cfg.Lost(id)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		c.Release(rctx, id)
		cancel()
	}
}

// releaseTimeout bounds the release of one lease.
const releaseTimeout = 5 * time.Second

// Drain stops this node taking rooms and hands over those it holds: their
// leases are released and Lost ends their connections, whose clients
// reconnect to another node.
func (c *Cluster) Drain(ctx context.Context) {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	c.log.Info("draining: no new rooms, handing over the rooms held")
	if _, err := c.cfg.DB.ExecContext(ctx, `UPDATE cluster_nodes SET draining = TRUE WHERE id = $1 AND incarnation = $2`,
		c.cfg.NodeID, c.incarnation); err != nil {
		c.log.Warn("marking the node draining", "err", err)
	}
	c.ReleaseAll(ctx)
}

// HeldRooms counts the rooms this process holds.
func (c *Cluster) HeldRooms() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}
