package cluster

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// shortTTL keeps the expiry tests quick; the heartbeat is never run by
// them unless they call beat.
const shortTTL = 600 * time.Millisecond

func openDB(t *testing.T) (*database.DB, string) {
	t.Helper()
	dsn := testenv.PostgresDB(t)
	db, err := database.Open(context.Background(), dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

type testNode struct {
	*Cluster
	lost chan uuid.UUID
}

func newNode(t *testing.T, db *database.DB, dsn, id string, load Load) *testNode {
	t.Helper()
	n := &testNode{lost: make(chan uuid.UUID, 16)}
	c, err := New(Config{DB: db, DSN: dsn, NodeID: id, PublicURL: "http://" + id, Capacity: 100,
		LeaseTTL: shortTTL, Heartbeat: shortTTL / 4, Load: func() Load { return load },
		Lost: func(s uuid.UUID) {
			select {
			case n.lost <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Cluster = c
	return n
}

// waitExpired polls until the room has no live home (database clock).
func waitExpired(t *testing.T, c *Cluster, room uuid.UUID) {
	t.Helper()
	var err error
	if !wait.WithinEvery(10*shortTTL, shortTTL/10, func() bool {
		_, err = c.Home(context.Background(), room)
		return errors.Is(err, fault.NotFound)
	}) {
		t.Fatalf("lease of %s did not expire: %v", room, err)
	}
}

func TestNewRefusesSQLite(t *testing.T) {
	db := databasetest.Open(t, database.SQLite)
	_, err := New(Config{DB: db, NodeID: "a", PublicURL: "http://a"})
	if !errors.Is(err, ErrNotPostgres) {
		t.Fatalf("New on SQLite: %v, want ErrNotPostgres", err)
	}
}

func TestClaimIsExclusiveAndTokenGrowsOnTakeover(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()

	l, fresh, err := a.Claim(ctx, room)
	if err != nil || !fresh || l.Token != 1 || l.Previous != "" {
		t.Fatalf("first claim: %+v fresh=%v err=%v", l, fresh, err)
	}
	if l, fresh, err = a.Claim(ctx, room); err != nil || fresh || l.Token != 1 {
		t.Fatalf("renewing claim: %+v fresh=%v err=%v", l, fresh, err)
	}
	held, _, err := b.Claim(ctx, room)
	if !errors.Is(err, ErrHeld) || held.NodeID != "a" || held.Token != 1 {
		t.Fatalf("claim of a held room: %+v %v, want ErrHeld by a", held, err)
	}

	waitExpired(t, a.Cluster, room)
	l, fresh, err = b.Claim(ctx, room)
	if err != nil || !fresh || l.Token != 2 || l.NodeID != "b" {
		t.Fatalf("takeover: %+v fresh=%v err=%v, want token 2 on b", l, fresh, err)
	}
	// a learns at its next heartbeat that the room is gone.
	if err := a.beat(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-a.lost:
		if got != room {
			t.Fatalf("lost %s, want %s", got, room)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a was not told it lost the room")
	}
	if a.Holds(room) {
		t.Fatal("a still believes it holds the room")
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	db, dsn := openDB(t)
	room := uuid.New()
	nodes := []*testNode{newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{}), newNode(t, db, dsn, "c", Load{})}
	type result struct {
		l   Lease
		err error
	}
	results := make(chan result, len(nodes))
	for _, n := range nodes {
		go func() {
			l, _, err := n.Claim(context.Background(), room)
			results <- result{l, err}
		}()
	}
	winners := 0
	for range nodes {
		r := <-results
		switch {
		case r.err == nil:
			winners++
		case !errors.Is(r.err, ErrHeld):
			t.Fatalf("claim: %v", r.err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d nodes claimed the room, want 1", winners)
	}
}

func TestFenceRefusesTheOldHolder(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()
	if _, _, err := a.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	write := func(n *testNode) error {
		return db.InTx(ctx, func(tx *sql.Tx) error { return n.Fence(ctx, tx, room) })
	}
	if err := write(a); err != nil {
		t.Fatalf("the holder's write: %v", err)
	}
	// b writes for a room it does not hold (a REST change): not fenced.
	if err := write(b); err != nil {
		t.Fatalf("a write from a node that holds no lease: %v", err)
	}

	// a pauses past its lease; b takes the room.
	waitExpired(t, a.Cluster, room)
	if _, _, err := b.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	err := write(a)
	if !errors.Is(err, ErrFenced) || !errors.Is(err, fault.Conflict) {
		t.Fatalf("the old holder's write: %v, want ErrFenced (conflict)", err)
	}
	select {
	case <-a.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a refused write did not drop the room")
	}
	if err := write(b); err != nil {
		t.Fatalf("the new holder's write: %v", err)
	}
}

func TestFenceHoldsOffAClaimUntilTheWriteCommits(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()
	if _, _, err := a.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := a.Fence(ctx, tx, room); err != nil {
		t.Fatal(err)
	}
	waitExpired(t, a.Cluster, room)
	claimed := make(chan error, 1)
	go func() { _, _, err := b.Claim(ctx, room); claimed <- err }()
	select {
	case err := <-claimed:
		t.Fatalf("b claimed while a's fenced write was open: %v", err)
	case <-time.After(300 * time.Millisecond): // bounded negative check
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-claimed; err != nil {
		t.Fatalf("b's claim after the commit: %v", err)
	}
}

func TestRestartedNodeTakesItsRoomsBackAtOnce(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	old := newNode(t, db, dsn, "a", Load{})
	room := uuid.New()
	if _, _, err := old.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	restarted := newNode(t, db, dsn, "a", Load{})
	l, fresh, err := restarted.Claim(ctx, room)
	if err != nil || !fresh || l.Token != 2 || l.Previous != "a" {
		t.Fatalf("restarted node's claim: %+v fresh=%v err=%v, want token 2, previous a", l, fresh, err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error { return old.Fence(ctx, tx, room) })
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("the old process's write: %v, want ErrFenced", err)
	}
}

func TestRenewalKeepsTheLease(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()
	if _, _, err := a.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	// a beats at the heartbeat's own period for three lease lengths.
	beat := time.NewTicker(shortTTL / 4)
	defer beat.Stop()
	for end := time.Now().Add(3 * shortTTL); time.Now().Before(end); <-beat.C {
		if err := a.beat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Claim(ctx, room); !errors.Is(err, ErrHeld) {
			t.Fatalf("b's claim of a renewed room: %v, want ErrHeld", err)
		}
	}
}

func TestPlacePicksMostHeadroom(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	busy := newNode(t, db, dsn, "busy", Load{CPU: 0.9, Peers: 10})
	full := newNode(t, db, dsn, "full", Load{CPU: 0.1, Peers: 95})
	idle := newNode(t, db, dsn, "idle", Load{CPU: 0.2, Peers: 20})
	for _, n := range []*testNode{busy, full, idle} {
		if err := n.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := busy.Place(ctx)
	if err != nil || got.ID != "idle" {
		t.Fatalf("Place: %+v %v, want idle", got, err)
	}
	idle.Drain(ctx)
	if got, err = busy.Place(ctx); err != nil || got.ID != "busy" {
		t.Fatalf("Place with idle draining: %+v %v, want busy (CPU 0.9 leaves 0.1, full leaves 0.05)", got, err)
	}
	if _, _, err := idle.Claim(ctx, uuid.New()); !errors.Is(err, ErrDraining) {
		t.Fatalf("a draining node's claim: %v, want ErrDraining", err)
	}
}

func TestDrainReleasesRooms(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()
	if _, _, err := a.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	a.Drain(ctx)
	if got := <-a.lost; got != room {
		t.Fatalf("drain lost %s", got)
	}
	// No TTL to wait out: the lease was released, and a release is no
	// failover (Previous is empty).
	if l, _, err := b.Claim(ctx, room); err != nil || l.Token != 2 || l.Previous != "" {
		t.Fatalf("claim after drain: %+v %v", l, err)
	}
}

func TestEventsReachTheHomeOnly(t *testing.T) {
	db, dsn := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{})
	room := uuid.New()
	if _, _, err := a.Claim(ctx, room); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	a.OnEvent(func(_ context.Context, s uuid.UUID, body []byte) { got <- "a:" + s.String() + ":" + string(body) })
	b.OnEvent(func(_ context.Context, s uuid.UUID, body []byte) { got <- "b:" + s.String() + ":" + string(body) })
	ready := make(chan struct{})
	a.listening, b.listening = ready, nil
	go a.Listen(ctx)
	go b.Listen(ctx)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("listener did not start")
	}
	if err := b.Publish(ctx, room, []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev != "a:"+room.String()+`:{"x":1}` {
			t.Fatalf("event %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the home did not receive the event")
	}
	select {
	case ev := <-got:
		t.Fatalf("a second delivery: %q", ev)
	case <-time.After(300 * time.Millisecond): // bounded negative check
	}
}

// TestEdgeCandidates: a home sends gallery observers to the other live
// nodes, most headroom first, never to itself or a draining node.
func TestEdgeCandidates(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	home := newNode(t, db, dsn, "home", Load{CPU: 0.05})
	busy := newNode(t, db, dsn, "busy", Load{CPU: 0.9, Peers: 10})
	idle := newNode(t, db, dsn, "idle", Load{CPU: 0.2, Peers: 20})
	gone := newNode(t, db, dsn, "gone", Load{})
	for _, n := range []*testNode{home, busy, idle, gone} {
		if err := n.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gone.Drain(ctx)
	ns, err := home.EdgeCandidates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	if strings.Join(ids, ",") != "idle,busy" {
		t.Fatalf("edge candidates %v, want idle,busy", ids)
	}
	idle.Drain(ctx)
	busy.Drain(ctx)
	if _, err := home.EdgeCandidates(ctx); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("no other node: %v, want unavailable", err)
	}
}

// TestAbandonedFailoverStaysAFailover: a node that took over a failed
// node's room but could not rebuild it gives the room up; whichever node
// claims it next — itself or another — still learns which node the room
// failed over from, so that the move is journalled (room.moved), under a
// newer token.
func TestAbandonedFailoverStaysAFailover(t *testing.T) {
	db, dsn := openDB(t)
	ctx := context.Background()
	a, b, c := newNode(t, db, dsn, "a", Load{}), newNode(t, db, dsn, "b", Load{}), newNode(t, db, dsn, "c", Load{})
	for _, next := range []*testNode{b, c} {
		room := uuid.New()
		if _, _, err := a.Claim(ctx, room); err != nil {
			t.Fatal(err)
		}
		waitExpired(t, a.Cluster, room) // a dies
		l, _, err := b.Claim(ctx, room)
		if err != nil || l.Previous != "a" {
			t.Fatalf("b's takeover: %+v %v, want previous a", l, err)
		}
		b.Abandon(ctx, room, l.Previous) // b could not rebuild it
		if b.Holds(room) {
			t.Fatal("b still holds the room it abandoned")
		}
		again, fresh, err := next.Claim(ctx, room)
		if err != nil || !fresh || again.Previous != "a" || again.Token <= l.Token {
			t.Fatalf("%s claims the abandoned room: %+v fresh=%v %v, want previous a and a newer token than %d", next.NodeID(), again, fresh, err, l.Token)
		}
	}
	// A room claimed without a failover is simply released.
	room := uuid.New()
	l, _, err := b.Claim(ctx, room)
	if err != nil || l.Previous != "" {
		t.Fatalf("first claim: %+v %v", l, err)
	}
	b.Abandon(ctx, room, l.Previous)
	if again, _, err := c.Claim(ctx, room); err != nil || again.Previous != "" {
		t.Fatalf("claim after an abandoned first claim: %+v %v, want no previous", again, err)
	}
}
