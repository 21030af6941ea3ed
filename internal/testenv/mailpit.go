package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/wait"
)

// Environment variables scripts/test exports for mailpit, a real SMTP
// server with an HTTP API that lists and reads what it received.
const (
	EnvSMTP          = "CHAMBER_TEST_SMTP"        // host:port of mailpit's SMTP listener (plain, loopback)
	EnvMailpitAPI    = "CHAMBER_TEST_MAILPIT_API" // base URL of mailpit's HTTP API
	EnvMailpitBinary = "CHAMBER_TEST_MAILPIT_BIN" // path of the mailpit binary, for tests that stop and start one
)

// MailpitServer is a running mailpit: where to send mail and where to read it.
type MailpitServer struct {
	SMTP string // host:port
	API  string // http://host:port
}

// Mailpit returns the mailpit server under test. Tests running in parallel
// packages share it, so each test sends to addresses of its own and reads
// only those (Search, WaitMessages).
func Mailpit(t testing.TB) MailpitServer {
	t.Helper()
	m := MailpitServer{SMTP: os.Getenv(EnvSMTP), API: strings.TrimRight(os.Getenv(EnvMailpitAPI), "/")}
	if m.SMTP == "" || m.API == "" {
		missing(t, "mailpit ("+EnvSMTP+", "+EnvMailpitAPI+")")
	}
	return m
}

// MailpitBinary returns the path of the mailpit binary.
func MailpitBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvMailpitBinary); p != "" {
		return p
	}
	return Command(t, "mailpit")
}

// MailAddress is a mailbox as mailpit reports it.
type MailAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// MailSummary is one message in a mailpit listing.
type MailSummary struct {
	ID        string        `json:"ID"`
	MessageID string        `json:"MessageID"`
	From      MailAddress   `json:"From"`
	To        []MailAddress `json:"To"`
	Subject   string        `json:"Subject"`
}

// MailPart is an attachment of a message.
type MailPart struct {
	PartID      string `json:"PartID"`
	FileName    string `json:"FileName"`
	ContentType string `json:"ContentType"`
}

// MailMessage is one message as mailpit parsed it.
type MailMessage struct {
	MailSummary
	Text        string     `json:"Text"`
	HTML        string     `json:"HTML"`
	Attachments []MailPart `json:"Attachments"`
}

func (m MailpitServer) get(t testing.TB, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.API+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpit %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit %s: status %d, %v: %s", path, resp.StatusCode, err, b)
	}
	return b
}

// Search lists the messages addressed to the given recipient, newest first.
func (m MailpitServer) Search(t testing.TB, to string) []MailSummary {
	t.Helper()
	var res struct {
		Messages []MailSummary `json:"messages"`
	}
	b := m.get(t, "/api/v1/search?limit=500&query="+url.QueryEscape(`to:"`+to+`"`))
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("mailpit search: %v", err)
	}
	// mailpit's search matches substrings; keep exact recipients only.
	var out []MailSummary
	for _, s := range res.Messages {
		for _, a := range s.To {
			if strings.EqualFold(a.Address, to) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// WaitMessages polls until at least n messages to the recipient have
// arrived, or fails the test after within. It returns them oldest first.
func (m MailpitServer) WaitMessages(t testing.TB, to string, n int, within time.Duration) []MailSummary {
	t.Helper()
	var got []MailSummary
	if !wait.WithinEvery(within, 50*time.Millisecond, func() bool {
		got = m.Search(t, to)
		return len(got) >= n
	}) {
		t.Fatalf("mailpit: %d messages to %s after %v, want %d", len(got), to, within, n)
	}
	for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
		got[i], got[j] = got[j], got[i]
	}
	return got
}

// Message reads one message.
func (m MailpitServer) Message(t testing.TB, id string) MailMessage {
	t.Helper()
	var msg MailMessage
	if err := json.Unmarshal(m.get(t, "/api/v1/message/"+url.PathEscape(id)), &msg); err != nil {
		t.Fatalf("mailpit message: %v", err)
	}
	return msg
}

// Part downloads one attachment of a message.
func (m MailpitServer) Part(t testing.TB, id, partID string) []byte {
	t.Helper()
	return m.get(t, "/api/v1/message/"+url.PathEscape(id)+"/part/"+url.PathEscape(partID))
}

// Raw returns a message's source as received.
func (m MailpitServer) Raw(t testing.TB, id string) []byte {
	t.Helper()
	return m.get(t, "/api/v1/message/"+url.PathEscape(id)+"/raw")
}

// MailpitProcess is a mailpit a test started for itself, to stop and start
// it again or to run it with options of its own (TLS, authentication).
type MailpitProcess struct {
	MailpitServer
	t    testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMailpit runs a private mailpit whose SMTP listener is smtpAddr
// (host:port; "" picks a free loopback port) with extra arguments, waits
// until it is ready and stops it when the test ends.
func StartMailpit(t testing.TB, smtpAddr string, extra ...string) *MailpitProcess {
	t.Helper()
	bin := MailpitBinary(t)
	if smtpAddr == "" {
		smtpAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	api := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	args := append([]string{"--smtp", smtpAddr, "--listen", api, "--database", t.TempDir() + "/mailpit.db",
		"--disable-version-check", "--smtp-disable-rdns", "--quiet"}, extra...)
	p := &MailpitProcess{MailpitServer: MailpitServer{SMTP: smtpAddr, API: "http://" + api}, t: t, args: append([]string{bin}, args...)}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start runs the process (again) and waits until its API answers.
func (p *MailpitProcess) Start() {
	p.t.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, io.Discard
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start mailpit: %v", err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) { cmd.Wait(); close(done) }(p.cmd)
	ready := wait.WithinEvery(30*time.Second, 50*time.Millisecond, func() bool {
		select {
		case <-done:
			p.t.Fatalf("mailpit exited at start (%v)", p.args)
		default:
		}
		resp, err := http.Get(p.API + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		p.t.Fatalf("mailpit did not become ready at %s", p.API)
	}
}

// Stop ends the process and waits until it has exited.
func (p *MailpitProcess) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}
