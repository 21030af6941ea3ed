package sessions_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// room is a hearing with a judge, a party and counsel connected and in the
// main room, and a witness connected in the waiting room.
type room struct {
	f                              *fixture
	sess                           sessions.Session
	judge, party, counsel, witness sessions.Principal
}

func newRoom(t *testing.T, db *database.DB) room {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, db)
	clerk := f.staff(t, access.Clerk)
	sess, err := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask"})
	if err != nil {
		t.Fatal(err)
	}
	r := room{f: f, sess: sess}
	r.judge = f.seated(t, clerk, sess.ID, "Judge Saar", access.Judge)
	r.party, _ = f.invite(t, clerk, sess.ID, "Mari Tamm", access.Party)
	r.counsel, _ = f.invite(t, clerk, sess.ID, "Counsel Kask", access.Counsel)
	r.witness, _ = f.invite(t, clerk, sess.ID, "Witness Mets", access.Witness)
	for _, p := range []sessions.Principal{r.judge, r.party, r.counsel, r.witness} {
		if _, err := f.svc.Connected(ctx, sess.ID, p.Participant.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []sessions.Principal{r.party, r.counsel} {
		if _, err := f.svc.Admit(ctx, r.judge, sess.ID, p.Participant.ID); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func id(p sessions.Principal) uuid.UUID { return p.Participant.ID }

// TestConsultationKeepsNoMute: a party muted by the judge in the main room
// is heard by counsel in a consultation room, and is muted again on return.
func TestConsultationKeepsNoMute(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := newRoom(t, db)
		svc, sid := r.f.svc, r.sess.ID
		yes := true
		if _, err := svc.Mute(ctx, r.judge, sid, id(r.party), sessions.MuteRequest{Audio: &yes, Video: &yes}); err != nil {
			t.Fatal(err)
		}
		forwards := func(sub sessions.Principal, source string) bool {
			return svc.MayForward(sid, id(sub), id(r.party), source)
		}
		for _, src := range []string{sessions.SourceMicrophone, sessions.SourceCamera} {
			if forwards(r.judge, src) || forwards(r.counsel, src) {
				t.Fatalf("the muted party's %s reaches the main room", src)
			}
		}
		c, err := svc.OpenConsultation(ctx, r.judge, sid, []uuid.UUID{id(r.party), id(r.counsel)})
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{sessions.SourceMicrophone, sessions.SourceCamera} {
			if !forwards(r.counsel, src) {
				t.Fatalf("counsel does not get the party's %s in the consultation room", src)
			}
			if forwards(r.judge, src) {
				t.Fatalf("the party's %s leaves the consultation room", src)
			}
		}
		if svc.MayRecord(sid, id(r.party), sessions.SourceMicrophone) {
			t.Fatal("a consultation room is recorded")
		}
		if err := svc.CloseConsultation(ctx, r.judge, sid, c.ID); err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{sessions.SourceMicrophone, sessions.SourceCamera} {
			if forwards(r.judge, src) || forwards(r.counsel, src) {
				t.Fatalf("back in the main room, the party's %s is no longer muted", src)
			}
		}
		p, err := svc.Participant(ctx, r.judge, sid, id(r.party))
		if err != nil {
			t.Fatal(err)
		}
		if !p.AudioMuted || !p.VideoMuted {
			t.Fatalf("the mute was forgotten: %+v", p)
		}
	})
}

// TestPresentedTo: presenting a document lets the main room see it while it
// is shown, nobody in the waiting room or a consultation, and nobody after.
func TestPresentedTo(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := newRoom(t, db)
		svc, sid := r.f.svc, r.sess.ID
		doc, other := uuid.New(), uuid.New()
		present := func(doc *uuid.UUID) {
			t.Helper()
			payload, _ := json.Marshal(map[string]any{"document_id": doc, "page": 3})
			if _, err := svc.RoomMessage(ctx, sid, id(r.judge), "present", payload); err != nil {
				t.Fatal(err)
			}
		}
		if svc.PresentedTo(sid, id(r.party), doc) {
			t.Fatal("a document nobody presented is visible")
		}
		present(&doc)
		if !svc.PresentedTo(sid, id(r.party), doc) || !svc.PresentedTo(sid, id(r.counsel), doc) {
			t.Fatal("the main room does not see the presented document")
		}
		if svc.PresentedTo(sid, id(r.party), other) {
			t.Fatal("presenting one document shows another")
		}
		if svc.PresentedTo(sid, id(r.witness), doc) {
			t.Fatal("the waiting room sees the presented document")
		}
		if svc.PresentedTo(uuid.New(), id(r.party), doc) {
			t.Fatal("another session's presentation counts")
		}
		// A late joiner's welcome carries the page; the waiting room's does not.
		w, err := svc.Connected(ctx, sid, id(r.counsel))
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Presenting) == 0 {
			t.Fatal("a joiner in the main room is not told what is presented")
		}
		if w, err := svc.Connected(ctx, sid, id(r.witness)); err != nil || len(w.Presenting) != 0 {
			t.Fatalf("the waiting room is told what is presented: %s, %v", w.Presenting, err)
		}
		c, err := svc.OpenConsultation(ctx, r.judge, sid, []uuid.UUID{id(r.party)})
		if err != nil {
			t.Fatal(err)
		}
		if svc.PresentedTo(sid, id(r.party), doc) {
			t.Fatal("a consultation room sees the main room's document")
		}
		if err := svc.CloseConsultation(ctx, r.judge, sid, c.ID); err != nil {
			t.Fatal(err)
		}
		// Admitted later, the witness is shown the page at once; so is
		// the party back from the consultation room.
		if _, err := svc.Admit(ctx, r.judge, sid, id(r.witness)); err != nil {
			t.Fatal(err)
		}
		var caughtUp []uuid.UUID
		for _, to := range r.f.notes.sentTo("present") {
			caughtUp = append(caughtUp, to...)
		}
		if !slices.Contains(caughtUp, id(r.party)) || !slices.Contains(caughtUp, id(r.witness)) || len(caughtUp) != 2 {
			t.Fatalf("the present page went to %v, want the party and the witness", caughtUp)
		}
		if !svc.PresentedTo(sid, id(r.witness), doc) {
			t.Fatal("the admitted witness does not see the presented document")
		}
		present(nil)
		if svc.PresentedTo(sid, id(r.party), doc) {
			t.Fatal("the document stays visible after the presentation ended")
		}
	})
}

