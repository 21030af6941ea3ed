package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
)

// binary is the chamber binary built once for the tests that run it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chamber-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chamber")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building chamber:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running chamber serve, started the one way tests start the
// binary (testenv.StartChamber), in a directory that is also where the
// operator commands of the test run (chamber).
type server struct {
	*testenv.Chamber
	dir string
}

// startServer runs chamber serve in dir (an empty temp dir when "") with
// the given extra environment and arguments, and waits until /readyz
// answers 200. Its log is reported when the test fails.
func startServer(t testing.TB, dir string, env []string, args ...string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := testenv.StartChamber(t.Context(), testenv.ChamberConfig{Bin: binary, Dir: dir, Env: env, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", c.Log())
		}
	})
	return &server{Chamber: c, dir: dir}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeZeroConfig is the README's first command: chamber serve in an
// empty directory with nothing but a port.
func TestServeZeroConfig(t *testing.T) {
	s := startServer(t, "", nil)
	if code, body := get(t, s.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	code, body := get(t, s.URL+"/readyz")
	if code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Checks["database"] != "ok" || ready.Checks["evidence"] != "ok" {
		t.Fatalf("/readyz body %s", body)
	}
	get(t, s.URL+"/no/such/path")
	// The metrics are the operator's: on their own listener, not the public one.
	if code, _ := get(t, s.URL+"/metrics"); code != 404 {
		t.Fatalf("the public listener serves /metrics: %d", code)
	}
	code, body = get(t, s.MetricsURL+"/metrics")
	if code != 200 || !strings.Contains(body, "chamber_http_requests_total") {
		t.Fatalf("/metrics = %d, lacks chamber_http_requests_total", code)
	}
	for _, want := range []string{`route="GET /healthz"`, `route="unmatched"`, "go_goroutines", "process_cpu_seconds_total", "chamber_http_request_duration_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/no/such/path") {
		t.Error("a raw path became a metric label")
	}
	for _, f := range []string{"data/chamber.db", "data/evidence", "data/pki/ca.crt"} {
		if _, err := os.Stat(filepath.Join(s.dir, f)); err != nil {
			t.Errorf("zero-config start did not create %s: %v", f, err)
		}
	}
	// The web client is served, with its security headers, and listed.
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("GET / = %d, headers %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("API responses lack the security headers: %v", resp.Header)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "" {
		t.Fatalf("plain HTTP with an http public URL sends Strict-Transport-Security %q", v)
	}
	_, body = get(t, s.URL+"/api/v1/openapi.json")
	var doc struct {
		Paths map[string]any `json:"paths"`
		Pages []string       `json:"x-pages"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GET /join/{token}", "GET /verify", "GET /{$}"} {
		if !slices.Contains(doc.Pages, want) {
			t.Errorf("openapi.json x-pages lacks %s: %v", want, doc.Pages)
		}
	}
	for _, want := range []string{"/api/v1/sessions/{id}/signal", "/api/v1/verify", "/tsa", "/api/v1/sessions/{id}/bundle", "/api/v1/register"} {
		if _, ok := doc.Paths[want]; !ok {
			t.Errorf("openapi.json lacks %s", want)
		}
	}

	// Stop fails unless the exit status is 0.
	if err := s.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !regexpLine(s.Log(), `msg="metrics serving"`, "listen="+strings.TrimPrefix(s.MetricsURL, "http://")) {
		t.Errorf("the server did not log its metrics listener:\n%s", s.Log())
	}
	// One log line per request with route, status and duration.
	if !regexpLine(s.Log(), `route="GET /readyz"`, "status=200", "duration=") {
		t.Errorf("no request log line for /readyz:\n%s", s.Log())
	}
}

func regexpLine(logs string, parts ...string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		ok := true
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func TestBadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil, "flag provided but not defined"},
		{"unparsable database", []string{"serve", "--database", "mysql://x"}, nil, "unrecognised database URL"},
		{"unreachable database", []string{"serve", "--database", "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, nil, "cannot reach"},
		{"bad env value", []string{"serve"}, []string{"CHAMBER_SHUTDOWN_TIMEOUT=soon"}, "CHAMBER_SHUTDOWN_TIMEOUT"},
		{"bad log format", []string{"serve", "--log-format", "xml"}, nil, "--log-format"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"node on SQLite", []string{"serve", "--node-id", "a"}, nil, "--node-id needs PostgreSQL"},
		{"node on an SQLite file", []string{"serve", "--node-id", "a", "--database", "sqlite:x.db"}, nil, "--node-id needs PostgreSQL"},
		{"node NAT IPs without a node", []string{"serve", "--node-nat-ips", "a=192.0.2.1"}, nil, "--node-nat-ips needs --node-id"},
		{"malformed node NAT IPs", []string{"serve", "--node-id", "a", "--database", "postgres://x@127.0.0.1:1/x", "--node-nat-ips", "a=nowhere"}, nil, "is not node-id=IP"},
		{"node NAT IPs without this node", []string{"serve", "--node-id", "c", "--database", "postgres://x@127.0.0.1:1/x", "--node-nat-ips", "a=192.0.2.1"}, nil, "no address for node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, tt.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(testenv.CleanEnv(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr should be one line containing %q, got:\n%s", tt.want, stderr.String())
			}
			if strings.Contains(stderr.String(), "goroutine ") {
				t.Fatal("stack trace on stderr")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "chamber ") || !strings.Contains(string(out), "go1.") || !strings.Contains(string(out), "commit") {
		t.Fatalf("version output %q", out)
	}
}

func TestEnvironmentVariables(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, "", []string{"CHAMBER_DATA_DIR=" + filepath.Join(dir, "elsewhere"), "CHAMBER_LOG_FORMAT=json"})
	get(t, s.URL+"/healthz")
	if _, err := os.Stat(filepath.Join(dir, "elsewhere", "chamber.db")); err != nil {
		t.Fatalf("CHAMBER_DATA_DIR ignored: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Log(), `"route":"GET /healthz"`) {
		t.Fatalf("CHAMBER_LOG_FORMAT=json ignored:\n%s", s.Log())
	}
}
