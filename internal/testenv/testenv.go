// Package testenv tells tests where the real servers they need are running.
//
// scripts/test starts PostgreSQL, MinIO and mailpit on loopback and exports
// their addresses; this package reads them. When a server is missing, a test is
// skipped on a developer machine but fails under CI=true, so CI can never go
// green by silently skipping the integration tests.
package testenv

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Environment variables exported by scripts/test.
const (
	EnvPostgres    = "CHAMBER_TEST_POSTGRES"      // PostgreSQL URL of an empty database the tests may use
	EnvS3Endpoint  = "CHAMBER_TEST_S3_ENDPOINT"   // host:port of a MinIO server (plain HTTP)
	EnvS3AccessKey = "CHAMBER_TEST_S3_ACCESS_KEY" // MinIO root user
	EnvS3SecretKey = "CHAMBER_TEST_S3_SECRET_KEY" // MinIO root password
	EnvMinIOBinary = "CHAMBER_TEST_MINIO_BIN"     // path of the minio binary, for tests that stop and start it
)

// S3 holds the address and credentials of the MinIO server under test.
type S3 struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// CI reports whether the tests run under CI, where missing servers are failures.
func CI() bool { return os.Getenv("CI") == "true" }

// missing skips t, or fails it under CI.
func missing(t testing.TB, what string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s is required under CI=true but is not available (run ./scripts/test)", what)
	}
	t.Skipf("%s not available; run ./scripts/test to start it", what)
}

// Postgres returns the URL of the PostgreSQL server under test.
func Postgres(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvPostgres)
	if u == "" {
		missing(t, "PostgreSQL ("+EnvPostgres+")")
	}
	return u
}

// MinIO returns the MinIO server under test.
func MinIO(t testing.TB) S3 {
	t.Helper()
	s := S3{
		Endpoint:  os.Getenv(EnvS3Endpoint),
		AccessKey: os.Getenv(EnvS3AccessKey),
		SecretKey: os.Getenv(EnvS3SecretKey),
	}
	if s.Endpoint == "" || s.AccessKey == "" || s.SecretKey == "" {
		missing(t, "MinIO ("+EnvS3Endpoint+")")
	}
	return s
}

// MinIOBinary returns the path of the minio server binary.
func MinIOBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvMinIOBinary); p != "" {
		return p
	}
	return Command(t, "minio")
}

// Command returns the path of an external program the test needs
// (chromium, pdfsig, qpdf, ffprobe, certutil, openssl, …).
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "the "+name+" command")
	}
	return p
}

// Chromium returns the path of the Chromium browser.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "Chromium")
	return ""
}

// PostgresDB creates a fresh, empty database on the PostgreSQL server under
// test, drops it when the test ends, and returns its URL. Tests that run in
// parallel packages each get their own database this way.
func PostgresDB(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: bad %s: %v", EnvPostgres, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer admin.Close()
	name := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), dbCounter.Add(1))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u.Path = "/" + name
	return u.String()
}

var dbCounter atomic.Int64

// FreePort returns a TCP port on loopback that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