// TestStatus: a raised hand goes to the sender's space, is journalled and
// is told to later joiners; observers and the waiting room cannot send one.
func TestStatus(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := newRoom(t, db)
		svc, sid := r.f.svc, r.sess.ID
		out, err := svc.RoomMessage(ctx, sid, id(r.party), "status", json.RawMessage(`{"hand": true, "mic_off": true}`))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			ParticipantID uuid.UUID `json:"participant_id"`
			Hand, MicOff  bool
			Space         string `json:"space"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.ParticipantID != id(r.party) || !got.Hand {
			t.Fatalf("status message %s: %v", out, err)
		}
		// The audience filter delivers it within this space (the main
		// room), never to the waiting witness.
		if got.Space != sessions.SpaceMain {
			t.Fatalf("status names space %q, want the main room", got.Space)
		}
		w, err := svc.Connected(ctx, sid, id(r.counsel))
		if err != nil {
			t.Fatal(err)
		}
		if st := w.Statuses[id(r.party)]; !st.Hand || !st.MicOff {
			t.Fatalf("a later joiner is not told of the raised hand: %+v", w.Statuses)
		}
		if _, err := svc.RoomMessage(ctx, sid, id(r.witness), "status", json.RawMessage(`{"hand": true}`)); err == nil {
			t.Fatal("the waiting room raised a hand")
		}
		if _, err := svc.RoomMessage(ctx, sid, id(r.party), "status", json.RawMessage(`{"hand": "yes"}`)); err == nil {
			t.Fatal("a malformed status was accepted")
		}
		if _, err := svc.RoomMessage(ctx, sid, id(r.party), "status", json.RawMessage(`{"hand": false, "mic_off": true}`)); err != nil {
			t.Fatal(err)
		}
		entries, err := r.f.journal.Session(ctx, sid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var hands []string
		for _, e := range entries {
			if e.Action == "participant.hand_raised" || e.Action == "participant.hand_lowered" {
				hands = append(hands, e.Action)
			}
		}
		if !slices.Equal(hands, []string{"participant.hand_raised", "participant.hand_lowered"}) {
			t.Fatalf("journal has hands %v", hands)
		}
	})
}

// TestWaitingRoomPublishesNothing: a participant in the waiting room may
// not publish (the offer is refused, not taken in and dropped); admitted,
// they may; sent back to wait, their tracks are not forwarded and no new
// offer is taken.
func TestWaitingRoomPublishesNothing(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		r := newRoom(t, db)
		svc, sid := r.f.svc, r.sess.ID
		if svc.MayPublish(sid, id(r.witness), sessions.SourceCamera) {
			t.Fatal("a waiting witness may publish")
		}
		if !svc.MayPublish(sid, id(r.party), sessions.SourceCamera) {
			t.Fatal("an admitted party may not publish")
		}
		if _, err := svc.Move(ctx, r.judge, sid, id(r.party), sessions.SpaceWaiting); err != nil {
			t.Fatal(err)
		}
		if svc.MayPublish(sid, id(r.party), sessions.SourceMicrophone) || svc.MayForward(sid, id(r.judge), id(r.party), sessions.SourceMicrophone) {
			t.Fatal("a party sent back to wait still publishes")
		}
		if _, err := svc.Admit(ctx, r.judge, sid, id(r.party)); err != nil {
			t.Fatal(err)
		}
		if !svc.MayPublish(sid, id(r.party), sessions.SourceMicrophone) {
			t.Fatal("a party admitted again may not publish")
		}
	})
}
