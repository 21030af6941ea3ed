package sessions_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// TestRoomMovesBetweenNodes: three Services on one database stand for three
// nodes. The home (A) learns of a change made on B only when it refreshes;
// a new home (C) rebuilds the room exactly — mutes, spaces and the page
// being presented — from the database alone.
func TestRoomMovesBetweenNodes(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		a, b, c := newFixture(t, db), newFixture(t, db), newFixture(t, db)
		clerk := a.staff(t, access.Clerk)
		sid := a.hearing(t, clerk)
		judge, jp := a.official(t, clerk, sid, access.Judge)
		party, _ := a.invite(t, clerk, sid, "Mari Tamm", access.Party)
		for _, pid := range []uuid.UUID{jp.ID, id(party)} {
			if _, err := a.svc.Connected(ctx, sid, pid); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.svc.Admit(ctx, judge, sid, id(party)); err != nil {
			t.Fatal(err)
		}
		doc := uuid.New()
		present, _ := json.Marshal(map[string]any{"document_id": doc, "page": 2})
		if _, err := a.svc.RoomMessage(ctx, sid, jp.ID, sessions.MessagePresent, present); err != nil {
			t.Fatal(err)
		}
		hears := func(f *fixture) bool { return f.svc.MayForward(sid, jp.ID, id(party), sessions.SourceMicrophone) }
		if !hears(a) {
			t.Fatal("the judge does not hear the admitted party")
		}

		// Muted through node B: the home still has the old state until it
		// refreshes, as the room event makes it.
		yes := true
		if _, err := b.svc.Mute(ctx, judge, sid, id(party), sessions.MuteRequest{Audio: &yes}); err != nil {
			t.Fatal(err)
		}
		if !hears(a) {
			t.Fatal("the home saw B's change without a refresh: the test proves nothing")
		}
		moved, err := a.svc.Refresh(ctx, sid)
		if err != nil || len(moved) != 0 {
			t.Fatalf("refresh after a mute: moved %v, %v", moved, err)
		}
		if hears(a) {
			t.Fatal("after the refresh the home still forwards the muted party")
		}
		// Moved through B: the refresh names who moved, for CatchUp.
		if _, err := b.svc.Move(ctx, judge, sid, id(party), sessions.SpaceWaiting); err != nil {
			t.Fatal(err)
		}
		if moved, err = a.svc.Refresh(ctx, sid); err != nil || len(moved) != 1 || moved[0].ID != id(party) || moved[0].Space != sessions.SpaceWaiting {
			t.Fatalf("refresh after a move: %+v, %v", moved, err)
		}
		if _, err := b.svc.Admit(ctx, judge, sid, id(party)); err != nil {
			t.Fatal(err)
		}

		// C becomes the home: rebuilt from the database, the room is as it was.
		if err := c.svc.Rebuild(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if hears(c) {
			t.Fatal("the rebuilt room forwards the muted party")
		}
		if !c.svc.MayForward(sid, id(party), jp.ID, sessions.SourceMicrophone) {
			t.Fatal("the rebuilt room keeps the re-admitted party from the judge")
		}
		if !c.svc.PresentedTo(sid, id(party), doc) {
			t.Fatal("the rebuilt room lost the page being presented")
		}
		// A, which lost the room, forgets it.
		a.svc.Forget(sid)
		if hears(a) || a.svc.PresentedTo(sid, jp.ID, doc) {
			t.Fatal("the node that lost the room still serves its old state")
		}
	})
}

// TestJoinBeforeTheHomeHeardOfTheInvitation: a participant invited through
// another node joins the home before the home has refreshed (the cascade
// test's observer, invited on the edge, did so under load). The home
// counts the connection all the same: it journals participant.joined, the
// participant shows as connected, and closing the session ends the
// connection. Before, the home had no live record of the participant, so
// the connection was never counted: no entry, shown offline, and left
// connected to a closed session.
func TestJoinBeforeTheHomeHeardOfTheInvitation(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		home, other := newFixture(t, db), newFixture(t, db)
		clerk := home.staff(t, access.Clerk)
		sid := home.hearing(t, clerk)
		_, jp := home.official(t, clerk, sid, access.Judge)
		if _, err := home.svc.Connected(ctx, sid, jp.ID); err != nil { // the home holds the room
			t.Fatal(err)
		}
		_, inv := other.invite(t, clerk, sid, "Observer A", access.Observer)
		if _, err := home.svc.Connected(ctx, sid, inv.ParticipantID); err != nil {
			t.Fatal(err)
		}
		joined := home.entries(t, sid, "participant.joined")
		if len(joined) != 2 {
			t.Fatalf("%d participant.joined entries, want the judge's and the observer's", len(joined))
		}
		// The refresh the other node's change causes keeps the count.
		if _, err := home.svc.Refresh(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if _, err := home.svc.Close(ctx, clerk, sid); err != nil {
			t.Fatal(err)
		}
		for _, pid := range []uuid.UUID{jp.ID, inv.ParticipantID} {
			if !home.notes.wasDisconnected(pid) {
				t.Errorf("closing the session did not end %s's connection", pid)
			}
		}
	})
}
