package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/sessions"
)

var discard = slog.New(slog.DiscardHandler)

// recorder is a Notifier that remembers what the session layer pushed.
type recorder struct {
	mu           sync.Mutex
	events       []string
	to           [][]uuid.UUID // the recipients of each event (nil: everyone)
	disconnected []uuid.UUID
	credentials  []string // DisconnectCredential refs
}

func (r *recorder) DisconnectCredential(ref, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.credentials = append(r.credentials, ref)
}

func (r *recorder) wasDisconnected(pid uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.disconnected, pid)
}

func (r *recorder) credentialClosed(ref string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.credentials, ref)
}

func (r *recorder) Notify(_ uuid.UUID, to []uuid.UUID, typ string, _ json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, typ)
	r.to = append(r.to, to)
}

// sentTo lists the recipients of every event of type typ.
func (r *recorder) sentTo(typ string) [][]uuid.UUID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]uuid.UUID
	for i, e := range r.events {
		if e == typ {
			out = append(out, r.to[i])
		}
	}
	return out
}

func (r *recorder) Disconnect(_, pid uuid.UUID, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disconnected = append(r.disconnected, pid)
}

type fixture struct {
	svc     *sessions.Service
	journal *journal.Journal
	db      *database.DB
	notes   *recorder
}

func newFixture(t testing.TB, db *database.DB) *fixture { return newFixtureB(t, db) }

func newFixtureB(t testing.TB, db *database.DB) *fixture {
	j := journal.New(journal.Config{DB: db})
	svc := sessions.New(sessions.Config{DB: db, Journal: j, Logger: discard, PublicURL: "https://chamber.example"})
	n := &recorder{}
	svc.SetNotifier(n)
	return &fixture{svc: svc, journal: j, db: db, notes: n}
}

