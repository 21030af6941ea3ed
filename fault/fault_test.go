package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type publicErr struct{}

type codedErr struct{}

func (codedErr) Error() string     { return "the PDF is malformed" }
func (codedErr) FaultKind() Kind   { return Invalid }
func (codedErr) FaultCode() string { return "malformed_pdf" }

func (publicErr) Error() string   { return "role witness may not upload" }
func (publicErr) FaultKind() Kind { return Forbidden }

func TestDescribe(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	tests := []struct {
		name      string
		err       error
		kind      Kind
		code, msg string
		fields    map[string]string
	}{
		{"plain error is internal and says nothing", secret, Internal, "internal", "internal error", nil},
		{"wrapped kind hides the wrapping text", fmt.Errorf("session 1234: %w", NotFound), NotFound, "not_found", "not found", nil},
		{"New keeps its message", New(Conflict, "the session is closed"), Conflict, "conflict", "the session is closed", nil},
		{"Invalidf names the field", Invalidf("role", "unknown role %q", "king"), Invalid, "invalid", `role: unknown role "king"`, map[string]string{"role": `unknown role "king"`}},
		{"Wrap shows the message, not the cause", Wrap(Unavailable, secret, "the database is unavailable"), Unavailable, "unavailable", "the database is unavailable", nil},
		{"specific code", &Error{Kind: Invalid, Code: "malformed_pdf", Message: "truncated"}, Invalid, "malformed_pdf", "truncated", nil},
		{"an internal *Error reveals nothing", &Error{Kind: Internal, Message: "/var/lib/x: disk error"}, Internal, "internal", "internal error", nil},
		{"wrapped *Error", fmt.Errorf("upload: %w", New(TooLarge, "over 10 bytes")), TooLarge, "too_large", "over 10 bytes", nil},
		{"public typed error", fmt.Errorf("x: %w", publicErr{}), Forbidden, "forbidden", "role witness may not upload", nil},
		{"public typed error with a code", fmt.Errorf("x: %w", codedErr{}), Invalid, "malformed_pdf", "the PDF is malformed", nil},
		{"canceled context", fmt.Errorf("read: %w", context.Canceled), Canceled, "canceled", "canceled", nil},
		{"unknown kind value", Kind(200), Internal, "internal", "internal error", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.kind && tt.kind != Internal {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			code, msg, fields := Describe(tt.err)
			if code != tt.code || msg != tt.msg {
				t.Errorf("Describe = %q, %q; want %q, %q", code, msg, tt.code, tt.msg)
			}
			if fmt.Sprint(fields) != fmt.Sprint(tt.fields) {
				t.Errorf("fields = %v, want %v", fields, tt.fields)
			}
		})
	}
}

func TestIs(t *testing.T) {
	cause := errors.New("cause")
	err := fmt.Errorf("outer: %w", Wrap(Unavailable, cause, "down"))
	if !errors.Is(err, Unavailable) || !errors.Is(err, cause) {
		t.Fatal("errors.Is must match both the kind and the cause")
	}
	if errors.Is(err, NotFound) {
		t.Fatal("errors.Is matched another kind")
	}
	if !errors.Is(fmt.Errorf("x: %w", Revoked), Revoked) {
		t.Fatal("a wrapped Kind must match itself")
	}
}

func TestRetry(t *testing.T) {
	err := fmt.Errorf("x: %w", &Error{Kind: RateLimited, RetryAfter: 3 * time.Second})
	if RetryAfter(err) != 3*time.Second || !KindOf(err).Retryable() {
		t.Fatal("retry hint lost")
	}
	if Forbidden.Retryable() || RetryAfter(errors.New("x")) != 0 {
		t.Fatal("not retryable")
	}
}

func TestCodesAreUnique(t *testing.T) {
	seen := map[string]Kind{}
	for k := Internal; int(k) < len(codes); k++ {
		c := k.Code()
		if c == "" || messages[k] == "" {
			t.Fatalf("kind %d has no code or message", k)
		}
		if prev, ok := seen[c]; ok {
			t.Fatalf("kinds %d and %d share code %q", prev, k, c)
		}
		seen[c] = k
	}
	if len(codes) != len(messages) {
		t.Fatal("codes and messages differ in length")
	}
}
