package main

import (
	"fmt"
	netmail "net/mail"
	"slices"
	"strings"
	"time"

	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/mail/letters"
	"github.com/chamber-court/chamber/sessions"
)

// mailFlags configure outgoing e-mail: invitations with a calendar
// attachment, changes of time, withdrawals and reminders.
type mailFlags struct {
	smtpURL   string
	from      string
	zone      string
	reminders durationList
}

func (m *mailFlags) register(c *command) {
	c.fs.StringVar(&m.smtpURL, "smtp-url", "", "SMTP server for invitation e-mail: smtp://user:pass@host:587 (STARTTLS), smtps://…:465 (TLS); empty = no e-mail")
	c.fs.StringVar(&m.from, "mail-from", "", `sender of invitation e-mail, e.g. "Harju Maakohus <noreply@kohus.example>"; required with --smtp-url`)
	c.fs.StringVar(&m.zone, "mail-time-zone", "UTC", "IANA time zone for contacts that give none, e.g. Europe/Tallinn")
	m.reminders = durationList{24 * time.Hour, time.Hour}
	c.fs.Var(&m.reminders, "mail-reminders", `how long before a session reminders are e-mailed, e.g. "24h,1h"; "none" for none`)
}

// config builds the session layer's mail configuration; nil when e-mail
// is off. Errors are configuration errors (exit status 2).
func (m *mailFlags) config() (*sessions.MailConfig, error) {
	if m.smtpURL == "" {
		if m.from != "" {
			return nil, usagef("chamber serve: --mail-from needs --smtp-url")
		}
		return nil, nil
	}
	smtpCfg, err := mail.ParseSMTPURL(m.smtpURL)
	if err != nil {
		return nil, usagef("chamber serve: --smtp-url: %v", err)
	}
	if m.from == "" {
		return nil, usagef("chamber serve: --smtp-url needs --mail-from (the sender address)")
	}
	from, err := netmail.ParseAddress(m.from)
	if err != nil {
		return nil, usagef("chamber serve: --mail-from %q: want an address, optionally with a name: \"Harju Maakohus <noreply@kohus.example>\"", m.from)
	}
	zone, err := letters.LoadZone(m.zone)
	if err != nil {
		return nil, usagef("chamber serve: --mail-time-zone: %v", err)
	}
	smtpCfg.From = mail.Address{Name: from.Name, Email: from.Address}
	sender, err := mail.NewSMTP(smtpCfg)
	if err != nil {
		return nil, usagef("chamber serve: --mail-from: %v", err)
	}
	return &sessions.MailConfig{
		Sender: sender, From: sender.From(), TimeZone: zone,
		Reminders: slices.Clone([]time.Duration(m.reminders)),
	}, nil
}

// durationList is a flag of comma-separated durations ("24h,1h"), or
// "none" for an empty list.
type durationList []time.Duration

func (d *durationList) String() string {
	if len(*d) == 0 {
		return "none"
	}
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

func (d *durationList) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		*d = durationList{}
		return nil
	}
	var out durationList
	for _, part := range strings.Split(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || v <= 0 || v > 30*24*time.Hour {
			return fmt.Errorf("%q is not a lead time between 1s and 720h", part)
		}
		out = append(out, v)
	}
	*d = out
	return nil
}
