package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file is the one way tests start the real binary: the browser tests
// (e2e), the fault tests (faults), the binary's own tests (cmd/chamber)
// and the soak run all run it with StartChamber.

// EnvChamberBinary names a chamber binary already built, which Build then
// returns instead of building one.
const EnvChamberBinary = "CHAMBER_TEST_BINARY"

// Build compiles ./cmd/chamber of the module rooted at root into dir
// (with the race detector when race is set), unless CHAMBER_TEST_BINARY
// names a binary already built.
func Build(ctx context.Context, root, dir string, race bool) (string, error) {
	if bin := os.Getenv(EnvChamberBinary); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "chamber")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.CommandContext(ctx, "go", append(args, "./cmd/chamber")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/chamber: %w\n%s", err, out)
	}
	return bin, nil
}

// ChamberConfig says how to run `chamber serve`.
type ChamberConfig struct {
	Bin string // the binary (Build)
	// Dir is the working directory of the server and of the operator
	// commands (Command). It holds the server's log (server.log) and,
	// unless DataDir says otherwise, its data directory: the binary's
	// default, ./data, as on a first start with no configuration.
	Dir string
	// DataDir, when set, is passed as CHAMBER_DATA_DIR.
	DataDir string
	// Env is the storage configuration (CHAMBER_DATABASE,
	// CHAMBER_S3_ENDPOINT, …) as environment variables, so that the
	// operator commands (Command) open the same database and store as the
	// server; each command takes the variables of the flags it has.
	Env []string
	// Args are further flags of chamber serve.
	Args []string
}

// Chamber is a running `chamber serve` on loopback ports of its own: the
// public listener (URL) and the metrics listener (MetricsURL). It can be
// killed and started again on the same ports and data.
type Chamber struct {
	Bin        string
	DataDir    string
	URL        string // http://127.0.0.1:port, also its --public-url
	MetricsURL string // http://127.0.0.1:port of GET /metrics
	LogPath    string // stdout and stderr of every run, appended

	dir  string
	env  []string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	err  error         // its exit status, once done
	runs int
}

// StartChamber runs chamber serve with a fresh data directory (unless one
// is given) on free loopback ports, and returns once /readyz answers 200.
func StartChamber(ctx context.Context, cfg ChamberConfig) (*Chamber, error) {
	c := &Chamber{
		Bin:     cfg.Bin,
		DataDir: cfg.DataDir,
		LogPath: filepath.Join(cfg.Dir, "server.log"),
		dir:     cfg.Dir,
		env:     CleanEnv(),
	}
	if c.DataDir == "" {
		c.DataDir = filepath.Join(cfg.Dir, "data")
	} else {
		c.env = append(c.env, "CHAMBER_DATA_DIR="+c.DataDir)
	}
	c.env = append(c.env, cfg.Env...)
	// A free port is free when it is chosen, not necessarily when the
	// server binds it: another test's process may take it in between.
	// Such a start is tried again on other ports.
	for attempt := 1; ; attempt++ {
		if err := c.choosePorts(cfg.Args); err != nil {
			return nil, err
		}
		logged := len(c.Log())
		err := c.Restart(ctx)
		if err == nil {
			return c, nil
		}
		c.Kill() // a server that never became ready is not left running
		if attempt == 5 || !strings.Contains(c.Log()[logged:], "address already in use") {
			return nil, err
		}
	}
}

// choosePorts picks free loopback ports for the public and the metrics
// listener and sets the server's arguments to them, then args.
func (c *Chamber) choosePorts(args []string) error {
	port, err := freeTCPPort()
	if err != nil {
		return err
	}
	mport, err := freeTCPPort()
	if err != nil {
		return err
	}
	c.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	c.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d", mport)
	c.args = append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--public-url", c.URL,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport),
		"--media-udp-port", "0", "--media-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0"}, args...)
	return nil
}

// CleanEnv is the environment without the developer's CHAMBER_* settings,
// for a chamber process under test (CHAMBER_TEST_* stay: they describe
// the test servers).
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CHAMBER_") && !strings.HasPrefix(kv, "CHAMBER_TEST_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Restart starts the server again — after Kill or Stop — on the same
// ports, data and configuration, and waits until /readyz answers 200.
func (c *Chamber) Restart(ctx context.Context) error {
	c.mu.Lock()
	if c.cmd != nil {
		c.mu.Unlock()
		return errors.New("chamber serve is still running")
	}
	c.runs++
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "=== chamber serve, run %d, %s\n", c.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.Bin, c.args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	// A test binary that dies (a timeout's panic) takes the server along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(done)
	}()
	return c.WaitReady(ctx, 90*time.Second)
}

