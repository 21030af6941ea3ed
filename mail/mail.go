// Package mail sends Chamber's outgoing e-mail: a plain-text letter,
// optionally with an iCalendar (RFC 5545) invitation as both a
// text/calendar alternative and an .ics attachment, through any SMTP server
// (STARTTLS, implicit TLS, or plain on loopback for tests). It knows nothing
// of sessions: the session layer composes the letters (package
// mail/letters), keeps the outbox, and decides when to retry.
package mail

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Address is a mailbox: a display name and an address.
type Address struct {
	Name  string
	Email string
}

// Message is one e-mail to one recipient.
type Message struct {
	// ID is the Message-ID without angle brackets. The outbox derives it
	// from the outbox row, so a retried message keeps its ID and a
	// receiving server can recognise a duplicate.
	ID       string
	To       Address
	Subject  string
	Text     string    // the body, plain text, UTF-8
	Language string    // Content-Language: en, et, ru
	Date     time.Time // zero: now
	// Calendar, when set, is attached as an iCalendar object.
	Calendar *Calendar
}

// Calendar is an iCalendar object with its iTIP method (REQUEST, CANCEL).
type Calendar struct {
	Method   string
	FileName string // e.g. "invitation.ics"
	Data     []byte
}

// Sender delivers a message. Implementations are safe for concurrent use.
// An error for which IsPermanent reports true will not go away by retrying
// the same message; any other error may.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// RejectedError is a permanent refusal of one message by the server (a 5xx
// reply to RCPT TO or to the message data): the address does not exist or
// the content is refused. Failures to connect, to authenticate or to start
// TLS are not rejections: they concern every message and may be fixed.
type RejectedError struct {
	Code int // the SMTP reply code
	Err  error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("mail: rejected by the server (%d): %v", e.Code, e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a permanent refusal of the message.
func IsPermanent(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}
