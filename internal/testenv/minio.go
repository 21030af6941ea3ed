package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/wait"
)

// MinIOServer is a MinIO server of the test's own, which the test may
// kill, freeze (SIGSTOP) and start again, or run on a small file system.
type MinIOServer struct {
	S3
	t    testing.TB
	bin  string
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// StartMinIO starts a private MinIO server storing in dir (a fresh
// temporary directory when empty) and waits until it is ready. It is
// stopped when the test ends.
func StartMinIO(t testing.TB, dir string) *MinIOServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	m := &MinIOServer{
		S3:  S3{Endpoint: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), AccessKey: "chamber-fault", SecretKey: "chamber-fault-secret"},
		t:   t,
		bin: MinIOBinary(t),
		dir: dir,
	}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}

// Start starts the server (again) on the same address and directory and
// waits until it answers.
func (m *MinIOServer) Start() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "server", m.dir, "--quiet", "--address", m.Endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", FreePort(m.t)))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the test binary
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan error, 1)
	go func() { m.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// cluster, not live: live answers as soon as the process listens,
		// while requests still get "Server not initialized yet".
		if resp, err := http.Get("http://" + m.Endpoint + "/minio/health/cluster"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-m.done:
			m.t.Fatalf("MinIO exited: %v", err)
		case <-time.After(100 * time.Millisecond): // polling the server's health endpoint, with a deadline
		}
	}
	m.t.Fatal("MinIO did not become ready")
}

// Kill kills the server at once (SIGKILL), as a crash would.
func (m *MinIOServer) Kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT) // a frozen process dies too
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Freeze stops the server's process (SIGSTOP): connections stay open and
// nothing answers, as with a hung server. It returns once every thread of
// the process is stopped: kill(2) only queues the signal, and until the
// thread chosen to take it is scheduled, the others go on serving — on a
// loaded machine long enough to answer the test's next request.
func (m *MinIOServer) Freeze() {
	m.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		m.t.Fatal(err)
	}
	pid := m.cmd.Process.Pid
	wait.For(m.t, 30*time.Second, fmt.Sprintf("every thread of MinIO (pid %d) to stop", pid), func() bool {
		stopped, err := Stopped(pid)
		if err != nil {
			m.t.Fatal(err)
		}
		return stopped
	})
}

// Thaw lets a frozen server run again (SIGCONT).
func (m *MinIOServer) Thaw() {
	m.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		m.t.Fatal(err)
	}
}

// Dir is where the server stores.
func (m *MinIOServer) Dir() string { return m.dir }
