package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
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

// TestOfficialsAreNeverInvited: no role can obtain an invitation for an
// official role, or for a role the invite table does not give it; the
// refusal names the action.
func TestOfficialsAreNeverInvited(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk, notary, admin := f.staff(t, access.Clerk), f.staff(t, access.Notary), f.staff(t, access.Admin)
		hearing, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
		act, _ := f.svc.Create(ctx, notary, sessions.NewSession{Kind: access.Notarisation, Title: "A", ActType: "will"})
		judge, judgePart := f.official(t, clerk, hearing.ID, access.Judge)
		// Signalling offers no way to invite: the room messages are chat
		// and present.
		if _, err := f.svc.RoomMessage(ctx, hearing.ID, judgePart.ID, "invite", json.RawMessage(`{"name":"X","role":"judge"}`)); !errors.Is(err, fault.BadRequest) {
			t.Errorf("an invite over signalling: %v", err)
		}
		for _, tc := range []struct {
			name string
			by   sessions.Principal
			sid  uuid.UUID
			role access.Role
		}{
			{"clerk invites a judge", clerk, hearing.ID, access.Judge},
			{"clerk invites a clerk", clerk, hearing.ID, access.Clerk},
			{"admin invites a judge", admin, hearing.ID, access.Judge},
			{"admin invites a clerk", admin, hearing.ID, access.Clerk},
			{"judge invites a judge", judge, hearing.ID, access.Judge},
			{"notary invites a notary", notary, act.ID, access.Notary},
			{"notary invites an officer", notary, act.ID, access.EmbassyOfficer},
			{"admin invites a notary", admin, act.ID, access.Notary},
			{"admin invites a principal", admin, act.ID, access.Principal},
		} {
			_, err := f.svc.Invite(ctx, tc.by, tc.sid, sessions.NewInvitation{Name: "X", Role: tc.role})
			var forbidden *access.ForbiddenError
			if !errors.Is(err, fault.Forbidden) || !errors.As(err, &forbidden) || forbidden.Action != access.Invite || !strings.Contains(err.Error(), "invite") {
				t.Errorf("%s: err = %v, want forbidden invite", tc.name, err)
			}
		}
		// What the table allows still works.
		for _, tc := range []struct {
			by   sessions.Principal
			sid  uuid.UUID
			role access.Role
		}{{clerk, hearing.ID, access.Party}, {judge, hearing.ID, access.Witness}, {admin, hearing.ID, access.Observer}, {notary, act.ID, access.Principal}} {
			if _, err := f.svc.Invite(ctx, tc.by, tc.sid, sessions.NewInvitation{Name: "Y", Role: tc.role}); err != nil {
				t.Errorf("%s inviting %s: %v", tc.by.Staff.Role, tc.role, err)
			}
		}
		// Assignments follow their own table: a notary cannot assign a
		// notary, a clerk cannot assign anyone to an act, an officer cannot
		// be assigned to a hearing.
		other := f.staff(t, access.Notary)
		if _, err := f.svc.Assign(ctx, notary, act.ID, other.Staff.ID); !errors.Is(err, fault.Forbidden) {
			t.Errorf("notary assigning a notary: %v", err)
		}
		officer := f.staff(t, access.EmbassyOfficer)
		if _, err := f.svc.Assign(ctx, clerk, hearing.ID, officer.Staff.ID); !errors.Is(err, fault.Invalid) {
			t.Errorf("assigning an officer to a hearing: %v", err)
		}
		if _, err := f.svc.Assign(ctx, clerk, act.ID, officer.Staff.ID); !errors.Is(err, fault.NotFound) {
			t.Errorf("a clerk assigning to another's act: %v", err)
		}
		// A party may neither invite nor assign.
		party, _ := f.invite(t, clerk, hearing.ID, "P", access.Party)
		if _, err := f.svc.Invite(ctx, party, hearing.ID, sessions.NewInvitation{Name: "Z", Role: access.Observer}); !errors.Is(err, fault.Forbidden) {
			t.Errorf("party inviting: %v", err)
		}
		if _, err := f.svc.Assign(ctx, party, hearing.ID, officer.Staff.ID); !errors.Is(err, fault.Forbidden) {
			t.Errorf("party assigning: %v", err)
		}
	})
}

