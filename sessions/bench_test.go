package sessions_test

import (
	"context"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/sessions"
)

// BenchmarkAuthenticate is what each request pays to authenticate, per
// kind of credential, on each engine: one indexed lookup by hash (and, at
// most once a minute or half-minute, a write of its last use).
//
//	go test -run '^$' -bench BenchmarkAuthenticate -benchmem -count=5 ./sessions/
func BenchmarkAuthenticate(b *testing.B) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			ctx := context.Background()
			f := newFixtureB(b, databasetest.Open(b, engine))
			clerk, tok := f.staffTokenB(b, access.Clerk)
			sess, _ := f.svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Bench"})
			inv, _ := f.svc.Invite(ctx, clerk, sess.ID, sessions.NewInvitation{Name: "P", Role: access.Party})
			_, cookie, _ := f.svc.StartBrowserSession(ctx, clerk.Staff.ID, sessions.SignIn{Method: sessions.SignInDevelopment})
			entry, err := f.svc.Enter(ctx, clerk, sess.ID)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range []struct {
				name string
				auth func() error
			}{
				{"api_token", func() error { _, err := f.svc.Authenticate(ctx, tok); return err }},
				{"browser_session", func() error { _, _, err := f.svc.AuthenticateBrowser(ctx, cookie); return err }},
				{"invitation", func() error { _, err := f.svc.Authenticate(ctx, inv.Token); return err }},
				{"join_ticket", func() error { _, _, err := f.svc.JoinTicket(ctx, sess.ID, entry.Ticket); return err }},
			} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := c.auth(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
