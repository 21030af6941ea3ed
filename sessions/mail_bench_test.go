package sessions_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/sessions"
)

// benchService is a session service on engine that e-mails through the
// shared mailpit (nil: no mail), with a clerk and a scheduled hearing.
func benchService(b *testing.B, engine database.Engine, withMail bool) (*sessions.Service, *database.DB, sessions.Principal, uuid.UUID) {
	b.Helper()
	db := databasetest.Open(b, engine)
	log := slog.New(slog.DiscardHandler)
	cfg := sessions.Config{DB: db, Journal: journal.New(journal.Config{DB: db, Logger: log}), Logger: log, PublicURL: "https://chamber.example"}
	if withMail {
		mp := testenv.Mailpit(b)
		host, port, _ := net.SplitHostPort(mp.SMTP)
		n, _ := strconv.Atoi(port)
		sender, err := mail.NewSMTP(mail.SMTPConfig{Host: host, Port: n, From: mail.Address{Name: "Harju Maakohus", Email: "kohus@kohus.example"}})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Mail = &sessions.MailConfig{Sender: sender, From: sender.From(), HourlyLimit: 1 << 30}
	}
	svc := sessions.New(cfg)
	ctx := context.Background()
	st, err := svc.AddStaff(ctx, "system", sessions.NewStaff{Name: "Clerk", Role: access.Clerk})
	if err != nil {
		b.Fatal(err)
	}
	token, err := svc.AddAPIToken(ctx, "system", st.ID, sessions.NewAPIToken{Name: "bench", Scopes: []string{sessions.ScopeSessionsWrite}})
	if err != nil {
		b.Fatal(err)
	}
	clerk, _ := svc.Authenticate(ctx, token.Token)
	at := time.Now().Add(72 * time.Hour)
	sess, err := svc.Create(ctx, clerk, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask", ScheduledAt: &at})
	if err != nil {
		b.Fatal(err)
	}
	return svc, db, clerk, sess.ID
}

// BenchmarkInvite is the cost an invitation's request pays for its e-mail:
// the contact and the letter written in the same transaction, nothing sent.
func BenchmarkInvite(b *testing.B) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		for _, withMail := range []bool{false, true} {
			name := string(engine) + "/no-contact"
			if withMail {
				name = string(engine) + "/contact"
			}
			b.Run(name, func(b *testing.B) {
				svc, _, clerk, sid := benchService(b, engine, withMail)
				ctx := context.Background()
				for b.Loop() {
					n := sessions.NewInvitation{Name: "Mari Tamm", Role: access.Witness}
					if withMail {
						n.Contact = &sessions.Contact{Email: "bench-" + uuid.NewString()[:8] + "@example.org", Language: "et", TimeZone: "Asia/Tokyo"}
					}
					if _, err := svc.Invite(ctx, clerk, sid, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOutbox delivers queued invitations to mailpit: each op is one
// letter composed, sent over SMTP and recorded (journal entry included).
func BenchmarkOutbox(b *testing.B) {
	for _, engine := range []database.Engine{database.SQLite, database.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			svc, db, clerk, sid := benchService(b, engine, true)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				if _, err := svc.Invite(ctx, clerk, sid, sessions.NewInvitation{Name: "Mari Tamm", Role: access.Witness,
					Contact: &sessions.Contact{Email: "bench-" + uuid.NewString()[:8] + "@example.org"}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { svc.RunMail(runCtx); close(done) }()
			wait.WithinEvery(time.Minute, 5*time.Millisecond, func() bool {
				var pending int
				db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending'`).Scan(&pending)
				return pending == 0
			})
			b.StopTimer()
			cancel()
			<-done
			var sent int
			db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent'`).Scan(&sent)
			if sent != b.N {
				b.Fatalf("%d of %d letters sent", sent, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "letters/s")
		})
	}
}
