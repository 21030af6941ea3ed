package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// channel is the NOTIFY channel of room events.
const channel = "chamber_room_events"

// eventTTL is how long a room event stays in room_events: the home reads it
// within milliseconds of the NOTIFY; the rest is for the log of an outage.
const eventTTL = time.Minute

// maxEventBody bounds one event (a participant record, a participants list).
const maxEventBody = 1 << 20

// OnEvent sets what the room's home does with an event another node
// published for it. It runs on the listener's goroutine.
func (c *Cluster) OnEvent(f func(ctx context.Context, sessionID uuid.UUID, body []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handler = f
}

// Publish leaves an event for the room's home and wakes it (NOTIFY, sent
// at commit with the row). Every node hears it; only the home acts, except
// on an event for uuid.Nil, which is for every node.
func (c *Cluster) Publish(ctx context.Context, sessionID uuid.UUID, body []byte) error {
	if len(body) > maxEventBody {
		return fmt.Errorf("cluster: room event of %d bytes is over %d", len(body), maxEventBody)
	}
	id := uuid.NewString()
	err := c.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO room_events (id, session_id, body, at) VALUES ($1, $2, $3, `+dbNow+`)`,
			id, sessionID.String(), string(body)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: publish a room event: %w", err)
	}
	roomEvents.WithLabelValues("sent").Inc()
	return nil
}

// Listen hands the room events of the rooms this process holds to the
// OnEvent function until ctx ends; a lost connection is reopened.
func (c *Cluster) Listen(ctx context.Context) {
	l := &pgxlisten.Listener{
		Connect:        func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, c.cfg.DSN) },
		LogError:       func(_ context.Context, err error) { c.log.Warn("room event listener", "err", err) },
		ReconnectDelay: time.Second,
	}
	l.Handle(channel, eventHandler{c})
	if err := l.Listen(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("room event listener stopped", "err", err)
	}
}

// eventHandler is the listener's handler; its backlog call marks the
// moment LISTEN is in place.
type eventHandler struct{ c *Cluster }

func (h eventHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, conn *pgx.Conn) error {
	return h.c.handle(ctx, n, conn)
}

// HandleBacklog runs once LISTEN is in place. Events left before are not
// replayed: the home rebuilt the room from the database when it claimed it.
func (h eventHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.c.mu.Lock()
	ready := h.c.listening
	h.c.listening = nil
	h.c.mu.Unlock()
	if ready != nil {
		close(ready)
	}
	return nil
}

func (c *Cluster) handle(ctx context.Context, n *pgconn.Notification, conn *pgx.Conn) error {
	var session, body string
	err := conn.QueryRow(ctx, `SELECT session_id, body FROM room_events WHERE id = $1`, n.Payload).Scan(&session, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // swept already: too old to matter
	}
	if err != nil {
		return fmt.Errorf("cluster: reading room event %s: %w", n.Payload, err)
	}
	id, err := uuid.Parse(session)
	if err != nil || (id != uuid.Nil && !c.Holds(id)) {
		return nil // uuid.Nil: an event for every node
	}
	c.mu.Lock()
	h := c.handler
	c.mu.Unlock()
	if h != nil {
		roomEvents.WithLabelValues("received").Inc()
		h(ctx, id, []byte(body))
	}
	return nil
}
