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

func server(t *testing.T) *Server {
	t.Helper()
	srvOnce.Do(func() {
		workDir, srvErr = os.MkdirTemp("", "chamber-e2e-")
		if srvErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var bin string
		if bin, srvErr = Build(ctx, "..", workDir); srvErr != nil {
			return
		}
		srv, srvErr = Start(ctx, bin, workDir)
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
			run(t, node, file, engine)
		})
	}
}

func run(t *testing.T, node, file, engine string) {
	env := []string{"CHAMBER_E2E_BROWSER=" + engine}
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
	s := server(t)
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
		t.Fatalf("%s (%s): %v\nscreenshots in %s\nserver log:\n%s", file, engine, err, shots, s.LogTail())
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
		"playback.test.mjs": true, "avsync.test.mjs": true}
	for _, f := range files {
		if !run[f] {
			t.Errorf("%s is not run by any Go test", f)
		}
	}
	if len(files) == 0 {
		t.Error(fmt.Errorf("no scenario files"))
	}
}