// TestOneParticipantPerStaffMember: a judge entering from two browsers and
// an API client is one participant with several connections, and each
// entry's ticket joins as that participant.
func TestOneParticipantPerStaffMember(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk := f.staff(t, access.Clerk)
		sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
		judge, part := f.official(t, clerk, sess.ID, access.Judge)
		b1, c1, err := f.svc.StartBrowserSession(ctx, judge.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
		if err != nil {
			t.Fatal(err)
		}
		_, c2, _ := f.svc.StartBrowserSession(ctx, judge.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
		var tickets []string
		for _, c := range []string{c1, c2} {
			p, _, err := f.svc.AuthenticateBrowser(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // two tabs of the same browser
				e, err := f.svc.Enter(ctx, p, sess.ID)
				if err != nil {
					t.Fatal(err)
				}
				if e.Participant.ID != part.ID || !slices.Contains(e.Permissions, string(access.Sign)) {
					t.Fatalf("entry = %+v, want participant %s with the judge's permissions", e, part.ID)
				}
				tickets = append(tickets, e.Ticket)
			}
		}
		e, err := f.svc.Enter(ctx, judge, sess.ID) // the API client
		if err != nil || e.Participant.ID != part.ID {
			t.Fatalf("API entry: %+v %v", e, err)
		}
		tickets = append(tickets, e.Ticket)
		for _, tk := range tickets {
			p, ref, err := f.svc.JoinTicket(ctx, sess.ID, tk)
			if err != nil || p.ID != part.ID || ref == "" {
				t.Fatalf("join ticket: %+v %q %v", p, ref, err)
			}
			if _, err := f.svc.Connected(ctx, sess.ID, p.ID); err != nil {
				t.Fatal(err)
			}
		}
		ps, _ := f.svc.Participants(ctx, clerk, sess.ID)
		if n := len(ps); n != 1 || !ps[0].Connected || ps[0].StaffID == nil || *ps[0].StaffID != judge.Staff.ID {
			t.Fatalf("participants = %+v, want the one judge, connected", ps)
		}
		// A ticket joins no other session, and dies with its browser session.
		other, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Other"})
		if _, _, err := f.svc.JoinTicket(ctx, other.ID, tickets[0]); !errors.Is(err, fault.Unauthenticated) {
			t.Fatalf("a ticket of another session: %v", err)
		}
		if _, err := f.svc.EndBrowserSession(ctx, b1.ID, "signed_out"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.JoinTicket(ctx, sess.ID, tickets[0]); !errors.Is(err, fault.Unauthenticated) && !errors.Is(err, fault.Revoked) {
			t.Fatalf("a ticket of a signed-out browser: %v", err)
		}
		if _, _, err := f.svc.JoinTicket(ctx, sess.ID, tickets[2]); err != nil {
			t.Fatalf("the other browser's ticket: %v", err)
		}
		if !f.notes.credentialClosed(sessions.Credential{Kind: sessions.ByBrowser, ID: b1.ID}.Ref()) {
			t.Fatal("signing out did not close that browser's connections")
		}
		// Participants join with their links, never with Enter; admins never take part.
		party, _ := f.invite(t, clerk, sess.ID, "P", access.Party)
		if _, err := f.svc.Enter(ctx, party, sess.ID); !errors.Is(err, fault.Forbidden) {
			t.Fatalf("a party entering: %v", err)
		}
		if _, err := f.svc.Enter(ctx, f.staff(t, access.Admin), sess.ID); !errors.Is(err, fault.Forbidden) {
			t.Fatalf("an admin entering: %v", err)
		}
		// Unassigned, the judge no longer stands in the session.
		if err := f.svc.Unassign(ctx, clerk, sess.ID, judge.Staff.ID); err != nil {
			t.Fatal(err)
		}
		if !f.notes.wasDisconnected(part.ID) {
			t.Fatal("the unassigned judge was not disconnected")
		}
		if _, err := f.svc.Enter(ctx, judge, sess.ID); !errors.Is(err, fault.NotFound) {
			t.Fatalf("an unassigned judge entering: %v", err)
		}
		if _, _, err := f.svc.JoinTicket(ctx, sess.ID, tickets[2]); !errors.Is(err, fault.Revoked) {
			t.Fatalf("an unassigned judge's ticket: %v", err)
		}
	})
}

// TestRevokeStaffEndsEverything: revoking a staff member ends their browser
// sessions, API tokens, tickets and live connections at once, journals it,
// and leaves the invitations they issued working.
func TestRevokeStaffEndsEverything(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk, clerkToken := f.staffToken(t, access.Clerk)
		sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
		_, cookie, err := f.svc.StartBrowserSession(ctx, clerk.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
		if err != nil {
			t.Fatal(err)
		}
		entry, err := f.svc.Enter(ctx, clerk, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		party, partyInv := f.invite(t, clerk, sess.ID, "P", access.Party)
		admin := f.staff(t, access.Admin)
		if err := f.svc.RevokeStaff(ctx, admin.Actor(), clerk.Staff.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AuthenticateBrowser(ctx, cookie); !errors.Is(err, fault.Revoked) {
			t.Errorf("cookie after revocation: %v", err)
		}
		if _, err := f.svc.Authenticate(ctx, clerkToken); !errors.Is(err, fault.Revoked) {
			t.Errorf("API token after revocation: %v", err)
		}
		if _, _, err := f.svc.JoinTicket(ctx, sess.ID, entry.Ticket); err == nil {
			t.Error("join ticket after revocation works")
		}
		if !f.notes.wasDisconnected(entry.Participant.ID) {
			t.Error("the revoked clerk's connections were not closed")
		}
		if _, _, err := f.svc.StartBrowserSession(ctx, clerk.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment}); !errors.Is(err, fault.Revoked) {
			t.Errorf("signing a revoked staff member in: %v", err)
		}
		if _, err := f.svc.AddAPIToken(ctx, "system", clerk.Staff.ID, sessions.NewAPIToken{Name: "x", Scopes: []string{sessions.ScopeSessionsRead}}); !errors.Is(err, fault.Conflict) {
			t.Errorf("a token for a revoked staff member: %v", err)
		}
		p, err := f.svc.Authenticate(ctx, partyInv.Token)
		if err != nil || p.Participant.ID != party.Participant.ID {
			t.Errorf("the party's invitation after the clerk's revocation: %v", err)
		}
		if _, err := f.svc.JoinToken(ctx, sess.ID, partyInv.Token); err != nil {
			t.Errorf("the party joining after the clerk's revocation: %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal WHERE action = 'staff.revoked' AND details LIKE $1`,
			"%"+clerk.Staff.ID.String()+"%").Scan(&n); err != nil || n != 1 {
			t.Errorf("staff.revoked journalled %d times (%v)", n, err)
		}
		if err := f.svc.RevokeStaff(ctx, admin.Actor(), clerk.Staff.ID); err != nil {
			t.Errorf("revoking twice: %v", err)
		}
		if err := f.svc.RevokeStaff(ctx, admin.Actor(), uuid.New()); !errors.Is(err, fault.NotFound) {
			t.Errorf("revoking nobody: %v", err)
		}
	})
}

// TestSweepClosesWhatEndedElsewhere: a token revoked and a staff member
// revoked by another process (the command line) have their connections
// closed by this process's next sweep.
func TestSweepClosesWhatEndedElsewhere(t *testing.T) {
	ctx := context.Background()
	db := databasetest.Open(t, database.SQLite)
	f := newFixture(t, db)
	cli := sessions.New(sessions.Config{DB: db, Journal: journal.New(journal.Config{DB: db}), Logger: discard})
	clerk := f.staff(t, access.Clerk)
	sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
	judge, part := f.official(t, clerk, sess.ID, access.Judge)
	if err := cli.RevokeAPIToken(ctx, "system", clerk.Credential.ID); err != nil {
		t.Fatal(err)
	}
	if f.notes.credentialClosed(clerk.Credential.Ref()) {
		t.Fatal("closed before any sweep: the test proves nothing")
	}
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.notes.credentialClosed(clerk.Credential.Ref()) {
		t.Fatal("the sweep did not close the connections of a token revoked elsewhere")
	}
	if err := cli.RevokeStaff(ctx, "system", judge.Staff.ID); err != nil {
		t.Fatal(err)
	}
	if f.notes.wasDisconnected(part.ID) {
		t.Fatal("disconnected before any sweep")
	}
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.notes.wasDisconnected(part.ID) {
		t.Fatal("the sweep did not close the connections of a staff member revoked elsewhere")
	}
}

// TestBrowserSessionLimits: a console sign-in ends at its absolute limit,
// after its idle limit, and when signed out.
func TestBrowserSessionLimits(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		clerk := f.staff(t, access.Clerk)
		start := func() (sessions.BrowserSession, string) {
			b, c, err := f.svc.StartBrowserSession(ctx, clerk.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.svc.AuthenticateBrowser(ctx, c); err != nil {
				t.Fatal(err)
			}
			return b, c
		}
		past := database.Micros(time.Now().Add(-time.Second))
		b, c := start()
		db.ExecContext(ctx, `UPDATE browser_sessions SET expires_at = $1 WHERE id = $2`, past, b.ID.String())
		if _, _, err := f.svc.AuthenticateBrowser(ctx, c); !errors.Is(err, fault.Expired) {
			t.Errorf("past its absolute limit: %v", err)
		}
		b, c = start()
		db.ExecContext(ctx, `UPDATE browser_sessions SET last_seen_at = $1 WHERE id = $2`, database.Micros(time.Now().Add(-sessions.DefaultBrowserIdleTimeout-time.Second)), b.ID.String())
		if _, _, err := f.svc.AuthenticateBrowser(ctx, c); !errors.Is(err, fault.Expired) {
			t.Errorf("idle too long: %v", err)
		}
		b, c = start()
		if _, err := f.svc.EndBrowserSession(ctx, b.ID, "signed_out"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AuthenticateBrowser(ctx, c); !errors.Is(err, fault.Revoked) {
			t.Errorf("signed out: %v", err)
		}
		if _, _, err := f.svc.AuthenticateBrowser(ctx, "chb_"+strings.Repeat("x", 43)); !errors.Is(err, fault.Unauthenticated) {
			t.Errorf("an unknown cookie: %v", err)
		}
		// A cookie is not a bearer token, nor an API token a cookie.
		_, c = start()
		if _, err := f.svc.Authenticate(ctx, c); !errors.Is(err, fault.Unauthenticated) {
			t.Errorf("a cookie as a bearer token: %v", err)
		}
	})
}

// TestProviderRefusalEndsSignIns: when the provider refuses an account's
// refresh token, every browser session of that staff member ends and their
// connections close; when it is merely down, nothing changes.
func TestProviderRefusalEndsSignIns(t *testing.T) {
	ctx := context.Background()
	db := databasetest.Open(t, database.SQLite)
	var down bool
	revalidate := func(_ context.Context, refresh string) (string, error) {
		switch {
		case down:
			return "", errors.New("connection refused")
		case refresh == "disabled":
			return "", fault.Wrap(fault.Revoked, errors.New("invalid_grant"), "the provider refused")
		}
		return refresh + "+", nil
	}
	svc := sessions.New(sessions.Config{DB: db, Journal: journal.New(journal.Config{DB: db}), Logger: discard,
		Revalidate: revalidate, RevalidateEvery: time.Microsecond})
	notes := &recorder{}
	svc.SetNotifier(notes)
	f := &fixture{svc: svc, db: db, notes: notes, journal: journal.New(journal.Config{DB: db})}
	clerk := f.staff(t, access.Clerk)
	sess, _ := svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "H"})
	judge, part := f.official(t, clerk, sess.ID, access.Judge)
	_, good, _ := svc.StartBrowserSession(ctx, clerk.Staff.ID, sessions.SignIn{Method: sessions.SignInOpenID, RefreshToken: "fine"})
	_, bad1, _ := svc.StartBrowserSession(ctx, judge.Staff.ID, sessions.SignIn{Method: sessions.SignInOpenID, RefreshToken: "disabled"})
	_, bad2, _ := svc.StartBrowserSession(ctx, judge.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
	down = true
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AuthenticateBrowser(ctx, bad1); err != nil {
		t.Fatalf("a provider outage signed someone out: %v", err)
	}
	down = false
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{bad1, bad2} {
		if _, _, err := svc.AuthenticateBrowser(ctx, c); !errors.Is(err, fault.Revoked) {
			t.Errorf("the refused account's sign-in: %v", err)
		}
	}
	if !notes.wasDisconnected(part.ID) {
		t.Error("the refused account's connections stay open")
	}
	if _, _, err := svc.AuthenticateBrowser(ctx, good); err != nil {
		t.Errorf("another account was signed out: %v", err)
	}
	var refresh string
	db.QueryRowContext(ctx, `SELECT refresh_token FROM browser_sessions WHERE staff_id = $1`, clerk.Staff.ID.String()).Scan(&refresh)
	if refresh != "fine+" {
		t.Errorf("the rotated refresh token was not kept: %q", refresh)
	}
	// The judge's API token is Chamber's own: it still works.
	if _, err := svc.Enter(ctx, judge, sess.ID); err != nil {
		t.Errorf("the API token of a refused account: %v", err)
	}
}

// TestAPITokens: scopes are checked, expiry is bounded, staff:admin is for
// admins only, and a revoked token is refused.
func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	clerk := f.staff(t, access.Clerk)
	soon := time.Now().Add(400 * 24 * time.Hour)
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name  string
		n     sessions.NewAPIToken
		field string
	}{
		{"no name", sessions.NewAPIToken{Scopes: []string{sessions.ScopeSessionsRead}}, "name"},
		{"no scope", sessions.NewAPIToken{Name: "ci"}, "scopes"},
		{"unknown scope", sessions.NewAPIToken{Name: "ci", Scopes: []string{"everything"}}, "scopes"},
		{"staff:admin for a clerk", sessions.NewAPIToken{Name: "ci", Scopes: []string{sessions.ScopeStaffAdmin}}, "scopes"},
		{"too long", sessions.NewAPIToken{Name: "ci", Scopes: []string{sessions.ScopeSessionsRead}, ExpiresAt: &soon}, "expires_at"},
		{"expired", sessions.NewAPIToken{Name: "ci", Scopes: []string{sessions.ScopeSessionsRead}, ExpiresAt: &past}, "expires_at"},
	} {
		_, err := f.svc.AddAPIToken(ctx, "system", clerk.Staff.ID, tc.n)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Invalid || fe.Fields[tc.field] == "" {
			t.Errorf("%s: %v, want invalid %s", tc.name, err, tc.field)
		}
	}
	tok, err := f.svc.AddAPIToken(ctx, "system", clerk.Staff.ID, sessions.NewAPIToken{Name: "ci", Scopes: []string{sessions.ScopeSessionsWrite, sessions.ScopeSessionsWrite}})
	if err != nil || !strings.HasPrefix(tok.Token, "cha_") || len(tok.Scopes) != 1 {
		t.Fatalf("token %+v: %v", tok, err)
	}
	p, err := f.svc.Authenticate(ctx, tok.Token)
	if err != nil || p.Credential.Kind != sessions.ByAPIToken || !sessions.HasScope(p.Credential.Scopes, sessions.ScopeSessionsRead) ||
		sessions.HasScope(p.Credential.Scopes, sessions.ScopeRegisterRead) {
		t.Fatalf("authenticated %+v: %v", p, err)
	}
	if err := f.svc.RevokeAPIToken(ctx, "system", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, tok.Token); !errors.Is(err, fault.Revoked) {
		t.Fatalf("revoked token: %v", err)
	}
	list, _ := f.svc.ListAPITokens(ctx, clerk.Staff.ID)
	if len(list) != 2 || !list[1].Revoked || list[1].Name != "ci" {
		t.Fatalf("list = %+v", list)
	}
}

