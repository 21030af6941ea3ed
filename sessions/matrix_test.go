package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// TestSignallingMatrix checks, role by role, the actions that exist only on
// the signalling connection: publish, chat and present.
func TestSignallingMatrix(t *testing.T) {
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	ctx := context.Background()
	clerk, notary := f.staff(t, access.Clerk), f.staff(t, access.Notary)
	for _, role := range access.MatrixRoles {
		if role == access.Admin {
			continue // admins are never participants
		}
		t.Run(string(role), func(t *testing.T) {
			creator, body := clerk, sessions.NewSession{Kind: access.Hearing, Title: "M"}
			if !role.InKind(access.Hearing) {
				creator, body = notary, sessions.NewSession{Kind: access.Notarisation, Title: "M", ActType: "will"}
			}
			sess, err := f.svc.Create(ctx, creator, body)
			if err != nil {
				t.Fatal(err)
			}
			var id uuid.UUID
			if role == creator.Staff.Role {
				e, err := f.svc.Enter(ctx, creator, sess.ID)
				if err != nil {
					t.Fatal(err)
				}
				id = e.Participant.ID
			} else if role.IsOfficial() {
				_, part := f.official(t, creator, sess.ID, role)
				id = part.ID
			} else {
				p, _ := f.invite(t, creator, sess.ID, "Caller", role)
				id = p.Participant.ID
			}
			if _, err := f.svc.Connected(ctx, sess.ID, id); err != nil {
				t.Fatal(err)
			}
			if !role.EntersDirectly() {
				if _, err := f.svc.Move(ctx, creator, sess.ID, id, sessions.SpaceMain); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := f.svc.MayPublish(sess.ID, id, sessions.SourceCamera), access.Allowed(role, access.Publish); got != want {
				t.Errorf("publish = %v, want %v", got, want)
			}
			for _, tc := range []struct {
				typ     string
				action  access.Action
				payload any
			}{
				{"chat", access.Chat, map[string]string{"text": "hello"}},
				{"present", access.Present, map[string]any{"document_id": uuid.New(), "page": 2}},
			} {
				raw, _ := json.Marshal(tc.payload)
				_, err := f.svc.RoomMessage(ctx, sess.ID, id, tc.typ, raw)
				var forbidden *access.ForbiddenError
				switch allowed := access.Allowed(role, tc.action); {
				case allowed && err != nil:
					t.Errorf("%s: %v", tc.typ, err)
				case !allowed && (!errors.As(err, &forbidden) || forbidden.Action != tc.action):
					t.Errorf("%s: err = %v, want forbidden %s", tc.typ, err, tc.action)
				}
			}
		})
	}
}

// TestLateJoinerSeesPresentation: the page being presented is part of the
// welcome, and stopping the presentation clears it.
func TestLateJoinerSeesPresentation(t *testing.T) {
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	ctx := context.Background()
	clerk := f.staff(t, access.Clerk)
	sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "P"})
	_, judge := f.official(t, clerk, sess.ID, access.Judge)
	_, late := f.official(t, clerk, sess.ID, access.Clerk)
	if _, err := f.svc.Connected(ctx, sess.ID, judge.ID); err != nil {
		t.Fatal(err)
	}
	doc := uuid.New()
	if _, err := f.svc.RoomMessage(ctx, sess.ID, judge.ID, "present", json.RawMessage(`{"document_id":"`+doc.String()+`","page":3}`)); err != nil {
		t.Fatal(err)
	}
	w, err := f.svc.Connected(ctx, sess.ID, late.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		DocumentID uuid.UUID `json:"document_id"`
		Page       int       `json:"page"`
	}
	if err := json.Unmarshal(w.Presenting, &p); err != nil || p.DocumentID != doc || p.Page != 3 {
		t.Fatalf("welcome presenting = %s (%v)", w.Presenting, err)
	}
	if _, err := f.svc.RoomMessage(ctx, sess.ID, judge.ID, "present", json.RawMessage(`{"document_id":null}`)); err != nil {
		t.Fatal(err)
	}
	f.svc.Disconnected(ctx, sess.ID, late.ID)
	if w, _ = f.svc.Connected(ctx, sess.ID, late.ID); w.Presenting != nil {
		t.Fatalf("presentation not cleared: %s", w.Presenting)
	}
}
