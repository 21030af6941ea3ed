package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPConfig says how to reach the SMTP server.
type SMTPConfig struct {
	Host string
	Port int
	// ImplicitTLS speaks TLS from the first byte (smtps://, port 465).
	// Otherwise the connection is upgraded with STARTTLS, which is
	// required unless the server is on a loopback address.
	ImplicitTLS bool
	Username    string
	Password    string
	// RootCAs verifies the server's certificate; nil means the system's.
	RootCAs *x509.CertPool
	// From is the sender of every message.
	From Address
	// Timeout bounds each SMTP command; 30 s if zero.
	Timeout time.Duration
}

// ParseSMTPURL reads an SMTP server's URL:
//
//	smtp://user:pass@host:587   STARTTLS (required), port 587 by default
//	smtps://user:pass@host:465  implicit TLS, port 465 by default
//	smtp://127.0.0.1:1025       loopback: STARTTLS only if the server offers it
//
// User name and password are URL-encoded and optional. Errors never repeat
// the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, errors.New("mail: the SMTP URL cannot be parsed (want smtp://[user:pass@]host[:port] or smtps://…)")
	}
	var cfg SMTPConfig
	switch u.Scheme {
	case "smtp":
		cfg.Port = 587
	case "smtps":
		cfg.ImplicitTLS, cfg.Port = true, 465
	default:
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: no path or query is understood", u.Redacted())
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s names no host", u.Redacted())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: bad port", u.Redacted())
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	return cfg, nil
}

// String describes the server without its password.
func (c SMTPConfig) String() string {
	scheme := "smtp"
	if c.ImplicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	return u.String()
}

// loopback reports whether the server is on this machine, where a plain
// connection crosses no network.
func (c SMTPConfig) loopback() bool {
	if c.Host == "localhost" {
		return true
	}
	ip := net.ParseIP(c.Host)
	return ip != nil && ip.IsLoopback()
}

// SMTP sends messages through an SMTP server, one connection per message.
type SMTP struct {
	cfg SMTPConfig
}

// NewSMTP checks the configuration; it does not connect.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if cfg.Host == "" || cfg.Port == 0 {
		return nil, errors.New("mail: no SMTP server")
	}
	from, err := ParseAddress(cfg.From.Email)
	if err != nil {
		return nil, fmt.Errorf("mail: sender address: %v", err)
	}
	cfg.From.Email = from
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &SMTP{cfg: cfg}, nil
}

// From is the sender address.
func (s *SMTP) From() Address { return s.cfg.From }

// String describes the server without its password.
func (s *SMTP) String() string { return s.cfg.String() }

func (s *SMTP) client() (*gomail.Client, error) {
	tlsConf := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(tlsConf),
	}
	switch {
	case s.cfg.ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case s.cfg.loopback():
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		// Auto-discovery never offers the password in the clear: PLAIN
		// and LOGIN are chosen only over TLS.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	return gomail.NewClient(s.cfg.Host, opts...)
}

// Send delivers m. A 5xx refusal of the recipient or of the data is a
// *RejectedError; anything else (connection, TLS, authentication, 4xx)
// is worth retrying.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	c, err := s.client()
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err == nil || msg.IsDelivered() {
		// Delivered; a failure after the data was accepted (RSET, QUIT)
		// does not undo that.
		return nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 &&
		(se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPData || se.Reason == gomail.ErrSMTPDataClose) {
		return &RejectedError{Code: se.ErrorCode(), Err: err}
	}
	return fmt.Errorf("mail: send via %s: %w", s.cfg, err)
}

// build turns m into a MIME message: text/plain, and for an invitation a
// multipart/alternative with text/calendar (which calendar programs act
// on) plus the same object as an .ics attachment (for those that do not).
func (s *SMTP) build(m Message) (*gomail.Msg, error) {
	if m.ID == "" || strings.ContainsAny(m.ID, "<>\r\n \t") {
		return nil, errors.New("mail: a message needs a Message-ID without brackets or spaces")
	}
	msg := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP))
	if err := msg.FromFormat(oneLine(s.cfg.From.Name), s.cfg.From.Email); err != nil {
		return nil, fmt.Errorf("mail: sender: %w", err)
	}
	if err := msg.AddToFormat(oneLine(m.To.Name), m.To.Email); err != nil {
		return nil, fmt.Errorf("mail: recipient: %w", err)
	}
	msg.Subject(oneLine(m.Subject))
	msg.SetMessageIDWithValue(m.ID)
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	if m.Language != "" {
		msg.SetGenHeader(gomail.HeaderContentLang, oneLine(m.Language))
	}
	// RFC 3834: an automatic message; no vacation replies, please.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if c := m.Calendar; c != nil {
		if c.Method != MethodRequest && c.Method != MethodCancel {
			return nil, errors.New("mail: calendar method must be REQUEST or CANCEL")
		}
		msg.AddAlternativeString(gomail.ContentType("text/calendar; method="+c.Method), string(c.Data))
		name := c.FileName
		if name == "" {
			name = "invitation.ics"
		}
		if err := msg.AttachReader(name, bytes.NewReader(c.Data),
			gomail.WithFileContentType(gomail.ContentType("application/ics"))); err != nil {
			return nil, fmt.Errorf("mail: attach %s: %w", name, err)
		}
	}
	return msg, nil
}

// oneLine keeps a header value on one line whatever a user typed.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}
