// Package fault is Chamber's one error vocabulary. An error that can end a
// request carries a Kind; each transport maps a Kind to its own status with
// one table (the REST API to an HTTP status, signalling to an error
// message), and both send the same wire code. Packages return *Error values
// (built with New, Invalid, Wrap) or wrap a Kind, which is itself an error:
//
//	return fault.New(fault.Conflict, "the session is closed")
//	return fmt.Errorf("staff %s: %w", id, fault.NotFound)
//	if errors.Is(err, fault.Unavailable) { … }
//
// Anything without a Kind is Internal: its text stays in the log and the
// caller learns only that something failed.
package fault

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind is what went wrong, as far as a caller can act on it.
type Kind uint8

// The kinds. Their wire codes (Code) are part of the REST and signalling
// protocols: never rename one.
const (
	Internal            Kind = iota // a bug or an unexpected failure; details only in the log
	Invalid                         // a field of the request is wrong
	BadRequest                      // the request cannot be parsed at all
	NotFound                        // no such thing, or the caller may not know it exists
	Conflict                        // the thing's state forbids the change now
	Forbidden                       // the caller's role may not do this
	Unauthenticated                 // no valid credentials
	Expired                         // the credentials were valid once and have expired
	Revoked                         // the credentials were revoked
	TooLarge                        // the request or upload is over a limit
	Unsupported                     // the content type is not accepted
	RateLimited                     // too many requests; retry after a while
	Unavailable                     // a dependency (database, store) is down; retry
	InsufficientStorage             // the store cannot take more bytes
	Canceled                        // the caller went away
)

var codes = [...]string{
	Internal:            "internal",
	Invalid:             "invalid",
	BadRequest:          "bad_request",
	NotFound:            "not_found",
	Conflict:            "conflict",
	Forbidden:           "forbidden",
	Unauthenticated:     "unauthenticated",
	Expired:             "token_expired",
	Revoked:             "token_revoked",
	TooLarge:            "too_large",
	Unsupported:         "unsupported_media_type",
	RateLimited:         "rate_limited",
	Unavailable:         "unavailable",
	InsufficientStorage: "insufficient_storage",
	Canceled:            "canceled",
}

// Code is the kind's wire code.
func (k Kind) Code() string {
	if int(k) < len(codes) {
		return codes[k]
	}
	return codes[Internal]
}

func (k Kind) String() string { return k.Code() }

var messages = [...]string{
	Internal:            "internal error",
	Invalid:             "invalid request",
	BadRequest:          "malformed request",
	NotFound:            "not found",
	Conflict:            "not possible in the current state",
	Forbidden:           "forbidden",
	Unauthenticated:     "invalid or missing credentials",
	Expired:             "this link or token has expired",
	Revoked:             "this link or token has been revoked",
	TooLarge:            "too large",
	Unsupported:         "unsupported content type",
	RateLimited:         "too many requests",
	Unavailable:         "temporarily unavailable; retry",
	InsufficientStorage: "the store has no room left",
	Canceled:            "canceled",
}

// Error makes a Kind usable as a sentinel: fmt.Errorf("…: %w", fault.NotFound)
// gives an error of that kind, and errors.Is(err, fault.NotFound) tests for
// it. Its text is the kind's generic message, which is also what the caller
// is told of such an error: the wrapping text may name things (another
// session's ID, a file path) the caller must not learn.
func (k Kind) Error() string {
	if int(k) < len(messages) {
		return messages[k]
	}
	return messages[Internal]
}

// Retryable reports whether the same request may succeed later without any
// change by the caller.
func (k Kind) Retryable() bool {
	return k == Unavailable || k == RateLimited || k == InsufficientStorage
}

// Error is an error with a kind and a message fit to show the caller.
type Error struct {
	Kind Kind
	// Code is a more specific wire code within the kind, such as
	// "malformed_pdf" or "invalid_mrz"; empty means Kind.Code().
	Code string
	// Message says what went wrong in words the caller can act on. It is
	// sent over the wire, so it never carries internal details.
	Message string
	// Fields names the fields of an Invalid request and what is wrong
	// with each.
	Fields map[string]string
	// RetryAfter is a hint for RateLimited and Unavailable.
	RetryAfter time.Duration
	// Err is the cause, kept for errors.Is/As and the log.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Kind.Error()
}

// Unwrap exposes both the kind and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// WireCode is the code sent to the caller.
func (e *Error) WireCode() string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind.Code()
}

// New returns an error of kind k with a formatted message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Invalidf reports one wrong field.
func Invalidf(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Kind: Invalid, Message: field + ": " + msg, Fields: map[string]string{field: msg}}
}

// Wrap gives err a kind and a message for the caller; err stays the cause.
func Wrap(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// Public is a typed error of another package (access.ForbiddenError, say)
// whose whole text may be shown to the caller, and which has a kind. It
// may also name a wire code more specific than its kind's, with a method
// FaultCode() string.
type Public interface {
	error
	FaultKind() Kind
}

// publicCode is the wire code of a Public error.
func publicCode(pub Public) string {
	if c, ok := pub.(interface{ FaultCode() string }); ok && c.FaultCode() != "" {
		return c.FaultCode()
	}
	return pub.FaultKind().Code()
}

// KindOf returns the kind of err: that of the first *Error, Public error or
// Kind in its chain, Canceled for a canceled context, and Internal
// otherwise.
func KindOf(err error) Kind {
	if err == nil {
		return Internal
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	var pub Public
	if errors.As(err, &pub) {
		return pub.FaultKind()
	}
	var k Kind
	if errors.As(err, &k) {
		return k
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	return Internal
}

// Describe returns what may be sent to the caller about err: its wire code,
// a message, and the per-field problems. An Internal error reveals nothing.
func Describe(err error) (code, message string, fields map[string]string) {
	var fe *Error
	if errors.As(err, &fe) {
		if fe.Kind == Internal {
			return Internal.Code(), Internal.Error(), nil
		}
		return fe.WireCode(), fe.Error(), fe.Fields
	}
	var pub Public
	if errors.As(err, &pub) {
		return publicCode(pub), pub.Error(), nil
	}
	k := KindOf(err)
	return k.Code(), k.Error(), nil
}

// RetryAfter returns the retry hint carried by err, if any.
func RetryAfter(err error) time.Duration {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.RetryAfter
	}
	return 0
}
