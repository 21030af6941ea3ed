package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
)

// TestBrowserSessionAuthTime, on both engines: a sign-in keeps its
// auth_time and its source; a re-authentication moves it forward only,
// and only for the session's own account; a re-authentication of an ended
// session is refused; an attempt carries the session it re-authenticates
// and when it started.
func TestBrowserSessionAuthTime(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		subject := "https://id.court.test|sub-" + uuid.NewString()[:8]
		st, err := f.svc.AddStaff(ctx, "system", sessions.NewStaff{Name: "Judge Saar", Role: "judge", ExternalSubject: subject})
		if err != nil {
			t.Fatal(err)
		}
		signedIn := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
		b, cookie, err := f.svc.StartBrowserSession(ctx, st.ID, sessions.SignIn{Method: sessions.SignInOpenID, AuthTime: signedIn, AuthTimeSource: sessions.AuthTimeExchange})
		if err != nil {
			t.Fatal(err)
		}
		authTime := func() time.Time {
			t.Helper()
			_, got, err := f.svc.AuthenticateBrowser(ctx, cookie)
			if err != nil {
				t.Fatal(err)
			}
			return got.AuthTime
		}
		_, got, err := f.svc.AuthenticateBrowser(ctx, cookie)
		if err != nil || !got.AuthTime.Equal(signedIn) || got.AuthTimeSource != sessions.AuthTimeExchange {
			t.Fatalf("sign-in: %+v %v", got, err)
		}

		// Another account is not this session's person: nothing changes.
		later := signedIn.Add(30 * time.Minute)
		err = f.svc.Reauthenticated(ctx, b.ID, sessions.Reauthentication{Subject: "https://id.court.test|someone-else", AuthTime: later})
		if !errors.Is(err, sessions.ErrAnotherPerson) || !authTime().Equal(signedIn) {
			t.Fatalf("another account: %v, auth_time %v", err, authTime())
		}
		// The same account, later: forward.
		if err := f.svc.Reauthenticated(ctx, b.ID, sessions.Reauthentication{Subject: subject, AuthTime: later, IDToken: "new-id-token"}); err != nil {
			t.Fatal(err)
		}
		if _, got, _ = f.svc.AuthenticateBrowser(ctx, cookie); !got.AuthTime.Equal(later) || got.AuthTimeSource != sessions.AuthTimeClaim || got.IDToken != "new-id-token" {
			t.Fatalf("after a re-authentication: %+v", got)
		}
		// Earlier than what it has: never backwards.
		if err := f.svc.Reauthenticated(ctx, b.ID, sessions.Reauthentication{Subject: subject, AuthTime: signedIn}); err != nil {
			t.Fatal(err)
		}
		if !authTime().Equal(later) {
			t.Fatalf("auth_time moved back to %v", authTime())
		}

		// The attempt remembers the session and its start.
		before := time.Now().Add(-time.Second)
		state := "state-" + uuid.NewString()
		if err := f.svc.SaveSignInAttempt(ctx, sessions.SignInAttempt{State: state, Nonce: "n", Verifier: "v", ReturnTo: "/", Reauth: b.ID}); err != nil {
			t.Fatal(err)
		}
		att, err := f.svc.TakeSignInAttempt(ctx, state)
		if err != nil || att.Reauth != b.ID || att.StartedAt.Before(before) || att.StartedAt.After(time.Now()) {
			t.Fatalf("attempt %+v: %v", att, err)
		}

		// An ended session is not re-authenticated.
		if _, err := f.svc.EndBrowserSession(ctx, b.ID, "signed_out"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Reauthenticated(ctx, b.ID, sessions.Reauthentication{Subject: subject, AuthTime: time.Now()}); !errors.Is(err, fault.Revoked) {
			t.Fatalf("an ended session: %v", err)
		}
	})
}