// TestSignInAttemptsAndBootstrap: a sign-in state is used once; the
// bootstrap link works on an empty server only.
func TestSignInAttemptsAndBootstrap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, databasetest.Open(t, database.SQLite))
	a := sessions.SignInAttempt{State: "state-" + uuid.NewString(), Nonce: "n", Verifier: "v", ReturnTo: "/#/"}
	if err := f.svc.SaveSignInAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.TakeSignInAttempt(ctx, a.State)
	if err != nil || got.Nonce != "n" || got.Verifier != "v" {
		t.Fatalf("take: %+v %v", got, err)
	}
	if _, err := f.svc.TakeSignInAttempt(ctx, a.State); !errors.Is(err, fault.Unauthenticated) {
		t.Fatalf("a state used twice: %v", err)
	}
	st, _, cookie, err := f.svc.Bootstrap(ctx, sessions.NewStaff{Name: "First Admin"}, sessions.SignIn{Method: sessions.SignInBootstrap})
	if err != nil || st.Role != access.Admin {
		t.Fatalf("bootstrap: %+v %v", st, err)
	}
	if p, _, err := f.svc.AuthenticateBrowser(ctx, cookie); err != nil || p.Staff.Role != access.Admin {
		t.Fatalf("bootstrap cookie: %v", err)
	}
	if _, _, _, err := f.svc.Bootstrap(ctx, sessions.NewStaff{Name: "Second"}, sessions.SignIn{Method: sessions.SignInBootstrap}); !errors.Is(err, fault.Conflict) {
		t.Fatalf("a second bootstrap: %v", err)
	}
}
