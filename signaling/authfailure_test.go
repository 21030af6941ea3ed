package signaling

import (
	"errors"
	"fmt"
	"testing"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// A join whose token cannot be checked because the database is down must
// be retryable, never "invalid token" (which the browser takes as final).
func TestAuthFailureCodes(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fault.Unauthenticated, protocol.CodeUnauthenticated},
		{fmt.Errorf("lookup: %w", fault.NotFound), protocol.CodeUnauthenticated},
		{fmt.Errorf("x: %w", fault.Expired), protocol.CodeTokenExpired},
		{fmt.Errorf("x: %w", fault.Revoked), protocol.CodeTokenRevoked},
		{fault.Wrap(fault.Unavailable, errors.New("connection refused"), "database unavailable"), protocol.CodeUnavailable},
		{errors.New("unclassified driver error"), protocol.CodeUnavailable},
	}
	for _, tt := range tests {
		if code, _ := authFailure(tt.err); code != tt.want {
			t.Errorf("authFailure(%v) = %q, want %q", tt.err, code, tt.want)
		}
	}
}

func TestErrorForUsesFaultCodes(t *testing.T) {
	tests := []struct {
		err      error
		code     string
		internal bool
	}{
		{fault.Invalidf("text", "empty"), protocol.CodeInvalid, false},
		{fault.New(fault.Forbidden, "observers do not publish"), protocol.CodeForbidden, false},
		{unknownType("nope"), protocol.CodeUnknownType, false},
		{&protocol.Error{Code: "custom", Message: "m"}, "custom", false},
		{errors.New("secret path /var/x"), protocol.CodeInternal, true},
	}
	for _, tt := range tests {
		code, msg, internal := errorFor(tt.err)
		if code != tt.code || internal != tt.internal {
			t.Errorf("errorFor(%v) = %q, %v; want %q, %v", tt.err, code, internal, tt.code, tt.internal)
		}
		if internal && msg != "internal error" {
			t.Errorf("an internal error leaked %q", msg)
		}
	}
}
