package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/fakeclock"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/sessions"
)

// logBuffer collects a service's log lines, to show what a token never
// appears in.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mailFixture is a session service that e-mails through a real SMTP server
// (mailpit) on a clock the test moves.
type mailFixture struct {
	*fixture
	clock *fakeclock.Clock
	mp    testenv.MailpitServer
	logs  *logBuffer
	cfg   sessions.MailConfig
	stop  func()
}

func newMailFixture(t *testing.T, db *database.DB, mp testenv.MailpitServer, adjust ...func(*sessions.MailConfig)) *mailFixture {
	t.Helper()
	host, port, _ := net.SplitHostPort(mp.SMTP)
	n, _ := strconv.Atoi(port)
	sender, err := mail.NewSMTP(mail.SMTPConfig{Host: host, Port: n, Timeout: 10 * time.Second,
		From: mail.Address{Name: "Harju Maakohus", Email: "kohus@kohus.example"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sessions.MailConfig{Sender: sender, From: sender.From()}
	for _, a := range adjust {
		a(&cfg)
	}
	m := &mailFixture{clock: fakeclock.New(time.Now().UTC().Truncate(time.Minute)), mp: mp, logs: &logBuffer{}, cfg: cfg}
	m.fixture = m.service(t, db)
	return m
}

// service builds a service on db with the fixture's clock and mail, and
// runs its sender until stop or the end of the test.
func (m *mailFixture) service(t *testing.T, db *database.DB) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	j := journal.New(journal.Config{DB: db, Logger: log})
	cfg := m.cfg
	svc := sessions.New(sessions.Config{DB: db, Journal: j, Logger: log, PublicURL: "https://chamber.example", Mail: &cfg, Clock: m.clock})
	notes := &recorder{}
	svc.SetNotifier(notes)
	m.run(t, svc)
	return &fixture{svc: svc, journal: j, db: db, notes: notes}
}

func (m *mailFixture) run(t *testing.T, svc *sessions.Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.RunMail(ctx); close(done) }()
	m.stop = func() { cancel(); <-done }
	t.Cleanup(m.stop)
}

// pass moves the clock by d and waits until the sender has done the work
// that became due and waits again.
func (m *mailFixture) pass(t *testing.T, d time.Duration) {
	t.Helper()
	if !m.clock.BlockUntil(1, 10*time.Second) {
		t.Fatal("the mail sender is not waiting")
	}
	m.clock.Advance(d)
	if !m.clock.BlockUntil(1, 30*time.Second) {
		t.Fatal("the mail sender did not finish its pass")
	}
}

func address(tag string) string { return tag + "-" + uuid.NewString()[:12] + "@example.org" }

func (m *mailFixture) inviteTo(t *testing.T, by sessions.Principal, sid uuid.UUID, name string, role access.Role, c *sessions.Contact) sessions.Invitation {
	t.Helper()
	inv, err := m.svc.Invite(context.Background(), by, sid, sessions.NewInvitation{Name: name, Role: role, Contact: c})
	if err != nil {
		t.Fatalf("invite %s: %v", name, err)
	}
	return inv
}

func (m *mailFixture) hearing(t *testing.T, by sessions.Principal, at *time.Time) sessions.Session {
	t.Helper()
	sess, err := m.svc.Create(context.Background(), by, sessions.NewSession{Kind: access.Hearing, Title: "Tamm v Kask", CaseNumber: "2-26-1234", ScheduledAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// received is one message as it arrived, with its calendar object parsed.
type received struct {
	testenv.MailMessage
	method   string
	uid      string
	sequence int
	start    time.Time
	status   string
	ics      string
}

var joinLink = regexp.MustCompile(`https://chamber\.example/join/(chi_[A-Za-z0-9_-]{43})`)

// token is the link's token in the body, or "".
func (r received) token() string {
	if m := joinLink.FindStringSubmatch(r.Text); m != nil {
		return m[1]
	}
	return ""
}

// inbox waits for n messages to addr and returns them oldest first.
func inbox(t *testing.T, mp testenv.MailpitServer, addr string, n int) []received {
	t.Helper()
	var out []received
	for _, s := range mp.WaitMessages(t, addr, n, 30*time.Second) {
		r := received{MailMessage: mp.Message(t, s.ID)}
		for _, a := range r.Attachments {
			if !strings.HasSuffix(a.FileName, ".ics") {
				continue
			}
			r.ics = string(mp.Part(t, s.ID, a.PartID))
			cal, err := ics.ParseCalendar(strings.NewReader(r.ics))
			if err != nil {
				t.Fatalf("%s: the .ics does not parse: %v", r.Subject, err)
			}
			for _, p := range cal.CalendarProperties {
				if p.IANAToken == "METHOD" {
					r.method = p.Value
				}
			}
			ev := cal.Events()
			if len(ev) != 1 {
				t.Fatalf("%s: %d events", r.Subject, len(ev))
			}
			r.uid = ev[0].Id()
			r.sequence, _ = strconv.Atoi(ev[0].GetProperty(ics.ComponentPropertySequence).Value)
			r.start, _ = ev[0].GetStartAt()
			r.status = ev[0].GetProperty(ics.ComponentPropertyStatus).Value
		}
		out = append(out, r)
	}
	if len(out) != n {
		t.Fatalf("%d messages to %s, want exactly %d", len(out), addr, n)
	}
	return out
}

// entries returns the session's journal entries of one action.
func (f *fixture) entries(t *testing.T, sid uuid.UUID, action string) []journal.Entry {
	t.Helper()
	all, err := f.journal.Session(context.Background(), sid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for _, e := range all {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// noSecrets fails if a token appears in the journal, the logs, or an
// outbox row that is no longer waiting to be sent.
func (m *mailFixture) noSecrets(t *testing.T, tokens ...string) {
	t.Helper()
	var everything bytes.Buffer
	rows, err := m.db.QueryContext(context.Background(), `SELECT details FROM journal`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		rows.Scan(&d)
		everything.WriteString(d)
	}
	rows.Close()
	for _, tok := range tokens {
		if strings.Contains(everything.String(), tok) || strings.Contains(everything.String(), tok[4:]) {
			t.Errorf("a token is in the journal")
		}
		if strings.Contains(m.logs.String(), tok[4:]) {
			t.Errorf("a token is in the logs")
		}
	}
	var kept int
	if err := m.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM mail_outbox WHERE secret IS NOT NULL AND status <> 'pending'`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Errorf("%d letters no longer pending still hold their token", kept)
	}
}

// The invitation e-mail: the recipient's language, the time in their
// zone, a calendar invitation that parses, a link that joins, and the
// token nowhere but in that link.
func TestInvitationEmail(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMailFixture(t, db, mp)
		clerk := m.staff(t, access.Clerk)
		start := m.clock.Now().Add(72 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		to := address("mari")
		inv := m.inviteTo(t, clerk, sess.ID, "Mari Tamm", access.Witness, &sessions.Contact{Email: to, Language: "et", TimeZone: "Asia/Tokyo"})
		if inv.Mail != sessions.MailPending {
			t.Fatalf("mail = %q, want pending", inv.Mail)
		}
		got := inbox(t, mp, to, 1)[0]
		if got.Subject != "Kutse: Tamm v Kask" || !strings.Contains(got.Text, "Teid kutsutakse osalema kohtuistungil „Tamm v Kask“") {
			t.Errorf("not in Estonian: %s\n%s", got.Subject, got.Text)
		}
		tokyo, _ := time.LoadLocation("Asia/Tokyo")
		local := start.In(tokyo)
		if want := "kell " + local.Format("15:04") + " (Asia/Tokyo, UTC+09:00)"; !strings.Contains(got.Text, want) {
			t.Errorf("the time is not given in Tokyo (%q):\n%s", want, got.Text)
		}
		if got.method != "REQUEST" || got.uid != inv.ParticipantID.String()+"@kohus.example" || got.sequence != 0 || !got.start.Equal(start) {
			t.Errorf("calendar: method %s uid %s sequence %d start %v (want %v)", got.method, got.uid, got.sequence, got.start, start)
		}
		if strings.Contains(got.ics, "chi_") {
			t.Error("the calendar object carries the token")
		}
		// The link joins.
		if got.token() != inv.Token {
			t.Fatalf("the link's token is not the invitation's")
		}
		p, err := m.svc.Authenticate(ctx, got.token())
		if err != nil || p.Participant == nil || p.Participant.ID != inv.ParticipantID {
			t.Fatalf("the link does not authenticate: %v", err)
		}
		if _, err := m.svc.Connected(ctx, sess.ID, p.Participant.ID); err != nil {
			t.Fatalf("the link's holder cannot join: %v", err)
		}
		// Journalled with the Message-ID.
		sent := m.entries(t, sess.ID, "invitation.sent")
		if len(sent) != 1 {
			t.Fatalf("%d invitation.sent entries", len(sent))
		}
		var d map[string]any
		json.Unmarshal(sent[0].Details, &d)
		if d["message_id"] != got.MessageID || d["participant_id"] != inv.ParticipantID.String() || d["kind"] != "invitation" {
			t.Errorf("invitation.sent details %s (message id %s)", sent[0].Details, got.MessageID)
		}
		m.noSecrets(t, inv.Token)
		list, err := m.svc.InvitationMails(ctx, clerk, sess.ID)
		if err != nil || len(list) != 1 || list[0].Status != sessions.MailSent || list[0].Email != to || list[0].TimeZone != "Asia/Tokyo" || list[0].SentAt == nil {
			t.Fatalf("invitation mails %+v, %v", list, err)
		}
		party, _ := m.invite(t, clerk, sess.ID, "P", access.Party)
		if _, err := m.svc.InvitationMails(ctx, party, sess.ID); !errors.Is(err, fault.Forbidden) {
			t.Errorf("a party reads the contacts: %v", err)
		}
	})
}

// Bad contacts are refused with the field named, and nothing is created.
func TestContactValidation(t *testing.T) {
	mp := testenv.Mailpit(t)
	m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp)
	ctx := context.Background()
	clerk := m.staff(t, access.Clerk)
	sess := m.hearing(t, clerk, nil)
	for field, c := range map[string]sessions.Contact{
		"contact.email":     {Email: "Mari <mari@example.org>"},
		"contact.language":  {Email: "mari@example.org", Language: "de"},
		"contact.time_zone": {Email: "mari@example.org", TimeZone: "Mars/Olympus"},
	} {
		_, err := m.svc.Invite(ctx, clerk, sess.ID, sessions.NewInvitation{Name: "X", Role: access.Witness, Contact: &c})
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Invalid || fe.Fields[field] == "" {
			t.Errorf("%s: %v", field, err)
		}
	}
	// A server without mail refuses contacts rather than pretend.
	plain := newFixture(t, databasetest.Open(t, database.SQLite))
	pc := plain.staff(t, access.Clerk)
	ps, _ := plain.svc.Create(ctx, pc, sessions.NewSession{Kind: access.Hearing, Title: "x"})
	_, err := plain.svc.Invite(ctx, pc, ps.ID, sessions.NewInvitation{Name: "X", Role: access.Witness, Contact: &sessions.Contact{Email: "x@example.org"}})
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Fields["contact"] == "" {
		t.Errorf("no mail service: %v", err)
	}
	if ps, _ := plain.svc.ParticipantsOf(ctx, ps.ID); len(ps) != 0 {
		t.Errorf("%d participants created by refused invitations", len(ps))
	}
	if ps, _ := m.svc.ParticipantsOf(ctx, sess.ID); len(ps) != 0 {
		t.Errorf("%d participants created by refused invitations", len(ps))
	}
}

// A new time reaches everyone with a contact, each in their own language
// and zone, as the same calendar event with the next SEQUENCE; setting the
// same time sends nothing; a withdrawal or a removal sends a CANCEL.
func TestRescheduleAndCancel(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMailFixture(t, db, mp)
		clerk := m.staff(t, access.Clerk)
		start := m.clock.Now().Add(48 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		a, b := address("a"), address("b")
		invA := m.inviteTo(t, clerk, sess.ID, "Anna", access.Party, &sessions.Contact{Email: a, TimeZone: "Europe/Tallinn"})
		invB := m.inviteTo(t, clerk, sess.ID, "Boris", access.Witness, &sessions.Contact{Email: b, Language: "ru", TimeZone: "America/New_York"})
		m.inviteTo(t, clerk, sess.ID, "No Mail", access.Witness, nil)
		inbox(t, mp, a, 1)
		inbox(t, mp, b, 1)

		party, err := m.svc.Authenticate(ctx, invA.Token)
		if err != nil {
			t.Fatal(err)
		}
		later := start.Add(10 * 24 * time.Hour)
		if _, err := m.svc.Reschedule(ctx, party, sess.ID, later); !errors.Is(err, fault.Forbidden) {
			t.Fatalf("a party reschedules: %v", err)
		}
		for _, bad := range []time.Time{m.clock.Now().Add(-time.Minute), m.clock.Now().Add(6 * 365 * 24 * time.Hour), {}} {
			if _, err := m.svc.Reschedule(ctx, clerk, sess.ID, bad); !errors.Is(err, fault.Invalid) {
				t.Errorf("reschedule to %v: %v", bad, err)
			}
		}
		got, err := m.svc.Reschedule(ctx, clerk, sess.ID, later)
		if err != nil || !got.ScheduledAt.Equal(later) {
			t.Fatalf("reschedule: %v %v", got.ScheduledAt, err)
		}
		tallinn, _ := time.LoadLocation("Europe/Tallinn")
		ua := inbox(t, mp, a, 2)
		if ua[1].Subject != "New time: Tamm v Kask" || ua[1].method != "REQUEST" || ua[1].sequence != 1 ||
			ua[1].uid != ua[0].uid || !ua[1].start.Equal(later) {
			t.Errorf("update: %s method %s seq %d uid %s start %v", ua[1].Subject, ua[1].method, ua[1].sequence, ua[1].uid, ua[1].start)
		}
		for _, want := range []string{"New time: " + later.In(tallinn).Format("Monday, 2 January 2006, 15:04"),
			"Previous time: " + start.In(tallinn).Format("Monday, 2 January 2006, 15:04")} {
			if !strings.Contains(ua[1].Text, want) {
				t.Errorf("want %q in\n%s", want, ua[1].Text)
			}
		}
		if ua[1].token() != "" {
			t.Error("the update carries a link")
		}
		ub := inbox(t, mp, b, 2)
		if ub[1].Subject != "Новое время: Tamm v Kask" || ub[1].sequence != 1 || !strings.Contains(ub[1].Text, "(America/New_York, UTC-05:00)") {
			t.Errorf("update in Russian, New York time: %s seq %d\n%s", ub[1].Subject, ub[1].sequence, ub[1].Text)
		}
		re := m.entries(t, sess.ID, "session.rescheduled")
		if len(re) != 1 || !strings.Contains(string(re[0].Details), `"notices":2`) {
			t.Fatalf("journal: %v", re)
		}
		// The invitations now outlive the new time.
		ps, _ := m.svc.ParticipantsOf(ctx, sess.ID)
		for _, p := range ps {
			if p.ExpiresAt.Before(later.Add(6 * 24 * time.Hour)) {
				t.Errorf("%s's invitation expires %v, before the new time's week", p.Name, p.ExpiresAt)
			}
		}

		// The same time again changes nothing and sends nothing: the next
		// letter Anna receives is the cancellation, with SEQUENCE 2.
		if _, err := m.svc.Reschedule(ctx, clerk, sess.ID, later); err != nil {
			t.Fatal(err)
		}
		if err := m.svc.RevokeInvitation(ctx, clerk, sess.ID, invA.ParticipantID); err != nil {
			t.Fatal(err)
		}
		ca := inbox(t, mp, a, 3)[2]
		if ca.Subject != "Cancelled: Tamm v Kask" || ca.method != "CANCEL" || ca.sequence != 2 || ca.status != "CANCELLED" || ca.uid != ua[0].uid {
			t.Errorf("cancel: %s method %s seq %d status %s", ca.Subject, ca.method, ca.sequence, ca.status)
		}
		// A removal from the room withdraws the invitation too.
		if err := m.svc.Remove(ctx, clerk, sess.ID, invB.ParticipantID); err != nil {
			t.Fatal(err)
		}
		cb := inbox(t, mp, b, 3)[2]
		if cb.method != "CANCEL" || cb.sequence != 2 || cb.Subject != "Отменено: Tamm v Kask" {
			t.Errorf("cancel after removal: %s %s %d", cb.Subject, cb.method, cb.sequence)
		}
		if len(m.entries(t, sess.ID, "session.rescheduled")) != 1 {
			t.Error("the unchanged time was journalled")
		}
		m.noSecrets(t, invA.Token, invB.Token)

		if _, err := m.svc.Close(ctx, clerk, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.svc.Reschedule(ctx, clerk, sess.ID, later.Add(time.Hour)); !errors.Is(err, fault.Conflict) {
			t.Errorf("rescheduling a closed session: %v", err)
		}
	})
}

// A session without a time sends an invitation without a calendar entry;
// setting the time sends the first calendar entry.
func TestTimeSetLater(t *testing.T) {
	mp := testenv.Mailpit(t)
	m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp)
	clerk := m.staff(t, access.Clerk)
	sess := m.hearing(t, clerk, nil)
	to := address("later")
	m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: to})
	first := inbox(t, mp, to, 1)[0]
	if len(first.Attachments) != 0 || !strings.Contains(first.Text, "Time: to be announced") {
		t.Errorf("unscheduled invitation: %d attachments\n%s", len(first.Attachments), first.Text)
	}
	at := m.clock.Now().Add(24 * time.Hour)
	if _, err := m.svc.Reschedule(context.Background(), clerk, sess.ID, at); err != nil {
		t.Fatal(err)
	}
	set := inbox(t, mp, to, 2)[1]
	if set.method != "REQUEST" || !set.start.Equal(at) || !strings.Contains(set.Text, "has been set") || strings.Contains(set.Text, "Previous time") {
		t.Errorf("time set: %s %v\n%s", set.method, set.start, set.Text)
	}
}

// A revoked invitation whose e-mail never left sends no cancellation, and
// its letter is not sent afterwards.
func TestRevokeBeforeDelivery(t *testing.T) {
	mp := testenv.Mailpit(t)
	m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp)
	m.stop() // nothing is delivered until the sender runs again
	ctx := context.Background()
	clerk := m.staff(t, access.Clerk)
	start := m.clock.Now().Add(48 * time.Hour)
	sess := m.hearing(t, clerk, &start)
	gone := address("gone")
	inv := m.inviteTo(t, clerk, sess.ID, "Gone", access.Witness, &sessions.Contact{Email: gone})
	if err := m.svc.RevokeInvitation(ctx, clerk, sess.ID, inv.ParticipantID); err != nil {
		t.Fatal(err)
	}
	m.run(t, m.svc)
	marker := address("marker")
	m.inviteTo(t, clerk, sess.ID, "Marker", access.Witness, &sessions.Contact{Email: marker})
	inbox(t, mp, marker, 1)
	m.pass(t, time.Second)
	if n := len(mp.Search(t, gone)); n != 0 {
		t.Fatalf("%d messages to a person whose invitation was revoked before anything was sent", n)
	}
	m.noSecrets(t, inv.Token)
}

// Re-sending rotates the token: the old one is refused at once (and its
// connections closed), the new one works and is e-mailed, the calendar
// event is unchanged, and neither token is journalled.
func TestReissue(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMailFixture(t, db, mp)
		clerk := m.staff(t, access.Clerk)
		start := m.clock.Now().Add(48 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		to := address("reissue")
		old := m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: to})
		first := inbox(t, mp, to, 1)[0]

		inv, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, old.ParticipantID, sessions.Reissue{})
		if err != nil {
			t.Fatal(err)
		}
		if inv.Token == old.Token || inv.ParticipantID != old.ParticipantID || inv.Mail != sessions.MailPending || !strings.HasSuffix(inv.JoinURL, inv.Token) {
			t.Fatalf("reissued %+v", inv)
		}
		if _, err := m.svc.Authenticate(ctx, old.Token); !errors.Is(err, fault.Unauthenticated) {
			t.Errorf("the old token: %v", err)
		}
		if p, err := m.svc.Authenticate(ctx, inv.Token); err != nil || p.Participant.ID != old.ParticipantID {
			t.Errorf("the new token: %v", err)
		}
		m.notes.mu.Lock()
		disconnected := append([]uuid.UUID(nil), m.notes.disconnected...)
		m.notes.mu.Unlock()
		if len(disconnected) != 1 || disconnected[0] != old.ParticipantID {
			t.Errorf("connections of the old token not closed: %v", disconnected)
		}
		second := inbox(t, mp, to, 2)[1]
		if second.Subject != "New link: Tamm v Kask" || second.token() != inv.Token || strings.Contains(second.Text, old.Token) {
			t.Errorf("new link letter: %s\n%s", second.Subject, second.Text)
		}
		if second.uid != first.uid || second.sequence != first.sequence || second.method != "REQUEST" {
			t.Errorf("calendar changed: uid %s seq %d", second.uid, second.sequence)
		}
		if e := m.entries(t, sess.ID, "invitation.reissued"); len(e) != 1 || !strings.Contains(string(e[0].Details), `"mailed":true`) {
			t.Errorf("journal: %v", e)
		}

		// A corrected address and language.
		moved := address("moved")
		inv2, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, old.ParticipantID, sessions.Reissue{Contact: &sessions.Contact{Email: moved, Language: "ru"}})
		if err != nil {
			t.Fatal(err)
		}
		if r := inbox(t, mp, moved, 1)[0]; r.Subject != "Новая ссылка: Tamm v Kask" || r.token() != inv2.Token {
			t.Errorf("to the new address: %s", r.Subject)
		}
		m.noSecrets(t, old.Token, inv.Token, inv2.Token)

		// Without a contact the link is only returned.
		bare := m.inviteTo(t, clerk, sess.ID, "Bare", access.Witness, nil)
		if r, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, bare.ParticipantID, sessions.Reissue{}); err != nil || r.Mail != "" {
			t.Errorf("reissue without contact: %+v %v", r, err)
		}
		// Not for a party, not for a removed participant, not across sessions.
		party, _ := m.invite(t, clerk, sess.ID, "Party", access.Party)
		if _, err := m.svc.ReissueInvitation(ctx, party, sess.ID, bare.ParticipantID, sessions.Reissue{}); !errors.Is(err, fault.Forbidden) {
			t.Errorf("a party re-sends: %v", err)
		}
		m.svc.RevokeInvitation(ctx, clerk, sess.ID, bare.ParticipantID)
		if _, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, bare.ParticipantID, sessions.Reissue{}); !errors.Is(err, fault.Conflict) {
			t.Errorf("re-sending a revoked invitation: %v", err)
		}
		other := m.hearing(t, clerk, nil)
		if _, err := m.svc.ReissueInvitation(ctx, clerk, other.ID, old.ParticipantID, sessions.Reissue{}); !errors.Is(err, fault.NotFound) {
			t.Errorf("another session's participant: %v", err)
		}
	})
}

// Re-sending cannot flood a mailbox: past the hourly limit it is refused
// (429) and the token stays as it was.
func TestReissueLimit(t *testing.T) {
	mp := testenv.Mailpit(t)
	m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp, func(c *sessions.MailConfig) { c.HourlyLimit = 3 })
	ctx := context.Background()
	clerk := m.staff(t, access.Clerk)
	sess := m.hearing(t, clerk, nil)
	inv := m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: address("limit")})
	token := inv.Token
	for i := 0; i < 2; i++ { // the invitation and two re-sends make three
		r, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, inv.ParticipantID, sessions.Reissue{})
		if err != nil {
			t.Fatalf("re-send %d: %v", i+1, err)
		}
		token = r.Token
	}
	_, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, inv.ParticipantID, sessions.Reissue{})
	if !errors.Is(err, fault.RateLimited) || fault.RetryAfter(err) <= 0 {
		t.Fatalf("fourth letter within the hour: %v", err)
	}
	if _, err := m.svc.Authenticate(ctx, token); err != nil {
		t.Fatalf("the refused re-send changed the token: %v", err)
	}
	m.clock.Advance(time.Hour + time.Minute)
	if _, err := m.svc.ReissueInvitation(ctx, clerk, sess.ID, inv.ParticipantID, sessions.Reissue{}); err != nil {
		t.Fatalf("an hour later: %v", err)
	}
}

func metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, 30*time.Second, what, cond)
}

// The SMTP server is down: the invitation is made all the same, the
// failure shows (status, metric, log), the letter is retried with a
// growing wait, and it is delivered once the server is back.
func TestMailServerDown(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		mp := testenv.StartMailpit(t, "")
		mp.Stop()
		m := newMailFixture(t, db, mp.MailpitServer)
		clerk := m.staff(t, access.Clerk)
		start := m.clock.Now().Add(48 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		retries := metric(t, "chamber_mail_messages_total", map[string]string{"kind": "invitation", "result": "retry"})
		to := address("down")
		inv := m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: to})
		state := func() sessions.InvitationMail {
			list, err := m.svc.InvitationMails(ctx, clerk, sess.ID)
			if err != nil || len(list) != 1 {
				t.Fatalf("%v %v", list, err)
			}
			return list[0]
		}
		// The failure is recorded (with its back-off) before time moves.
		waitFor(t, "the first attempt", func() bool { s := state(); return s.Attempts == 1 && s.LastError != "" })
		if s := state(); s.Status != sessions.MailPending {
			t.Fatalf("after a failed attempt: %+v", s)
		}
		if got := metric(t, "chamber_mail_messages_total", map[string]string{"kind": "invitation", "result": "retry"}); got != retries+1 {
			t.Errorf("retry metric %v, want %v", got, retries+1)
		}
		if !strings.Contains(m.logs.String(), "mail delivery failed; will retry") {
			t.Error("the failure is not logged")
		}
		m.pass(t, 31*time.Second) // first back-off: 30 s
		if s := state(); s.Attempts != 2 {
			t.Fatalf("after the first back-off: %+v", s)
		}
		mp.Start()
		m.pass(t, 31*time.Second) // the second back-off is 60 s: not yet
		if s := state(); s.Attempts != 2 || len(mp.Search(t, to)) != 0 {
			t.Fatalf("retried before its back-off: %+v", s)
		}
		m.pass(t, 30*time.Second)
		got := inbox(t, mp.MailpitServer, to, 1)[0]
		if got.token() != inv.Token {
			t.Error("the delivered letter lost its link")
		}
		if s := state(); s.Status != sessions.MailSent || s.Attempts != 3 {
			t.Errorf("after delivery: %+v", s)
		}
		if e := m.entries(t, sess.ID, "invitation.sent"); len(e) != 1 || !strings.Contains(string(e[0].Details), `"attempts":3`) {
			t.Errorf("journal: %v", e)
		}
		m.noSecrets(t, inv.Token)
	})
}

// A letter the server refuses fails at once, visibly; one that keeps
// failing is given up after the last attempt. Either way its token is
// erased.
func TestMailFailure(t *testing.T) {
	ctx := context.Background()
	t.Run("refused", func(t *testing.T) {
		mp := testenv.StartMailpit(t, "", "--smtp-allowed-recipients", "^ok-")
		m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp.MailpitServer)
		clerk := m.staff(t, access.Clerk)
		sess := m.hearing(t, clerk, nil)
		inv := m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: address("refused")})
		waitFor(t, "the refusal", func() bool { return len(m.entries(t, sess.ID, "invitation.mail_failed")) == 1 })
		list, _ := m.svc.InvitationMails(ctx, clerk, sess.ID)
		if list[0].Status != sessions.MailFailed || list[0].Attempts != 1 {
			t.Errorf("%+v", list[0])
		}
		if e := m.entries(t, sess.ID, "invitation.mail_failed")[0]; !strings.Contains(string(e.Details), `"permanent":true`) {
			t.Errorf("journal: %s", e.Details)
		}
		m.noSecrets(t, inv.Token)
	})
	t.Run("given up", func(t *testing.T) {
		mp := testenv.StartMailpit(t, "")
		mp.Stop()
		m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp.MailpitServer, func(c *sessions.MailConfig) { c.MaxAttempts = 2 })
		clerk := m.staff(t, access.Clerk)
		sess := m.hearing(t, clerk, nil)
		inv := m.inviteTo(t, clerk, sess.ID, "Mari", access.Witness, &sessions.Contact{Email: address("givenup")})
		waitFor(t, "the first failure", func() bool {
			l, _ := m.svc.InvitationMails(ctx, clerk, sess.ID)
			return l[0].Attempts == 1 && l[0].LastError != ""
		})
		m.pass(t, time.Minute)
		list, _ := m.svc.InvitationMails(ctx, clerk, sess.ID)
		if list[0].Status != sessions.MailFailed || list[0].Attempts != 2 {
			t.Errorf("%+v", list[0])
		}
		if e := m.entries(t, sess.ID, "invitation.mail_failed"); len(e) != 1 || !strings.Contains(string(e[0].Details), `"permanent":false`) {
			t.Errorf("journal: %v", e)
		}
		m.noSecrets(t, inv.Token)
	})
}

// Reminders go out 24 h and 1 h before, once each — also across a
// restart — only to invitations still valid, and not for a moment that
// passed before the person was told the time.
func TestReminders(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMailFixture(t, db, mp)
		clerk := m.staff(t, access.Clerk)
		t0 := m.clock.Now()
		start := t0.Add(48 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		a, short, revoked, late := address("a"), address("short"), address("revoked"), address("late")
		m.inviteTo(t, clerk, sess.ID, "Anna", access.Party, &sessions.Contact{Email: a, Language: "et", TimeZone: "Europe/Tallinn"})
		expires := t0.Add(30 * time.Hour)
		if _, err := m.svc.Invite(ctx, clerk, sess.ID, sessions.NewInvitation{Name: "Short", Role: access.Witness, ExpiresAt: &expires,
			Contact: &sessions.Contact{Email: short}}); err != nil {
			t.Fatal(err)
		}
		r := m.inviteTo(t, clerk, sess.ID, "Revoked", access.Witness, &sessions.Contact{Email: revoked})
		inbox(t, mp, a, 1)
		inbox(t, mp, short, 1)
		inbox(t, mp, revoked, 1)
		if err := m.svc.RevokeInvitation(ctx, clerk, sess.ID, r.ParticipantID); err != nil {
			t.Fatal(err)
		}
		inbox(t, mp, revoked, 2)

		// 24 hours before.
		m.pass(t, 24*time.Hour)
		ra := inbox(t, mp, a, 2)[1]
		if ra.Subject != "Meeldetuletus: Tamm v Kask" || !strings.Contains(ra.Text, "umbes 24 tunni pärast") || len(ra.Attachments) != 0 {
			t.Errorf("reminder: %s\n%s", ra.Subject, ra.Text)
		}
		inbox(t, mp, short, 2)
		// Someone invited after the 24-hour moment is not reminded of it.
		m.pass(t, time.Minute)
		m.inviteTo(t, clerk, sess.ID, "Late", access.Witness, &sessions.Contact{Email: late})
		inbox(t, mp, late, 1)

		// Once each, also after a restart.
		m.pass(t, 10*time.Minute)
		m.stop()
		m.fixture = m.service(t, db)
		m.pass(t, 10*time.Minute)

		// 1 hour before: Anna and Late; not Short, whose invitation has
		// expired, nor Revoked.
		m.pass(t, start.Add(-time.Hour).Sub(m.clock.Now()))
		if r := inbox(t, mp, a, 3)[2]; !strings.Contains(r.Text, "umbes 60 minuti pärast") {
			t.Errorf("1 h reminder:\n%s", r.Text)
		}
		inbox(t, mp, late, 2)
		m.pass(t, time.Minute)
		for addr, want := range map[string]int{a: 3, short: 2, revoked: 2, late: 2} {
			if n := len(mp.Search(t, addr)); n != want {
				t.Errorf("%s received %d messages, want %d", addr, n, want)
			}
		}
		var reminders int
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox WHERE kind = 'reminder'`).Scan(&reminders)
		if reminders != 4 {
			t.Errorf("%d reminders queued, want 4", reminders)
		}
	})
}

// A session closed before its time is called off: whoever was told of it
// receives a CANCEL, and letters still waiting are dropped. One closed
// after its time sends nothing.
func TestCloseCallsOff(t *testing.T) {
	mp := testenv.Mailpit(t)
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMailFixture(t, db, mp)
		clerk := m.staff(t, access.Clerk)
		start := m.clock.Now().Add(48 * time.Hour)
		sess := m.hearing(t, clerk, &start)
		told, waiting := address("told"), address("waiting")
		m.inviteTo(t, clerk, sess.ID, "Told", access.Witness, &sessions.Contact{Email: told})
		first := inbox(t, mp, told, 1)[0]
		m.stop()
		m.inviteTo(t, clerk, sess.ID, "Waiting", access.Witness, &sessions.Contact{Email: waiting})
		if _, err := m.svc.Close(ctx, clerk, sess.ID); err != nil {
			t.Fatal(err)
		}

		soon := m.clock.Now().Add(time.Hour)
		past := m.hearing(t, clerk, &soon)
		after := address("after")
		m.run(t, m.svc)
		m.inviteTo(t, clerk, past.ID, "After", access.Witness, &sessions.Contact{Email: after})
		inbox(t, mp, after, 1)
		c := inbox(t, mp, told, 2)[1]
		if c.method != "CANCEL" || c.uid != first.uid || c.sequence != 1 || c.status != "CANCELLED" {
			t.Errorf("called off: method %s uid %s seq %d status %s", c.method, c.uid, c.sequence, c.status)
		}
		m.pass(t, 2*time.Hour)
		if _, err := m.svc.Close(ctx, clerk, past.ID); err != nil {
			t.Fatal(err)
		}
		marker := address("marker")
		m.inviteTo(t, clerk, m.hearing(t, clerk, nil).ID, "Marker", access.Witness, &sessions.Contact{Email: marker})
		inbox(t, mp, marker, 1)
		m.pass(t, time.Second)
		if n, w := len(mp.Search(t, after)), len(mp.Search(t, waiting)); n != 1 || w != 0 {
			t.Errorf("after its time %d letters (want 1); never told %d (want 0)", n, w)
		}
		m.noSecrets(t)
	})
}

// With the server down, a pass stops after a few failures in a row instead
// of waiting on every letter of the outbox in turn.
func TestMailServerDownEndsPass(t *testing.T) {
	mp := testenv.StartMailpit(t, "")
	mp.Stop()
	m := newMailFixture(t, databasetest.Open(t, database.SQLite), mp.MailpitServer)
	m.stop()
	clerk := m.staff(t, access.Clerk)
	sess := m.hearing(t, clerk, nil)
	for i := range 5 {
		m.inviteTo(t, clerk, sess.ID, "P"+strconv.Itoa(i), access.Witness, &sessions.Contact{Email: address("pass")})
	}
	// A fresh service: the stopped one's wake-up from the invitations is
	// still pending and would start a second pass at once.
	m.fixture = m.service(t, m.db)
	if !m.clock.BlockUntil(1, 30*time.Second) {
		t.Fatal("the first pass did not end")
	}
	var attempts, tried int
	m.db.QueryRowContext(context.Background(), `SELECT SUM(attempts), COUNT(*) FILTER (WHERE attempts > 0) FROM mail_outbox`).Scan(&attempts, &tried)
	if attempts != 3 || tried != 3 {
		t.Fatalf("the pass made %d attempts at %d letters, want 3 and 3", attempts, tried)
	}
}
