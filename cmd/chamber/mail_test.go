package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/internal/testenv"
)

// TestInvitationEmailEndToEnd runs chamber serve with --smtp-url pointing
// at a real SMTP server: the invitation e-mail arrives with the time in
// the server's default zone, its link opens the join page and joins the
// session over signalling, and the token is in neither the journal nor the
// server's log.
func TestInvitationEmailEndToEnd(t *testing.T) {
	mp := testenv.Mailpit(t)
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk").Token
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1", "--smtp-url", "smtp://"+mp.SMTP,
		"--mail-from", "Harju Maakohus <kohus@kohus.example>", "--mail-time-zone", "Europe/Tallinn")

	start := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Minute)
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "scheduled_at": start}, 201, &sess)
	to := "mari-" + uuid.NewString()[:12] + "@example.org"
	var inv struct {
		ParticipantID string `json:"participant_id"`
		Token         string `json:"token"`
		Mail          string `json:"mail"`
	}
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk,
		map[string]any{"name": "Mari Tamm", "role": "witness", "contact": map[string]any{"email": to}}, 201, &inv)
	if inv.Mail != "pending" {
		t.Fatalf("mail %q", inv.Mail)
	}
	msg := mp.Message(t, mp.WaitMessages(t, to, 1, 30*time.Second)[0].ID)
	if !regexp.MustCompile(`\(Europe/Tallinn, UTC\+0[23]:00\)`).MatchString(msg.Text) {
		t.Errorf("the default zone is not used:\n%s", msg.Text)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(s.URL) + `/join/(chi_[A-Za-z0-9_-]{43})`).FindStringSubmatch(msg.Text)
	if link == nil || link[1] != inv.Token {
		t.Fatalf("no join link with the invitation's token in:\n%s", msg.Text)
	}
	if status, _ := get(t, link[0]); status != 200 {
		t.Fatalf("the join page answers %d", status)
	}
	p := joinPeer(t, s.URL, sess.ID, "witness", link[1], inv.ParticipantID, false)
	p.c.Close()

	var entries []struct {
		Action  string
		Details map[string]any
	}
	call(t, "GET", s.URL+"/api/v1/sessions/"+sess.ID+"/journal", clerk, nil, 200, &entries)
	sent := false
	for _, e := range entries {
		sent = sent || e.Action == "invitation.sent" && e.Details["message_id"] == msg.MessageID
	}
	if !sent {
		t.Errorf("no invitation.sent entry with the Message-ID %s", msg.MessageID)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.Log(), inv.Token[4:]) {
		t.Error("the token is in the server's log")
	}
	out, _, code := chamber(t, dir, "journal", "verify")
	if code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("journal verify: %d %s", code, out)
	}
	if strings.Contains(journalDump(t, dir), inv.Token[4:]) {
		t.Error("the token is in the journal")
	}
}

// journalDump reads every entry's details from the SQLite database in dir.
func journalDump(t *testing.T, dir string) string {
	t.Helper()
	db, err := database.Open(context.Background(), "", dir+"/data")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT details FROM journal`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		b.WriteString(d)
	}
	return b.String()
}

func TestMailBadConfiguration(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--smtp-url", "ftp://mail.example.org", "--mail-from", "k@kohus.example"}, "--smtp-url"},
		{[]string{"--smtp-url", "smtp://user:secret@mail.example.org/x", "--mail-from", "k@kohus.example"}, "--smtp-url"},
		{[]string{"--smtp-url", "smtp://127.0.0.1:2525"}, "--mail-from"},
		{[]string{"--mail-from", "k@kohus.example"}, "--smtp-url"},
		{[]string{"--smtp-url", "smtp://127.0.0.1:2525", "--mail-from", "not an address"}, "--mail-from"},
		{[]string{"--smtp-url", "smtp://127.0.0.1:2525", "--mail-from", "k@kohus.example", "--mail-time-zone", "Mars/Olympus"}, "--mail-time-zone"},
		{[]string{"--mail-reminders", "soon"}, "mail-reminders"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, binary, append([]string{"serve"}, tt.args...)...)
		cmd.Dir = t.TempDir()
		cmd.Env = testenv.CleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Run()
		cancel()
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code := cmd.ProcessState.ExitCode(); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming %s", tt.args, code, stderr.String(), tt.want)
		}
		if strings.Contains(stderr.String(), "secret") {
			t.Errorf("%v: the password is on stderr: %s", tt.args, stderr.String())
		}
	}
}
