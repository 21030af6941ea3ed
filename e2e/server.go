// Package e2e runs Chamber end to end in real browsers: the binary
// (`chamber serve`) on free loopback ports with a fresh data directory, and
// Debian's Chromium and Firefox ESR driven by puppeteer-core (Chromium over
// CDP, Firefox over WebDriver BiDi). Every end-to-end browser test starts
// the server through Start and the browsers through e2e/lib/browsers.mjs;
// the scenarios are written once, in JavaScript, and run in either engine.
//
// This file is the Go half: building and starting the binary, adding staff
// with the operator command, and running a scenario file with node. It is a
// normal (non-test) file so that other packages' end-to-end tests can start
// the same server the same way.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/chamber-court/chamber/internal/testenv"
)

// Server is a running `chamber serve`, started the one way every test
// starts the binary (testenv.StartChamber).
type Server struct {
	*testenv.Chamber
	Mail bool // it sends invitation e-mail (--smtp-url)
}

// Build compiles ./cmd/chamber (from the module root root) into dir, unless
// CHAMBER_TEST_BINARY names a binary already built.
func Build(ctx context.Context, root, dir string) (string, error) {
	return testenv.Build(ctx, root, dir, false)
}

// Start runs bin as `chamber serve` on free loopback ports with a fresh data
// directory under dir, and returns once /readyz answers 200.
func Start(ctx context.Context, bin, dir string, extraArgs ...string) (*Server, error) {
	c, err := testenv.StartChamber(ctx, testenv.ChamberConfig{Bin: bin, Dir: dir, Args: append([]string{"--log-level", "debug"}, extraArgs...)})
	if err != nil {
		return nil, err
	}
	return &Server{Chamber: c}, nil
}

// Stop interrupts the server and waits for it to exit.
func (s *Server) Stop() { _ = s.Chamber.Stop() }

// Token gives a staff member an API token (chamber token add) for an hour.
func (s *Server) Token(ctx context.Context, staffID, scopes string) (string, error) {
	out, errOut, code, err := s.Command(ctx, "token", "add", "--staff", staffID, "--scope", scopes, "--expires", "1h")
	if err != nil || code != 0 || !strings.HasPrefix(out, "cha_") {
		return "", fmt.Errorf("chamber token add: exit %d %v %q\n%s", code, err, out, errOut)
	}
	return strings.TrimSpace(out), nil
}

// Env is the environment a scenario reads (lib/harness.mjs).
func (s *Server) Env() []string {
	env := []string{"CHAMBER_E2E_URL=" + s.URL, "CHAMBER_E2E_BIN=" + s.Bin, "CHAMBER_E2E_DATA=" + s.DataDir}
	if s.Mail {
		env = append(env, "CHAMBER_E2E_MAIL=1")
	}
	return env
}

// ErrNoModules means e2e/node_modules is missing: scripts/test installs it.
var ErrNoModules = errors.New("e2e/node_modules missing: run ./scripts/test (npm ci in e2e/)")

// Browsers lists the engines a scenario can run in, with their programs.
var Browsers = map[string][]string{
	"chromium": {"chromium", "chromium-browser"},
	"firefox":  {"firefox-esr", "firefox"},
}

// BrowserPath finds the program of an engine on the PATH ("" if none).
func BrowserPath(engine string) string {
	for _, name := range Browsers[engine] {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
