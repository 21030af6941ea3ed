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
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Server is a running `chamber serve`.
type Server struct {
	Bin     string // the chamber binary
	DataDir string // its --data-dir
	URL     string // http://127.0.0.1:port, also its --public-url
	LogPath string // its stdout and stderr
	Mail    bool   // it sends invitation e-mail (--smtp-url)

	cmd  *exec.Cmd
	done chan error
}

// Build compiles ./cmd/chamber (from the module root root) into dir, unless
// CHAMBER_TEST_BINARY names a binary already built.
func Build(ctx context.Context, root, dir string) (string, error) {
	if bin := os.Getenv("CHAMBER_TEST_BINARY"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "chamber")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/chamber")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/chamber: %w\n%s", err, out)
	}
	return bin, nil
}

// Start runs bin as `chamber serve` on free loopback ports with a fresh data
// directory under dir, and returns once /readyz answers 200.
func Start(ctx context.Context, bin, dir string, extraArgs ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, DataDir: filepath.Join(dir, "data"), URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		LogPath: filepath.Join(dir, "server.log"), done: make(chan error, 1)}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data-dir", s.DataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--public-url", s.URL, "--media-udp-port", "0", "--media-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0",
		"--metrics-listen", "off", // its fixed default port would collide with any other server on the machine
		"--log-level", "debug"}, extraArgs...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /readyz until it answers 200, the server exits, or the
// deadline passes.
func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ready(ctx) {
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("chamber serve exited: %v\n%s", err, s.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("chamber serve not ready after %v\n%s", limit, s.LogTail())
		case <-tick.C:
		}
	}
}

func (s *Server) ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	if err != nil {
		return false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// Stop interrupts the server and waits up to 15 s before killing it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

// LogTail is the last few kilobytes of the server's log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// Staff adds a staff member with the operator command and returns their
// ID (staff hold no token: they sign in, or get an API token with Token).
func (s *Server) Staff(ctx context.Context, name, role string) (string, error) {
	return s.operator(ctx, "staff", "add", "--name", name, "--role", role)
}

// Token gives a staff member an API token (chamber token add) for an hour.
func (s *Server) Token(ctx context.Context, staffID, scopes string) (string, error) {
	return s.operator(ctx, "token", "add", "--staff", staffID, "--scope", scopes, "--expires", "1h")
}

// operator runs an operator command on the server's data directory and
// returns what it printed on stdout.
func (s *Server) operator(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Bin, append(args, "--data-dir", s.DataDir)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chamber %s: %w\n%s", strings.Join(args[:2], " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// Env is the environment a scenario reads (lib/harness.mjs).
func (s *Server) Env() []string {
	env := []string{"CHAMBER_E2E_URL=" + s.URL, "CHAMBER_E2E_BIN=" + s.Bin, "CHAMBER_E2E_DATA=" + s.DataDir}
	if s.Mail {
		env = append(env, "CHAMBER_E2E_MAIL=1")
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
