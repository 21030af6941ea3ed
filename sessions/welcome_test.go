package sessions_test

import (
	"context"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// TestWelcomeReadAgain: read again with nothing changed, the welcome is
// the one Connected gave, byte for byte (so the signalling server sends
// nothing more); after an admission it is the admitted participant's.
func TestWelcomeReadAgain(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		clerk := f.staff(t, access.Clerk)
		sess, err := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask"})
		if err != nil {
			t.Fatal(err)
		}
		judge := f.seated(t, clerk, sess.ID, "Judge Saar", access.Judge)
		if _, err := f.svc.Connected(ctx, sess.ID, judge.Participant.ID); err != nil {
			t.Fatal(err)
		}
		party, _ := f.invite(t, clerk, sess.ID, "Mari Tamm", access.Party)
		pid := party.Participant.ID
		first, err := f.svc.Connected(ctx, sess.ID, pid)
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.svc.Welcome(ctx, sess.ID, pid)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := mustMarshal(t, first), mustMarshal(t, again); string(a) != string(b) {
			t.Fatalf("read again unchanged, the welcome differs:\n%s\n%s", a, b)
		}
		if first.You.Space != sessions.SpaceWaiting {
			t.Fatalf("the party joined in %q", first.You.Space)
		}
		if _, err := f.svc.Admit(ctx, clerk, sess.ID, pid); err != nil {
			t.Fatal(err)
		}
		admitted, err := f.svc.Welcome(ctx, sess.ID, pid)
		if err != nil {
			t.Fatal(err)
		}
		if admitted.You.Space != sessions.SpaceMain || !admitted.You.Connected {
			t.Fatalf("after the admission the welcome says %+v", admitted.You)
		}
	})
}
