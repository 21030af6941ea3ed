package testenv

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/wait"
)

func TestThreadState(t *testing.T) {
	for _, tc := range []struct {
		stat  string
		state byte
		ok    bool
	}{
		{"1234 (minio) S 1 1234", 'S', true},
		{"1234 (a) T (b) T 1 1234", 'T', true},
		{"1234 (x) R", 'R', true},
		{"1234 (x)", 0, false},
		{"garbage", 0, false},
		{"", 0, false},
	} {
		state, ok := threadState([]byte(tc.stat))
		if state != tc.state || ok != tc.ok {
			t.Errorf("threadState(%q) = %q, %v; want %q, %v", tc.stat, state, ok, tc.state, tc.ok)
		}
	}
}

// TestStopped: a process is stopped only after SIGSTOP has taken hold,
// and no longer after SIGCONT.
func TestStopped(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	stopped := func() bool {
		s, err := Stopped(pid)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if stopped() {
		t.Fatal("a running process reads as stopped")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the process to stop", stopped)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the process to run again", func() bool { return !stopped() })
	if _, err := Stopped(1 << 30); err == nil {
		t.Error("Stopped of a process that does not exist: no error")
	}
}
