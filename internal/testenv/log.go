package testenv

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// Logger is a test's logger: warnings and errors go to the test's output
// (shown when it fails or with -v), everything down to debug to stderr
// when CHAMBER_TEST_LOG is set. What a server's goroutines log after the
// test ended is dropped: testing forbids writing to a finished test.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("CHAMBER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w := &testOutput{out: t.Output()}
	t.Cleanup(w.end)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testOutput writes to a test's output until the test ends.
type testOutput struct {
	mu    sync.Mutex
	out   io.Writer
	ended bool
}

func (w *testOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return len(p), nil
	}
	return w.out.Write(p)
}

func (w *testOutput) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
}