// hearing creates a hearing as by and returns its ID.
func (f *fixture) hearing(t testing.TB, by sessions.Principal) uuid.UUID {
	t.Helper()
	sess, err := f.svc.Create(context.Background(), by, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask"})
	if err != nil {
		t.Fatal(err)
	}
	return sess.ID
}

// staff provisions a staff member and returns them authenticated by an API
// token carrying every scope their role may hold.
func (f *fixture) staff(t testing.TB, role access.Role) sessions.Principal {
	t.Helper()
	p, _ := f.staffToken(t, role)
	return p
}

// staffToken is staff, also returning the API token.
func (f *fixture) staffToken(t testing.TB, role access.Role) (sessions.Principal, string) {
	return f.staffTokenB(t, role)
}

func (f *fixture) staffTokenB(t testing.TB, role access.Role) (sessions.Principal, string) {
	t.Helper()
	ctx := context.Background()
	st, err := f.svc.AddStaff(ctx, "system", sessions.NewStaff{Name: "Staff " + string(role) + " " + uuid.NewString()[:4], Role: role})
	if err != nil {
		t.Fatal(err)
	}
	scopes := []string{sessions.ScopeSessionsWrite, sessions.ScopeRegisterWrite}
	if role == access.Admin {
		scopes = append(scopes, sessions.ScopeStaffAdmin)
	}
	tok, err := f.svc.AddAPIToken(ctx, "system", st.ID, sessions.NewAPIToken{Name: "test", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Authenticate(ctx, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	return p, tok.Token
}

// official provisions a staff member of an official role, has by assign
// them to the session, and returns them with their participant.
func (f *fixture) official(t testing.TB, by sessions.Principal, sid uuid.UUID, role access.Role) (sessions.Principal, sessions.Participant) {
	t.Helper()
	p := f.staff(t, role)
	part, err := f.svc.Assign(context.Background(), by, sid, p.Staff.ID)
	if err != nil {
		t.Fatalf("assign %s: %v", role, err)
	}
	return p, part
}

// seated is an official of the given name assigned to the session by by,
// as their signalling connection knows them: their participant record.
func (f *fixture) seated(t testing.TB, by sessions.Principal, sid uuid.UUID, name string, role access.Role) sessions.Principal {
	t.Helper()
	ctx := context.Background()
	st, err := f.svc.AddStaff(ctx, "system", sessions.NewStaff{Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	part, err := f.svc.Assign(ctx, by, sid, st.ID)
	if err != nil {
		t.Fatalf("assign %s: %v", role, err)
	}
	return sessions.Principal{Participant: &part}
}

func (f *fixture) invite(t testing.TB, by sessions.Principal, sid uuid.UUID, name string, role access.Role) (sessions.Principal, sessions.Invitation) {
	t.Helper()
	inv, err := f.svc.Invite(context.Background(), by, sid, sessions.NewInvitation{Name: name, Role: role})
	if err != nil {
		t.Fatalf("invite %s: %v", role, err)
	}
	p, err := f.svc.Authenticate(context.Background(), inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	return p, inv
}

func TestHearingFlow(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerkStaff := f.staff(t, access.Clerk)
		when := time.Now().Add(24 * time.Hour).UTC()
		sess, err := f.svc.Create(ctx, clerkStaff, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask", CaseNumber: "2-26-1234", ScheduledAt: &when, Public: true})
		if err != nil {
			t.Fatal(err)
		}
		if sess.State != sessions.Scheduled {
			t.Fatalf("state = %s", sess.State)
		}
		judge, judgePart := f.official(t, clerkStaff, sess.ID, access.Judge)
		party, partyInv := f.invite(t, clerkStaff, sess.ID, "Mari Tamm", access.Party)
		counsel, _ := f.invite(t, judge, sess.ID, "Counsel Kask", access.Counsel)
		witness, _ := f.invite(t, judge, sess.ID, "Witness", access.Witness)
		if want := "https://chamber.example/join/" + partyInv.Token; partyInv.JoinURL != want {
			t.Fatalf("join url %s", partyInv.JoinURL)
		}
		if !partyInv.ExpiresAt.After(when.Add(6 * 24 * time.Hour)) {
			t.Fatalf("invitation expires %v, want 7 days after the scheduled time", partyInv.ExpiresAt)
		}
		pid := func(p sessions.Principal) uuid.UUID {
			if p.Staff != nil && p.Staff.ID == *judgePart.StaffID {
				return judgePart.ID
			}
			return p.Participant.ID
		}

		// The judge's first join opens the session; the party waits.
		if _, err := f.svc.Connected(ctx, sess.ID, pid(judge)); err != nil {
			t.Fatal(err)
		}
		if s, _ := f.svc.Get(ctx, sess.ID); s.State != sessions.Open {
			t.Fatalf("state after presiding join = %s", s.State)
		}
		if _, err := f.svc.Connected(ctx, sess.ID, pid(party)); err != nil {
			t.Fatal(err)
		}
		if f.svc.MayForward(sess.ID, pid(judge), pid(party), sessions.SourceCamera) ||
			f.svc.MayForward(sess.ID, pid(party), pid(judge), sessions.SourceMicrophone) {
			t.Fatal("media crosses the waiting room")
		}
		if _, err := f.svc.Admit(ctx, judge, sess.ID, pid(party)); err != nil {
			t.Fatal(err)
		}
		if !f.svc.MayForward(sess.ID, pid(judge), pid(party), sessions.SourceCamera) ||
			!f.svc.MayForward(sess.ID, pid(party), pid(judge), sessions.SourceMicrophone) {
			t.Fatal("admitted party and judge do not see each other")
		}
		// Witness sequestration: still waiting, hears nothing.
		if f.svc.MayForward(sess.ID, pid(witness), pid(judge), sessions.SourceMicrophone) {
			t.Fatal("sequestered witness hears the main room")
		}

		// Consultation: counsel and party talk privately.
		if _, err := f.svc.Admit(ctx, judge, sess.ID, pid(counsel)); err != nil {
			t.Fatal(err)
		}
		c, err := f.svc.OpenConsultation(ctx, judge, sess.ID, []uuid.UUID{pid(counsel), pid(party)})
		if err != nil {
			t.Fatal(err)
		}
		if !f.svc.MayForward(sess.ID, pid(party), pid(counsel), sessions.SourceMicrophone) ||
			f.svc.MayForward(sess.ID, pid(judge), pid(counsel), sessions.SourceMicrophone) {
			t.Fatal("consultation room leaks or is deaf")
		}
		if f.svc.MayRecord(sess.ID, pid(counsel), sessions.SourceMicrophone) {
			t.Fatal("a consultation room would be recorded")
		}
		if err := f.svc.CloseConsultation(ctx, judge, sess.ID, c.ID); err != nil {
			t.Fatal(err)
		}
		if p, _ := f.svc.Participant(ctx, judge, sess.ID, pid(party)); p.Space != sessions.SpaceMain {
			t.Fatalf("after consultation party is in %q", p.Space)
		}

		// Server-enforced mute.
		yes := true
		if _, err := f.svc.Mute(ctx, judge, sess.ID, pid(party), sessions.MuteRequest{Audio: &yes}); err != nil {
			t.Fatal(err)
		}
		if f.svc.MayForward(sess.ID, pid(judge), pid(party), sessions.SourceMicrophone) {
			t.Fatal("muted audio still forwarded")
		}
		if !f.svc.MayForward(sess.ID, pid(judge), pid(party), sessions.SourceCamera) {
			t.Fatal("audio mute stopped video")
		}

		// Parties may not moderate.
		_, err = f.svc.Admit(ctx, party, sess.ID, pid(witness))
		var forbidden *access.ForbiddenError
		if !errors.As(err, &forbidden) || forbidden.Action != access.Admit {
			t.Fatalf("party admitting = %v, want forbidden admit", err)
		}

		// Remove: disconnected, token dead.
		if err := f.svc.Remove(ctx, judge, sess.ID, pid(party)); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(f.notes.disconnected, pid(party)) {
			t.Fatal("removed party was not disconnected")
		}
		if _, err := f.svc.Authenticate(ctx, partyInv.Token); !errors.Is(err, fault.Revoked) {
			t.Fatalf("removed party's token: %v", err)
		}

		if _, err := f.svc.Close(ctx, judge, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Close(ctx, judge, sess.ID); !errors.Is(err, fault.Conflict) {
			t.Fatalf("closing twice: %v", err)
		}
		if _, err := f.svc.Invite(ctx, clerkStaff, sess.ID, sessions.NewInvitation{Name: "Late", Role: access.Witness}); !errors.Is(err, fault.Conflict) {
			t.Fatalf("inviting into a closed session: %v", err)
		}

		entries, err := f.journal.Session(ctx, sess.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		for _, want := range []string{"session.created", "staff.assigned", "invitation.issued", "participant.joined", "session.opened",
			"participant.admitted", "consultation.opened", "consultation.closed", "participant.muted", "participant.removed", "session.closed"} {
			if !slices.Contains(actions, want) {
				t.Errorf("journal lacks %s: %v", want, actions)
			}
		}
		if _, err := f.journal.Verify(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadInput(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk := f.staff(t, access.Clerk)
		notary := f.staff(t, access.Notary)
		hearing, err := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
		if err != nil {
			t.Fatal(err)
		}
		act, err := f.svc.Create(ctx, notary, sessions.NewSession{Kind: access.Notarisation, Title: "Will", ActType: "will"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			err   error
			field string
		}{
			{"unknown kind", create(f, clerk, sessions.NewSession{Kind: "trial", Title: "x"}), "kind"},
			{"missing title", create(f, clerk, sessions.NewSession{Kind: access.Hearing}), "title"},
			{"act without type", create(f, notary, sessions.NewSession{Kind: access.Notarisation, Title: "x"}), "act_type"},
			{"bad act type", create(f, notary, sessions.NewSession{Kind: access.Notarisation, Title: "x", ActType: "marriage"}), "act_type"},
			{"public act", create(f, notary, sessions.NewSession{Kind: access.Notarisation, Title: "x", ActType: "will", Public: true}), "public"},
			{"unknown role", invite(f, clerk, hearing.ID, "X", "bailiff"), "role"},
			{"role of the other kind", invite(f, clerk, hearing.ID, "X", access.Notary), "role"},
			{"principal in a hearing", invite(f, clerk, hearing.ID, "X", access.Principal), "role"},
			{"judge in an act", invite(f, notary, act.ID, "X", access.Judge), "role"},
			{"missing name", invite(f, clerk, hearing.ID, " ", access.Party), "name"},
		}
		for _, tt := range tests {
			var inv *fault.Error
			if !errors.As(tt.err, &inv) || inv.Kind != fault.Invalid || inv.Fields[tt.field] == "" {
				t.Errorf("%s: err = %v, want invalid %s", tt.name, tt.err, tt.field)
			}
		}
		// A notary may not create hearings.
		if err := create(f, notary, sessions.NewSession{Kind: access.Hearing, Title: "x"}); !errors.Is(err, fault.Forbidden) {
			t.Errorf("notary creating a hearing: %v", err)
		}
		// Another staff member's session is not found, not forbidden.
		if err := invite(f, notary, hearing.ID, "X", access.Party); !errors.Is(err, fault.NotFound) {
			t.Errorf("notary inviting into the clerk's hearing: %v", err)
		}
		// A judge assigned to one session cannot act in another.
		judge, _ := f.official(t, clerk, hearing.ID, access.Judge)
		other, err := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Other"})
		if err != nil {
			t.Fatal(err)
		}
		oParty, _ := f.invite(t, clerk, other.ID, "P", access.Party)
		if _, err := f.svc.Admit(ctx, judge, other.ID, oParty.Participant.ID); !errors.Is(err, fault.NotFound) {
			t.Errorf("admitting someone of another session: %v", err)
		}
		if _, err := f.svc.Admit(ctx, judge, hearing.ID, oParty.Participant.ID); !errors.Is(err, fault.NotFound) {
			t.Errorf("admitting another session's participant into mine: %v", err)
		}
		// Tokens: garbage, expired, revoked.
		for _, tok := range []string{"", "chi_short", "chs_" + strings.Repeat("A", 43), "cha_" + "A" + string(make([]byte, 42)),
			"cha_" + strings.Repeat("A", 43), "cht_" + strings.Repeat("A", 43), "chb_" + strings.Repeat("A", 43), "Bearer x"} {
			if _, err := f.svc.Authenticate(ctx, tok); !errors.Is(err, fault.Unauthenticated) {
				t.Errorf("token %q: %v", tok, err)
			}
		}
		past := time.Now().Add(time.Hour)
		inv, err := f.svc.Invite(ctx, clerk, hearing.ID, sessions.NewInvitation{Name: "Soon", Role: access.Witness, ExpiresAt: &past})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE participants SET expires_at = $1 WHERE id = $2`, database.Micros(time.Now().Add(-time.Minute)), inv.ParticipantID.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Authenticate(ctx, inv.Token); !errors.Is(err, fault.Expired) {
			t.Errorf("expired token: %v", err)
		}
		inv2, _ := f.svc.Invite(ctx, clerk, hearing.ID, sessions.NewInvitation{Name: "Gone", Role: access.Witness})
		if err := f.svc.RevokeInvitation(ctx, clerk, hearing.ID, inv2.ParticipantID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Authenticate(ctx, inv2.Token); !errors.Is(err, fault.Revoked) {
			t.Errorf("revoked token: %v", err)
		}
		if _, err := f.svc.JoinToken(ctx, other.ID, inv.Token); err == nil {
			t.Error("a token joined another session")
		}
	})
}

func create(f *fixture, p sessions.Principal, n sessions.NewSession) error {
	_, err := f.svc.Create(context.Background(), p, n)
	return err
}

func invite(f *fixture, p sessions.Principal, sid uuid.UUID, name string, role access.Role) error {
	_, err := f.svc.Invite(context.Background(), p, sid, sessions.NewInvitation{Name: name, Role: role})
	return err
}

func TestInterpreterWhisper(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk := f.staff(t, access.Clerk)
		sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
		judge, judgePart := f.official(t, clerk, sess.ID, access.Judge)
		party, _ := f.invite(t, clerk, sess.ID, "P", access.Party)
		interp, _ := f.invite(t, clerk, sess.ID, "I", access.Interpreter)
		for _, p := range []sessions.Principal{party, interp} {
			if _, err := f.svc.Admit(ctx, judge, sess.ID, p.Participant.ID); err != nil {
				t.Fatal(err)
			}
		}
		forID := party.Participant.ID
		if _, err := f.svc.LinkInterpreter(ctx, judge, sess.ID, interp.Participant.ID, sessions.InterpreterRequest{For: &forID, Whisper: true}); err != nil {
			t.Fatal(err)
		}
		i, j, p := interp.Participant.ID, judgePart.ID, party.Participant.ID
		if !f.svc.MayForward(sess.ID, p, i, sessions.SourceMicrophone) {
			t.Error("party does not hear the whispering interpreter")
		}
		if f.svc.MayForward(sess.ID, j, i, sessions.SourceMicrophone) {
			t.Error("judge hears the whisper")
		}
		if !f.svc.MayForward(sess.ID, j, i, sessions.SourceCamera) {
			t.Error("interpreter is not visible to the court")
		}
		if _, err := f.svc.LinkInterpreter(ctx, judge, sess.ID, p, sessions.InterpreterRequest{For: &i}); !errors.Is(err, fault.Invalid) {
			t.Errorf("linking a party as interpreter: %v", err)
		}
	})
}

func TestPublicLink(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk := f.staff(t, access.Clerk)
		private, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Closed"})
		if _, err := f.svc.CreatePublicLink(ctx, clerk, private.ID); !errors.Is(err, fault.Conflict) {
			t.Fatalf("public link for a closed hearing: %v", err)
		}
		pub, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Open", Public: true})
		link, err := f.svc.CreatePublicLink(ctx, clerk, pub.ID)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := f.svc.JoinPublic(ctx, link.Token, "Reporter")
		if err != nil {
			t.Fatal(err)
		}
		if inv.Role != access.Observer {
			t.Fatalf("public joiner role = %s", inv.Role)
		}
		obs, err := f.svc.Authenticate(ctx, inv.Token)
		if err != nil {
			t.Fatal(err)
		}
		if f.svc.MayPublish(pub.ID, obs.Participant.ID, sessions.SourceCamera) {
			t.Fatal("an observer may publish")
		}
		if _, err := f.svc.JoinPublic(ctx, "chp_nope", "x"); !errors.Is(err, fault.Unauthenticated) {
			t.Fatalf("bad public link: %v", err)
		}
	})
}
