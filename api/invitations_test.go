package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/sessions"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mailHarness serves the session routes of a service that e-mails through
// mailpit, and keeps the server's log.
func mailHarness(t *testing.T, db *database.DB, mp testenv.MailpitServer) (*harness, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	host, port, _ := net.SplitHostPort(mp.SMTP)
	n, _ := strconv.Atoi(port)
	sender, err := mail.NewSMTP(mail.SMTPConfig{Host: host, Port: n, From: mail.Address{Name: "Harju Maakohus", Email: "kohus@kohus.example"}})
	if err != nil {
		t.Fatal(err)
	}
	jnl := journal.New(journal.Config{DB: db, Logger: log})
	svc := sessions.New(sessions.Config{DB: db, Journal: jnl, Logger: log, PublicURL: "http://chamber.test",
		Mail: &sessions.MailConfig{Sender: sender, From: sender.From()}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.RunMail(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a := api.New(api.Config{Logger: log, Sessions: svc, Journal: jnl})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, db: db, jnl: jnl, api: a}, logs
}

var joinURL = regexp.MustCompile(`http://chamber\.test/join/(chi_[A-Za-z0-9_-]{43})`)

// The REST routes of invitations by e-mail, with the payloads the
// console sends.
func TestInvitationRoutes(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h, logs := mailHarness(t, db, mp)
		clerk := h.staffToken(access.Clerk)
		start := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Minute)
		s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "scheduled_at": start})
		base := "/api/v1/sessions/" + s.ID.String()
		to := "mari-" + randomSuffix() + "@example.org"

		var inv sessions.Invitation
		h.must(h.do("POST", base+"/invitations", clerk, map[string]any{"name": "Mari Tamm", "role": "witness",
			"contact": map[string]any{"email": to, "language": "et", "time_zone": "Asia/Tokyo"}}), 201).decode(t, &inv)
		if inv.Mail != "pending" || inv.Token == "" {
			t.Fatalf("invitation %+v", inv)
		}
		msgs := mp.WaitMessages(t, to, 1, 30*time.Second)
		m := mp.Message(t, msgs[0].ID)
		if link := joinURL.FindStringSubmatch(m.Text); link == nil || link[1] != inv.Token {
			t.Fatalf("the e-mail's link is not the invitation's:\n%s", m.Text)
		}
		// The link's token is a working credential.
		h.must(h.do("GET", "/api/v1/me", inv.Token, nil), 200)

		var list []sessions.InvitationMail
		wait.Within(30*time.Second, func() bool {
			h.must(h.do("GET", base+"/invitations", clerk, nil), 200).decode(t, &list)
			return len(list) == 1 && list[0].Status == "sent"
		})
		if len(list) != 1 || list[0].Status != "sent" || list[0].Email != to || list[0].Language != "et" || list[0].Kind != "invitation" {
			t.Fatalf("contacts %+v", list)
		}
		h.must(h.do("GET", base+"/invitations", inv.Token, nil), 403)

		// Reschedule.
		later := start.Add(24 * time.Hour)
		var moved sessions.Session
		h.must(h.do("PATCH", base, clerk, map[string]any{"scheduled_at": later}), 200).decode(t, &moved)
		if moved.ScheduledAt == nil || !moved.ScheduledAt.Equal(later) {
			t.Fatalf("rescheduled %+v", moved)
		}
		if got := mp.WaitMessages(t, to, 2, 30*time.Second)[1]; got.Subject != "Uus aeg: Tamm v Kask" {
			t.Errorf("update subject %q", got.Subject)
		}
		for _, tc := range []struct {
			token  string
			body   any
			status int
			code   string
		}{
			{clerk, map[string]any{}, 400, "nothing_to_change"},
			{clerk, `{"scheduled_at":"tomorrow"}`, 400, "malformed_json"},
			{clerk, map[string]any{"scheduled_at": time.Now().Add(-time.Hour)}, 422, "invalid"},
			{clerk, map[string]any{"scheduled_at": later, "title": "x"}, 400, "unknown_field"},
			{inv.Token, map[string]any{"scheduled_at": later}, 403, "forbidden"},
		} {
			r := h.do("PATCH", base, tc.token, tc.body)
			if r.Status != tc.status || r.errorCode() != tc.code {
				t.Errorf("PATCH %v: %d %s, want %d %s", tc.body, r.Status, r.Body, tc.status, tc.code)
			}
		}

		// Re-send: the old token stops working at once.
		var again sessions.Invitation
		h.must(h.do("POST", base+"/invitations/"+inv.ParticipantID.String()+"/reissue", clerk, nil), 200).decode(t, &again)
		if again.Token == inv.Token || again.Mail != "pending" {
			t.Fatalf("reissued %+v", again)
		}
		h.must(h.do("GET", "/api/v1/me", inv.Token, nil), 401)
		h.must(h.do("GET", "/api/v1/me", again.Token, nil), 200)
		third := mp.Message(t, mp.WaitMessages(t, to, 3, 30*time.Second)[2].ID)
		if link := joinURL.FindStringSubmatch(third.Text); link == nil || link[1] != again.Token {
			t.Errorf("the re-sent link:\n%s", third.Text)
		}
		r := h.do("POST", base+"/invitations/"+inv.ParticipantID.String()+"/reissue", clerk, map[string]any{"contact": map[string]any{"email": "no"}})
		if r.Status != 422 || !strings.Contains(string(r.Body), "contact.email") {
			t.Errorf("bad contact on re-send: %d %s", r.Status, r.Body)
		}

		// Withdrawal.
		h.must(h.do("DELETE", base+"/invitations/"+inv.ParticipantID.String(), clerk, nil), 204)
		if got := mp.WaitMessages(t, to, 4, 30*time.Second)[3]; got.Subject != "Tühistatud: Tamm v Kask" {
			t.Errorf("cancel subject %q", got.Subject)
		}
		for _, tok := range []string{inv.Token, again.Token} {
			if strings.Contains(logs.String(), tok[4:]) {
				t.Error("a token is in the server's log")
			}
		}
	})
}

// A server without e-mail says so instead of accepting a contact.
func TestInvitationContactWithoutMail(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	clerk := h.staffToken(access.Clerk)
	s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "x"})
	r := h.do("POST", "/api/v1/sessions/"+s.ID.String()+"/invitations", clerk, map[string]any{"name": "M", "role": "witness",
		"contact": map[string]any{"email": "m@example.org"}})
	if r.Status != 422 || !strings.Contains(string(r.Body), `"contact"`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// Re-sending still works: the new link is returned.
	inv := h.invite(clerk, s.ID, "M", access.Witness)
	var again sessions.Invitation
	h.must(h.do("POST", "/api/v1/sessions/"+s.ID.String()+"/invitations/"+inv.ParticipantID.String()+"/reissue", clerk, map[string]any{}), 200).decode(t, &again)
	if again.Token == "" || again.Token == inv.Token || again.Mail != "" {
		t.Fatalf("%+v", again)
	}
}
