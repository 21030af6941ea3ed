package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/chamber-court/chamber/documents"
)

// TestSigningConfirmationPolicy: --signing-confirmation defaults to
// sign-in with a provider and none without one, is read from the
// environment like every flag, and sign-in without a provider (no one
// could ever confirm) or an unknown value is a usage error.
func TestSigningConfirmationPolicy(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		env    string
		want   documents.ConfirmationPolicy
		maxAge time.Duration
		usage  bool
	}{
		{name: "no provider", want: documents.ConfirmNone, maxAge: 5 * time.Minute},
		{name: "a provider", args: []string{"--oidc-issuer", "https://id.court.test"}, want: documents.ConfirmSignIn, maxAge: 5 * time.Minute},
		{name: "a provider, none chosen", args: []string{"--oidc-issuer", "https://id.court.test", "--signing-confirmation", "none"}, want: documents.ConfirmNone, maxAge: 5 * time.Minute},
		{name: "from the environment", args: []string{"--oidc-issuer", "https://id.court.test", "--signing-reauth-max-age", "90s"}, env: "none", want: documents.ConfirmNone, maxAge: 90 * time.Second},
		{name: "sign-in without a provider", args: []string{"--signing-confirmation", "sign-in"}, usage: true},
		{name: "unknown", args: []string{"--oidc-issuer", "https://id.court.test", "--signing-confirmation", "maybe"}, usage: true},
		{name: "no max age", args: []string{"--oidc-issuer", "https://id.court.test", "--signing-reauth-max-age", "0s"}, usage: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("CHAMBER_SIGNING_CONFIRMATION", c.env)
			}
			var cfg identityConfig
			cmd := newCommand("serve")
			cfg.register(cmd)
			if err := cmd.parse(c.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			_, err := cfg.check()
			var ue *usageError
			if c.usage {
				if !errors.As(err, &ue) {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.confirmation()
			if err != nil || got != c.want || cfg.reauthMaxAge != c.maxAge {
				t.Fatalf("policy %q, max age %v (%v); want %q, %v", got, cfg.reauthMaxAge, err, c.want, c.maxAge)
			}
		})
	}
}
