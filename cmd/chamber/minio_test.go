package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// minioServer is a MinIO server of the test's own, so the test can stop
// and restart it.
type minioServer struct {
	t        *testing.T
	bin, dir string
	addr     string
	cmd      *exec.Cmd
	done     chan error
}

func startMinIO(t *testing.T, m *minioServer) {
	t.Helper()
	cmd := exec.Command(m.bin, "server", m.dir, "--quiet", "--address", m.addr, "--console-address", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER=readyz", "MINIO_ROOT_PASSWORD=readyz-secret-123", "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan error, 1)
	go func() { m.done <- cmd.Wait() }()
	wait.For(t, 60*time.Second, "MinIO to become ready", func() bool {
		resp, err := http.Get("http://" + m.addr + "/minio/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (m *minioServer) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
}

func readyz(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Checks
}

// TestReadyzFollowsMinIO: chamber serve on PostgreSQL and MinIO is ready;
// when MinIO stops, /readyz answers 503 naming the evidence store; when
// MinIO is back, 200 again.
func TestReadyzFollowsMinIO(t *testing.T) {
	m := &minioServer{t: t, bin: testenv.MinIOBinary(t), dir: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	pg := testenv.PostgresDB(t)
	startMinIO(t, m)
	defer func() {
		if m.cmd.ProcessState == nil {
			m.stop()
		}
	}()
	s := startServer(t, "", nil, "--database", pg, "--s3-endpoint", m.addr, "--s3-insecure",
		"--s3-access-key", "readyz", "--s3-secret-key", "readyz-secret-123", "--s3-bucket", "readyz-evidence")
	if code, checks := readyz(t, s.URL); code != 200 || checks["evidence"] != "ok" || checks["database"] != "ok" {
		t.Fatalf("/readyz on PostgreSQL and MinIO = %d %v", code, checks)
	}
	m.stop()
	code, checks := readyz(t, s.URL)
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(checks["evidence"], "down") || checks["database"] != "ok" {
		t.Fatalf("/readyz with MinIO stopped = %d %v", code, checks)
	}
	startMinIO(t, m)
	if !wait.WithinEvery(30*time.Second, 200*time.Millisecond, func() bool {
		code, checks = readyz(t, s.URL)
		return code == 200
	}) {
		t.Fatalf("/readyz after MinIO came back = %d %v", code, checks)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}