// PID is the process ID of the running server (0 when none runs).
func (c *Chamber) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Done is closed when the current process exits.
func (c *Chamber) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// WaitReady polls /readyz until it answers 200, the process exits, or
// limit passes.
func (c *Chamber) WaitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := c.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if code, _ := c.Ready(ctx); code == http.StatusOK {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("chamber serve exited: %v\n%s", c.exitErr(), c.LogTail())
		case <-ctx.Done():
			code, body := c.Ready(context.Background())
			return fmt.Errorf("chamber serve not ready after %v (/readyz %d %s)\n%s", limit, code, body, c.LogTail())
		case <-tick.C:
		}
	}
}

func (c *Chamber) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Ready asks /readyz once and returns its status and body (0 when the
// server does not answer).
func (c *Chamber) Ready(ctx context.Context) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
	if err != nil {
		return 0, err.Error()
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b)
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// has exited.
func (c *Chamber) Kill() {
	c.signal(syscall.SIGKILL, 0)
}

// Stop asks the server to stop (SIGTERM) and waits up to 30 s before
// killing it. It reports how the process ended: nil for exit status 0.
func (c *Chamber) Stop() error {
	return c.signal(syscall.SIGTERM, 30*time.Second)
}

// Signal sends sig to the running server without waiting for anything
// (SIGSTOP to hang it, SIGQUIT for its goroutines' stacks in the log).
func (c *Chamber) Signal(sig os.Signal) error {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return errors.New("chamber serve is not running")
	}
	return cmd.Process.Signal(sig)
}

func (c *Chamber) signal(sig syscall.Signal, grace time.Duration) error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	var err error
	select {
	case <-done:
		err = c.exitErr()
	case <-time.After(grace):
		// SIGQUIT first: the Go runtime writes every goroutine's stack to
		// the log, which shows what the shutdown waits for.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		err = fmt.Errorf("chamber serve did not stop within %v of %v", grace, sig)
	}
	if sig == syscall.SIGKILL {
		err = nil // killed, as asked
	}
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	return err
}

// Command runs an operator command (chamber staff add, journal verify,
// evidence reconcile, …) on the server's data and storage, and returns its
// stdout, stderr and exit code.
func (c *Chamber) Command(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if cmd.ProcessState == nil {
		return "", "", -1, err
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), nil
}

// Staff adds a staff member with the operator command and returns what
// it prints: the staff member's ID.
func (c *Chamber) Staff(ctx context.Context, name, role string) (string, error) {
	out, errOut, code, err := c.Command(ctx, "staff", "add", "--name", name, "--role", role)
	if err != nil || code != 0 {
		return "", fmt.Errorf("chamber staff add: exit %d %v\n%s", code, err, errOut)
	}
	return strings.TrimSpace(out), nil
}

// StaffToken adds a staff member (chamber staff add) and gives them an API
// token of the given scopes valid for a day (chamber token add); it
// returns the staff ID and the token.
func (c *Chamber) StaffToken(ctx context.Context, name, role, scopes string) (id, token string, err error) {
	if id, err = c.Staff(ctx, name, role); err != nil {
		return "", "", err
	}
	out, errOut, code, err := c.Command(ctx, "token", "add", "--staff", id, "--scope", scopes, "--expires", "24h", "--name", "tests")
	if err != nil || code != 0 || !strings.HasPrefix(out, "cha_") {
		return "", "", fmt.Errorf("chamber token add: exit %d %v %q\n%s", code, err, out, errOut)
	}
	return id, strings.TrimSpace(out), nil
}

// Metric reads one sample from GET /metrics: the sum of the series of name
// whose labels include every given name="value" pair (none: all series).
// A metric with no such series is 0.
func (c *Chamber) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.MetricsURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	return SumMetric(res.Body, name, labels...)
}

// SumMetric adds up the samples of name in a Prometheus text exposition
// whose labels include every given name="value" pair.
func SumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name || !hasLabels(lbls, labels) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

func hasLabels(have string, want []string) bool {
	have = "," + strings.TrimSuffix(have, "}")
	for _, l := range want {
		if !strings.Contains(have, ","+l) {
			return false
		}
	}
	return true
}

// Log is the server's whole log, every run's.
func (c *Chamber) Log() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// LogProblems is every warning and error line of the server's log but
// pion's (the last 200 of them): what a failed test needs to say why, when
// the tail has long scrolled past it.
func (c *Chamber) LogProblems() string {
	var lines []string
	for _, line := range strings.Split(c.Log(), "\n") {
		problem := strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
			strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)
		if problem && !strings.Contains(line, " pion=") && !strings.Contains(line, `"pion":`) {
			lines = append(lines, line)
		}
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	return strings.Join(lines, "\n")
}

// LogTail is the last few kilobytes of the server's log.
func (c *Chamber) LogTail() string {
	b, _ := os.ReadFile(c.LogPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
