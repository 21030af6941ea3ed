package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
)

// One server serves every scenario of the package; each scenario file runs
// in its own node process with its own browsers.
var (
	binOnce sync.Once
	bin     string
	binErr  error
	srvOnce sync.Once
	srv     *Server
	srvErr  error
	workDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	if workDir != "" && os.Getenv("CHAMBER_TEST_KEEP") == "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// binary builds the chamber binary once for the package.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		workDir, binErr = os.MkdirTemp("", "chamber-e2e-")
		if binErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, binErr = Build(ctx, "..", workDir)
	})
	if binErr != nil {
		t.Fatalf("building chamber: %v", binErr)
	}
	return bin
}

func server(t *testing.T) *Server {
	t.Helper()
	b := binary(t)
	srvOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// With mailpit (scripts/test), invitations may carry an e-mail
		// contact, as the console's invite form offers.
		var mail []string
		if smtp := os.Getenv(testenv.EnvSMTP); smtp != "" {
			mail = []string{"--smtp-url", "smtp://" + smtp, "--mail-from", "Chamber e2e <e2e@chamber.test>"}
		}
		if srv, srvErr = Start(ctx, b, workDir, mail...); srvErr == nil {
			srv.Mail = len(mail) > 0
		}
	})
	if srvErr != nil {
		t.Fatalf("starting chamber: %v", srvErr)
	}
	return srv
}

// scenario runs one scenario file with node in the given engines: each
// engine is a subtest, each file one node process (its own browsers).
func scenario(t *testing.T, file string, engines ...string) {
	t.Helper()
	scenarioOn(t, nil, nil, file, engines...)
}

// scenarioOn runs a scenario against s (nil: the package's server), with
// extra environment for node.
func scenarioOn(t *testing.T, s *Server, extra []string, file string, engines ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	node := testenv.Command(t, "node")
	if _, err := os.Stat("node_modules/puppeteer-core"); err != nil {
		if testenv.CI() {
			t.Fatal(ErrNoModules)
		}
		t.Skip(ErrNoModules)
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			run(t, s, extra, node, file, engine)
		})
	}
}

func run(t *testing.T, s *Server, extra []string, node, file, engine string) {
	env := append([]string{"CHAMBER_E2E_BROWSER=" + engine}, extra...)
	for _, e := range []string{"chromium", "firefox"} {
		if e != engine && !(engine == "mixed") {
			continue
		}
		p := BrowserPath(e)
		if p == "" {
			if testenv.CI() {
				t.Fatalf("%s is required under CI=true (scripts/test installs it)", e)
			}
			t.Skipf("%s is not installed; run ./scripts/test", e)
		}
		env = append(env, "CHAMBER_E2E_"+map[string]string{"chromium": "CHROMIUM", "firefox": "FIREFOX"}[e]+"="+p)
	}
	if s == nil {
		s = server(t)
	}
	shots := os.Getenv("CHAMBER_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	env = append(env, "CHAMBER_SCREENSHOT_DIR="+shots)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", file)
	cmd.Env = append(append(os.Environ(), s.Env()...), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s in %s: %v\n%s", file, engine, time.Since(start).Round(100*time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("%s (%s): %v\nscreenshots in %s\nserver warnings and errors:\n%s\nserver log, the end:\n%s", file, engine, err, shots, s.LogProblems(), s.LogTail())
	}
}

// The full matrix runs on Chromium; Firefox ESR runs media both ways,
// presenting and joining and leaving; mixed pairs put one person in each.

func TestHearing(t *testing.T)  { scenario(t, "hearing.test.mjs", "chromium", "firefox") }
func TestMixed(t *testing.T)    { scenario(t, "mixed.test.mjs", "mixed") }
func TestPresent(t *testing.T)  { scenario(t, "present.test.mjs", "chromium", "firefox") }
func TestCeremony(t *testing.T) { scenario(t, "ceremony.test.mjs", "chromium") }
func TestPlayback(t *testing.T) { scenario(t, "playback.test.mjs", "chromium") }

// TestAVSync records five minutes of one browser with a reload (docs/recording.md).
func TestAVSync(t *testing.T) { scenario(t, "avsync.test.mjs", "chromium") }

// TestScenarioFiles fails when a scenario file exists that no test runs.
func TestScenarioFiles(t *testing.T) {
	files, err := filepath.Glob("*.test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	run := map[string]bool{"hearing.test.mjs": true, "mixed.test.mjs": true, "present.test.mjs": true, "ceremony.test.mjs": true, "verify.test.mjs": true,
		"playback.test.mjs": true, "avsync.test.mjs": true, "openid.test.mjs": true,
		"reauth.test.mjs": true}
	for _, f := range files {
		if !run[f] {
			t.Errorf("%s is not run by any Go test", f)
		}
	}
	if len(files) == 0 {
		t.Error(fmt.Errorf("no scenario files"))
	}
}
