package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/mail"
)

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		in       string
		want     mail.SMTPConfig
		refused  bool
		describe string
	}{
		{in: "smtp://user:p%40ss@mail.example.org", want: mail.SMTPConfig{Host: "mail.example.org", Port: 587, Username: "user", Password: "p@ss"},
			describe: "smtp://user@mail.example.org:587"},
		{in: "smtps://mail.example.org", want: mail.SMTPConfig{Host: "mail.example.org", Port: 465, ImplicitTLS: true},
			describe: "smtps://mail.example.org:465"},
		{in: "smtp://127.0.0.1:2525", want: mail.SMTPConfig{Host: "127.0.0.1", Port: 2525}, describe: "smtp://127.0.0.1:2525"},
		{in: "smtp://[::1]:2525", want: mail.SMTPConfig{Host: "::1", Port: 2525}, describe: "smtp://[::1]:2525"},
		{in: "http://mail.example.org", refused: true},
		{in: "mail.example.org:587", refused: true},
		{in: "smtp://", refused: true},
		{in: "smtp://host:0", refused: true},
		{in: "smtp://host:99999", refused: true},
		{in: "smtp://user:secret@host/path", refused: true},
		{in: "smtp://user:secret@host?tls=off", refused: true},
	}
	for _, tt := range tests {
		got, err := mail.ParseSMTPURL(tt.in)
		if tt.refused {
			if err == nil {
				t.Errorf("%q accepted: %+v", tt.in, got)
			} else if strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: the error repeats the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%q = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.String() != tt.describe {
			t.Errorf("%q described as %q, want %q", tt.in, got.String(), tt.describe)
		}
	}
}

