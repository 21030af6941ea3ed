package sessions_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
)

// TestClosedSessionRefusesEveryChange: once a session is closed, every
// change the session layer makes — REST's and the signalling room
// messages' alike — is refused as a conflict, and nothing is journalled
// after session.closed.
func TestClosedSessionRefusesEveryChange(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		r := newGallery(t, f)
		ctx := context.Background()
		clerk := f.staff(t, access.Admin)
		link, err := f.svc.CreatePublicLink(ctx, r.judgeP, r.sid)
		if err != nil {
			t.Fatal(err)
		}
		cons, err := f.svc.OpenConsultation(ctx, r.judgeP, r.sid, []uuid.UUID{r.party})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Close(ctx, r.judgeP, r.sid); err != nil {
			t.Fatal(err)
		}
		yes := true
		j := r.judgeP
		for _, tc := range []struct {
			what string
			call func() error
		}{
			{"invite", func() error {
				_, err := f.svc.Invite(ctx, clerk, r.sid, sessions.NewInvitation{Name: "Late", Role: access.Witness})
				return err
			}},
			{"revoke an invitation", func() error { return f.svc.RevokeInvitation(ctx, j, r.sid, r.witness) }},
			{"remove", func() error { return f.svc.Remove(ctx, j, r.sid, r.obs) }},
			{"admit", func() error { _, err := f.svc.Admit(ctx, j, r.sid, r.witness); return err }},
			{"move", func() error { _, err := f.svc.Move(ctx, j, r.sid, r.obs, sessions.SpaceWaiting); return err }},
			{"mute", func() error {
				_, err := f.svc.Mute(ctx, j, r.sid, r.obs2, sessions.MuteRequest{Audio: &yes})
				return err
			}},
			{"link an interpreter", func() error {
				_, err := f.svc.LinkInterpreter(ctx, j, r.sid, r.interp, sessions.InterpreterRequest{For: &r.party})
				return err
			}},
			{"open a consultation", func() error {
				_, err := f.svc.OpenConsultation(ctx, j, r.sid, []uuid.UUID{r.obs})
				return err
			}},
			{"close a consultation", func() error { return f.svc.CloseConsultation(ctx, j, r.sid, cons.ID) }},
			{"issue a public link", func() error { _, err := f.svc.CreatePublicLink(ctx, j, r.sid); return err }},
			{"rotate the public link", func() error { _, err := f.svc.RotatePublicLink(ctx, j, r.sid); return err }},
			{"revoke the public links", func() error { _, err := f.svc.RevokePublicLinks(ctx, j, r.sid); return err }},
			{"join by the public link", func() error { _, err := f.svc.JoinPublic(ctx, link.Token, "Latecomer"); return err }},
			{"chat", func() error {
				_, err := f.svc.RoomMessage(ctx, r.sid, r.judge, sessions.MessageChat, mustMarshal(t, map[string]string{"text": "hello?"}))
				return err
			}},
			{"present", func() error {
				_, err := f.svc.RoomMessage(ctx, r.sid, r.judge, sessions.MessagePresent, mustMarshal(t, map[string]any{"document_id": uuid.New(), "page": 1}))
				return err
			}},
			{"connect", func() error { _, err := f.svc.Connected(ctx, r.sid, r.interp); return err }},
			{"close again", func() error { _, err := f.svc.Close(ctx, j, r.sid); return err }},
		} {
			if err := tc.call(); !errors.Is(err, fault.Conflict) {
				t.Errorf("%s after close: %v, want a conflict", tc.what, err)
			}
		}
		// Connections the close ended leave no trace after it: the close
		// names them.
		f.svc.Disconnected(ctx, r.sid, r.judge)
		entries, err := f.journal.Session(ctx, r.sid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := entries[len(entries)-1]
		if last.Action != "session.closed" {
			t.Fatalf("journalled after the close: %s %s", last.Action, last.Details)
		}
		if !strings.Contains(string(last.Details), r.judge.String()) {
			t.Errorf("session.closed does not name whom it disconnected: %s", last.Details)
		}
	})
}
