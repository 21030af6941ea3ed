package sessions_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// gallery is a hearing in progress: the judge and the party on stage, a
// witness waiting, two observers watching, an interpreter invited but
// never connected, and counsel in a consultation with nobody.
type gallery struct {
	sid                                               uuid.UUID
	judgeP                                            sessions.Principal
	judge, party, witness, obs, obs2, interp, counsel uuid.UUID
}

func newGallery(t testing.TB, f *fixture) gallery {
	t.Helper()
	ctx := context.Background()
	clerk := f.staff(t, access.Clerk)
	sess, err := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	r := gallery{sid: sess.ID}
	id := func(name string, role access.Role, connect, admit bool) uuid.UUID {
		var p sessions.Principal
		if role == access.Judge {
			p = f.seated(t, clerk, sess.ID, name, role)
		} else {
			p, _ = f.invite(t, clerk, sess.ID, name, role)
		}
		if connect {
			if _, err := f.svc.Connected(ctx, sess.ID, p.Participant.ID); err != nil {
				t.Fatal(err)
			}
		}
		if admit {
			if _, err := f.svc.Admit(ctx, clerk, sess.ID, p.Participant.ID); err != nil {
				t.Fatal(err)
			}
		}
		if role == access.Judge {
			r.judgeP = p
		}
		return p.Participant.ID
	}
	r.judge = id("Judge Saar", access.Judge, true, false)
	r.party = id("Mari Tamm", access.Party, true, true)
	r.witness = id("Witness Oja", access.Witness, true, false)
	r.obs = id("Viewer One", access.Observer, true, true)
	r.obs2 = id("Viewer Two", access.Observer, true, true)
	r.interp = id("Interpreter Ilves", access.Interpreter, false, true)
	r.counsel = id("Counsel Kuusk", access.Counsel, true, true)
	if _, err := f.svc.OpenConsultation(ctx, clerk, sess.ID, []uuid.UUID{r.counsel}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSight is the visibility rule, case by case: who may know whom.
func TestSight(t *testing.T) {
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	r := newGallery(t, f)
	U, S, Y := sessions.Unseen, sessions.OnStage, sessions.Seen
	for _, tc := range []struct {
		what              string
		receiver, subject uuid.UUID
		want              sessions.Sight
	}{
		{"an observer, the judge on stage", r.obs, r.judge, S},
		{"an observer, the admitted party on stage", r.obs, r.party, S},
		{"an observer, the waiting witness", r.obs, r.witness, U},
		{"an observer, another observer", r.obs, r.obs2, U},
		{"an observer, an interpreter not connected", r.obs, r.interp, U},
		{"an observer, counsel in consultation", r.obs, r.counsel, U},
		{"an observer, themselves", r.obs, r.obs, Y},
		{"the waiting witness, the judge", r.witness, r.judge, U},
		{"the waiting witness, the party", r.witness, r.party, U},
		{"the waiting witness, an observer", r.witness, r.obs, U},
		{"the waiting witness, themselves", r.witness, r.witness, Y},
		{"the party, the waiting witness", r.party, r.witness, Y},
		{"the party, an observer", r.party, r.obs, Y},
		{"counsel in consultation, the judge", r.counsel, r.judge, Y},
		{"the judge, everyone", r.judge, r.obs2, Y},
		{"someone unknown", uuid.New(), r.judge, U},
	} {
		if got := f.svc.Sees(r.sid, tc.receiver, tc.subject); got != tc.want {
			t.Errorf("%s: sight %d, want %d", tc.what, got, tc.want)
		}
	}
	for _, tc := range []struct {
		who  uuid.UUID
		want bool
	}{{r.judge, true}, {r.party, true}, {r.counsel, true}, {r.witness, false}, {r.obs, false}} {
		if got := f.svc.SeesRoster(r.sid, tc.who); got != tc.want {
			t.Errorf("roster for %s = %v, want %v", tc.who, got, tc.want)
		}
	}
	if !f.svc.Hears(r.sid, r.obs, r.judge) || f.svc.Hears(r.sid, r.judge, r.counsel) || f.svc.Hears(r.sid, r.witness, r.judge) {
		t.Error("active speaker: an observer must hear the judge; the judge not counsel in consultation; the waiting witness nobody")
	}

	// What an observer is told of a record: the stage view, or nothing.
	ctx := context.Background()
	judgeRec, err := f.svc.Participant(ctx, r.judgeP, r.sid, r.judge)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := f.svc.ParticipantFor(r.sid, r.obs, mustMarshal(t, judgeRec))
	var seen map[string]any
	json.Unmarshal(data, &seen)
	if !ok || len(seen) != 5 || seen["name"] != "Judge Saar" || seen["space"] != "main" || seen["connected"] != true {
		t.Errorf("an observer is told %s of the judge, want the stage view", data)
	}
	witnessRec, _ := f.svc.Participant(ctx, r.judgeP, r.sid, r.witness)
	if data, ok := f.svc.ParticipantFor(r.sid, r.obs, mustMarshal(t, witnessRec)); ok {
		t.Errorf("an observer is told %s of the waiting witness", data)
	}
	if data, ok := f.svc.ParticipantFor(r.sid, r.party, mustMarshal(t, witnessRec)); !ok || string(data) != string(mustMarshal(t, witnessRec)) {
		t.Errorf("the party is told %s of the witness, want the whole record", data)
	}

	// Leaving the stage: disconnected, or moved out of the main room.
	f.svc.Disconnected(ctx, r.sid, r.party)
	if got := f.svc.Sees(r.sid, r.obs, r.party); got != U {
		t.Errorf("an observer still sees the party after they left: %d", got)
	}
	if _, err := f.svc.Move(ctx, r.judgeP, r.sid, r.judge, sessions.SpaceWaiting); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.Sees(r.sid, r.obs, r.judge); got != U {
		t.Errorf("an observer still sees the judge in the waiting room: %d", got)
	}
	// A removed participant learns nothing more, of anyone.
	if err := f.svc.Remove(ctx, r.judgeP, r.sid, r.obs2); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.Sees(r.sid, r.obs2, r.obs2); got != U {
		t.Errorf("a removed observer still sees themselves: %d", got)
	}
}

// TestWaitingRoomListsNobody: through the API as on the signalling
// connection, a participant waiting in the waiting room sees themselves
// alone, and the whole list once admitted.
func TestWaitingRoomListsNobody(t *testing.T) {
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	r := newGallery(t, f)
	ctx := context.Background()
	wp, _ := f.invite(t, f.staff(t, access.Admin), r.sid, "Witness Two", access.Witness)
	list, err := f.svc.Participants(ctx, wp, r.sid)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != wp.Participant.ID {
		t.Fatalf("a waiting witness lists %d participants, want themselves alone", len(list))
	}
	w, err := f.svc.Connected(ctx, r.sid, wp.Participant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Participants) != 1 {
		t.Fatalf("a waiting witness is welcomed with %d participants, want themselves alone", len(w.Participants))
	}
	if _, err := f.svc.Admit(ctx, r.judgeP, r.sid, wp.Participant.ID); err != nil {
		t.Fatal(err)
	}
	if list, err = f.svc.Participants(ctx, wp, r.sid); err != nil || len(list) < 8 {
		t.Fatalf("an admitted witness lists %d participants (%v), want everyone", len(list), err)
	}
}

func mustMarshal(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsultationChatIsPrivileged: counsel's chat with their client in a
// consultation room goes to its members alone (the Audience's rule: the
// message names its space) and the journal — which the court reads and
// bundles export — records that a message was sent, never its text; the
// main room's chat is journalled in full.
func TestConsultationChatIsPrivileged(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		r := newGallery(t, f)
		ctx := context.Background()
		const secret, public = "Say nothing about the second contract.", "The court is in session."
		out, err := f.svc.RoomMessage(ctx, r.sid, r.counsel, sessions.MessageChat, mustMarshal(t, map[string]string{"text": secret}))
		if err != nil {
			t.Fatal(err)
		}
		var msg struct{ Space, Text string }
		json.Unmarshal(out, &msg)
		if msg.Space == sessions.SpaceMain || msg.Space == "" || msg.Text != secret {
			t.Fatalf("consultation chat %s: want its consultation's space", out)
		}
		if _, err := f.svc.RoomMessage(ctx, r.sid, r.judge, sessions.MessageChat, mustMarshal(t, map[string]string{"text": public})); err != nil {
			t.Fatal(err)
		}
		entries, err := f.journal.Session(ctx, r.sid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var sent, said bool
		for _, e := range entries {
			if strings.Contains(string(e.Details), secret) {
				t.Errorf("the journal holds the consultation's chat: %s %s", e.Action, e.Details)
			}
			if e.Action == "chat.consultation" && strings.Contains(string(e.Details), msg.Space) && strings.Contains(string(e.Details), r.counsel.String()) {
				sent = true
			}
			said = said || (e.Action == "chat.message" && strings.Contains(string(e.Details), public))
		}
		if !sent || !said {
			t.Errorf("journal: consultation message recorded %v, main room's chat in full %v", sent, said)
		}
	})
}

// BenchmarkParticipantFor is the filter's cost for one receiver of a
// participant_updated: an observer, who is sent the stage view (decode,
// rule, encode), and the judge, who is sent the record as it is.
func BenchmarkParticipantFor(b *testing.B) {
	f := newFixture(b, databasetest.Open(b, database.SQLite))
	r := newGallery(b, f)
	rec, err := f.svc.Participant(context.Background(), r.judgeP, r.sid, r.party)
	if err != nil {
		b.Fatal(err)
	}
	data := mustMarshal(b, rec)
	for _, bc := range []struct {
		name     string
		receiver uuid.UUID
	}{{"observer", r.obs}, {"judge", r.judge}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := f.svc.ParticipantFor(r.sid, bc.receiver, data); !ok {
					b.Fatal("not delivered")
				}
			}
		})
	}
}