func smtpTo(t *testing.T, addr string, mutate ...func(*mail.SMTPConfig)) *mail.SMTP {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := mail.SMTPConfig{Host: host, From: mail.Address{Name: "Harju Maakohus", Email: "kohus@kohus.example"}, Timeout: 10 * time.Second}
	fmt.Sscan(port, &cfg.Port)
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testMessage(to string) mail.Message {
	return mail.Message{
		ID:       uuid.NewString() + "@kohus.example",
		To:       mail.Address{Name: "Mari Tamm", Email: to},
		Subject:  "Kutse: Tamm v Kask\r\nBcc: evil@example.org",
		Text:     "Lugupeetud Mari Tamm\n\nTeid kutsutakse osalema kohtuistungil „Tamm v Kask“.\n",
		Language: "et",
		Calendar: &mail.Calendar{Method: mail.MethodRequest, FileName: "invitation.ics",
			Data: []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n")},
	}
}

func recipient() string { return "r-" + uuid.NewString()[:13] + "@example.org" }

// A message reaches a real SMTP server as a calendar invitation: plain
// text, a text/calendar alternative with the method, the .ics attachment,
// and headers a user cannot break.
func TestSMTPDelivers(t *testing.T) {
	mp := testenv.Mailpit(t)
	to := recipient()
	msg := testMessage(to)
	if err := smtpTo(t, mp.SMTP).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	got := mp.WaitMessages(t, to, 1, 10*time.Second)
	m := mp.Message(t, got[0].ID)
	if m.MessageID != msg.ID {
		t.Errorf("Message-ID %q, want %q", m.MessageID, msg.ID)
	}
	if m.Subject != "Kutse: Tamm v Kask Bcc: evil@example.org" {
		t.Errorf("subject %q: a line break reached the header", m.Subject)
	}
	if m.From.Address != "kohus@kohus.example" || m.From.Name != "Harju Maakohus" {
		t.Errorf("from %+v", m.From)
	}
	if !strings.Contains(m.Text, "kohtuistungil „Tamm v Kask“") {
		t.Errorf("text %q", m.Text)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].FileName != "invitation.ics" || m.Attachments[0].ContentType != "application/ics" {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	if ics := mp.Part(t, got[0].ID, m.Attachments[0].PartID); string(ics) != string(msg.Calendar.Data) {
		t.Errorf("attachment %q", ics)
	}
	raw := string(mp.Raw(t, got[0].ID))
	for _, want := range []string{"text/calendar; method=REQUEST", "multipart/alternative", "Auto-Submitted: auto-generated", "Content-Language: et"} {
		if !strings.Contains(raw, want) {
			t.Errorf("the source lacks %q", want)
		}
	}
	if strings.Contains(raw, "\r\nBcc:") {
		t.Error("a Bcc header was injected")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, pool
}

// STARTTLS with a verified certificate, then authentication: the server
// refuses mail before STARTTLS, so delivery proves the upgrade happened.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	cert, key, pool := selfSigned(t)
	passwords := filepath.Join(t.TempDir(), "passwords")
	os.WriteFile(passwords, []byte("chamber:s3cret\n"), 0o600)
	mp := testenv.StartMailpit(t, "", "--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls", "--smtp-auth-file", passwords)

	to := recipient()
	good := smtpTo(t, mp.SMTP, func(c *mail.SMTPConfig) { c.RootCAs, c.Username, c.Password = pool, "chamber", "s3cret" })
	if err := good.Send(context.Background(), testMessage(to)); err != nil {
		t.Fatal(err)
	}
	mp.WaitMessages(t, to, 1, 10*time.Second)

	for name, mutate := range map[string]func(*mail.SMTPConfig){
		"wrong password":        func(c *mail.SMTPConfig) { c.RootCAs, c.Username, c.Password = pool, "chamber", "wrong" },
		"untrusted certificate": func(c *mail.SMTPConfig) { c.Username, c.Password = "chamber", "s3cret" },
		"no credentials at all": func(c *mail.SMTPConfig) { c.RootCAs = pool },
	} {
		err := smtpTo(t, mp.SMTP, mutate).Send(context.Background(), testMessage(recipient()))
		if err == nil {
			t.Errorf("%s: delivered", name)
		} else if mail.IsPermanent(err) {
			t.Errorf("%s: %v counted as a refusal of the message, which would drop it for good", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error repeats the password: %v", name, err)
		}
	}
}

// smtps: TLS from the first byte.
func TestSMTPImplicitTLS(t *testing.T) {
	cert, key, pool := selfSigned(t)
	mp := testenv.StartMailpit(t, "", "--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-tls", "--smtp-auth-accept-any")
	to := recipient()
	s := smtpTo(t, mp.SMTP, func(c *mail.SMTPConfig) { c.ImplicitTLS, c.RootCAs = true, pool })
	if err := s.Send(context.Background(), testMessage(to)); err != nil {
		t.Fatal(err)
	}
	mp.WaitMessages(t, to, 1, 10*time.Second)
}

// A 5xx to RCPT TO is a permanent refusal of that message; a server that
// cannot be reached is not.
func TestSMTPRefusalIsPermanent(t *testing.T) {
	mp := testenv.StartMailpit(t, "", "--smtp-allowed-recipients", "^ok-")
	s := smtpTo(t, mp.SMTP)
	err := s.Send(context.Background(), testMessage("nobody@example.org"))
	if !mail.IsPermanent(err) {
		t.Fatalf("a refused recipient: %v, want a permanent error", err)
	}
	ok := "ok-" + recipient()
	if err := s.Send(context.Background(), testMessage(ok)); err != nil {
		t.Fatal(err)
	}
	mp.WaitMessages(t, ok, 1, 10*time.Second)

	mp.Stop()
	err = s.Send(context.Background(), testMessage(ok))
	if err == nil || mail.IsPermanent(err) {
		t.Fatalf("a server that is down: %v, want a temporary error", err)
	}
}

// Malformed messages are refused before anything is sent, by a server
// that would accept a good one.
func TestSMTPRefusesBadMessages(t *testing.T) {
	s := smtpTo(t, testenv.Mailpit(t).SMTP)
	if err := s.Send(context.Background(), testMessage(recipient())); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*mail.Message){
		"no id":           func(m *mail.Message) { m.ID = "" },
		"id with bracket": func(m *mail.Message) { m.ID = "<x@y>" },
		"bad recipient":   func(m *mail.Message) { m.To.Email = "not an address" },
		"bad method":      func(m *mail.Message) { m.Calendar.Method = "PUBLISH" },
	} {
		m := testMessage("x@example.org")
		mutate(&m)
		if err := s.Send(context.Background(), m); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
}
