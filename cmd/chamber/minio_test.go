package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

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
	m := testenv.StartMinIO(t, "")
	pg := testenv.PostgresDB(t)
	s := startServer(t, "", nil, "--database", pg, "--s3-endpoint", m.Endpoint, "--s3-insecure",
		"--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey, "--s3-bucket", "readyz-evidence")
	if code, checks := readyz(t, s.URL); code != 200 || checks["evidence"] != "ok" || checks["database"] != "ok" {
		t.Fatalf("/readyz on PostgreSQL and MinIO = %d %v", code, checks)
	}
	m.Kill()
	code, checks := readyz(t, s.URL)
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(checks["evidence"], "down") || checks["database"] != "ok" {
		t.Fatalf("/readyz with MinIO stopped = %d %v", code, checks)
	}
	m.Start()
	if !wait.WithinEvery(30*time.Second, 200*time.Millisecond, func() bool {
		code, checks = readyz(t, s.URL)
		return code == 200
	}) {
		t.Fatalf("/readyz after MinIO came back = %d %v", code, checks)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}
