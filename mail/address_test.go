package mail_test

import (
	netmail "net/mail"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/mail"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"mari@example.org", "mari@example.org"},
		{"  Mari.Tamm+kohus@Example.ORG ", "Mari.Tamm+kohus@example.org"},
		{"juhan@õun.ee", "juhan@xn--un-bka.ee"},
		{"консул@example.org", ""}, // non-ASCII local part
		{"Mari <mari@example.org>", ""},
		{"mari@example.org (Mari)", ""},
		{"mari@example.org, juhan@example.org", ""},
		{"group: mari@example.org;", ""},
		{"mari@localhost", ""},
		{"mari@[192.0.2.1]", ""},
		{"mari", ""},
		{"", ""},
		{"mari@example.org\r\nBcc: x@evil.example", ""},
		{"mari@exa mple.org", ""},
		{strings.Repeat("a", 65) + "@example.org", ""},
		{"a@" + strings.Repeat("b", 250) + ".org", ""},
	}
	for _, tt := range tests {
		got, err := mail.ParseAddress(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%q accepted as %q", tt.in, got)
		case tt.want != "" && err != nil:
			t.Errorf("%q refused: %v", tt.in, err)
		case got != tt.want:
			t.Errorf("%q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Whatever someone types, an accepted address is one plain address that
// fits a header and an SMTP command, and normalising it again changes
// nothing.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"mari@example.org", "juhan@õun.ee", "a\r\n@b.c", `"x y"@example.org`, "x@-bad-.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := mail.ParseAddress(s)
		if err != nil {
			return
		}
		if len(got) > mail.MaxAddress || strings.ContainsAny(got, "\r\n<>, ") && !strings.HasPrefix(got, `"`) {
			t.Fatalf("%q accepted as %q", s, got)
		}
		a, err := netmail.ParseAddress(got)
		if err != nil || a.Address != got || a.Name != "" {
			t.Fatalf("%q accepted as %q, which net/mail reads as %v, %v", s, got, a, err)
		}
		again, err := mail.ParseAddress(got)
		if err != nil || again != got {
			t.Fatalf("%q: normalised %q, then %q, %v", s, got, again, err)
		}
	})
}
