package sessions_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/sessions"
)

// updates is a Notifier that hands each participant_updated payload to a
// channel.
type updates chan sessions.Participant

func (u updates) Notify(_ uuid.UUID, _ []uuid.UUID, typ string, payload json.RawMessage) {
	var p sessions.Participant
	if typ == "participant_updated" && json.Unmarshal(payload, &p) == nil {
		u <- p
	}
}

func (u updates) Disconnect(uuid.UUID, uuid.UUID, string) {}

// TestLeavingDuringDatabaseOutage: a participant who leaves while the
// database is unreachable is still announced to the room (from the live
// state), and participant.left is journalled once the database is back,
// with the time they left. Before, only a warning was logged: no event,
// no journal entry.
func TestLeavingDuringDatabaseOutage(t *testing.T) {
	u, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	db, err := database.Open(t.Context(), u.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(t.Context(), discard); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, db)
	room := make(updates, 16)
	f.svc.SetNotifier(room)
	clerk := f.staff(t, access.Clerk)
	sess, err := f.svc.Create(context.Background(), clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask"})
	if err != nil {
		t.Fatal(err)
	}
	_, inv := f.invite(t, clerk, sess.ID, "Mari Tamm", access.Party)
	if _, err := f.svc.Connected(context.Background(), sess.ID, inv.ParticipantID); err != nil {
		t.Fatal(err)
	}
	for len(room) > 0 {
		<-room
	}

	proxy.Cut()
	f.svc.Disconnected(context.Background(), sess.ID, inv.ParticipantID)
	select {
	case p := <-room:
		if p.ID != inv.ParticipantID || p.Connected || p.Name != "Mari Tamm" {
			t.Fatalf("the room was told %+v", p)
		}
	default:
		t.Fatal("the room was not told that the participant left")
	}

	proxy.Restore()
	if n, err := f.journal.DeliverDeferred(context.Background()); err != nil || n != 1 {
		t.Fatalf("DeliverDeferred = %d, %v", n, err)
	}
	entries, err := f.journal.Session(context.Background(), sess.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var left []journal.Entry
	for _, e := range entries {
		if e.Action == "participant.left" {
			left = append(left, e)
		}
	}
	if len(left) != 1 {
		t.Fatalf("participant.left journalled %d times", len(left))
	}
	var d map[string]any
	if err := json.Unmarshal(left[0].Details, &d); err != nil || d["occurred_at"] == nil || d["name"] != "Mari Tamm" {
		t.Fatalf("participant.left details %s", left[0].Details)
	}
}

// TestCredentialLookupsDuringDatabaseOutage: with the database
// unreachable, an API token, a join ticket, a browser sign-in and a staff
// member cannot be looked up — an outage (Unavailable: 503, and not a
// failed authentication), never an internal error. Before, the lookups
// that read one row returned the driver's error unclassified: 500 for
// every request during a PostgreSQL restart (found by faults/).
func TestCredentialLookupsDuringDatabaseOutage(t *testing.T) {
	u, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	db, err := database.Open(t.Context(), u.String(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(t.Context(), discard); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, db)
	clerk, token := f.staffToken(t, access.Clerk)
	sess, err := f.svc.Create(t.Context(), clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask"})
	if err != nil {
		t.Fatal(err)
	}
	entry, err := f.svc.Enter(t.Context(), clerk, sess.ID)
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	for _, c := range []struct {
		what string
		call func() error
	}{
		{"API token", func() error { _, err := f.svc.Authenticate(t.Context(), token); return err }},
		{"join ticket", func() error { _, _, err := f.svc.JoinTicket(t.Context(), sess.ID, entry.Ticket); return err }},
		{"browser sign-in", func() error {
			_, _, err := f.svc.AuthenticateBrowser(t.Context(), "chb_"+strings.Repeat("a", 43))
			return err
		}},
		{"staff member", func() error { _, err := f.svc.GetStaff(t.Context(), clerk.Staff.ID); return err }},
	} {
		if err := c.call(); fault.KindOf(err) != fault.Unavailable {
			t.Errorf("%s lookup during an outage: %v (kind %v), want unavailable", c.what, err, fault.KindOf(err))
		}
	}
}
