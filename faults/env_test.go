package faults

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the test reads the catalog itself

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// binary is chamber, built once for the package: with the race detector
// for the fault tests, without it for the soak (whose figures are the
// product's, not the detector's).
var binary string

func TestMain(m *testing.M) {
	// The scenarios wait on servers far more than they compute: three at
	// a time on two cores keep the suite within its four minutes, unless
	// go test was told otherwise.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "3")
	}
	code := func() int {
		dir, err := os.MkdirTemp("", "chamber-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if binary, err = testenv.Build(ctx, "..", dir, os.Getenv(envSoak) == ""); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// cluster is the PostgreSQL and MinIO servers the scenarios share; each
// scenario takes a database and a bucket of its own. A scenario that
// kills or restarts a server starts its own instead.
type cluster struct {
	pg    *testenv.PostgresServer
	minio *testenv.MinIOServer
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{pg: testenv.StartPostgres(t), minio: testenv.StartMinIO(t, "")}
}

// stackConfig says what a Chamber under test runs on.
type stackConfig struct {
	pg    *testenv.PostgresServer
	minio *testenv.MinIOServer // nil: the local store in <data dir>/evidence
	// evidenceDir, with minio nil, is where the local store's directory
	// lives (a small file system); empty: inside the data directory.
	evidenceDir string
	args        []string
}

// stack is one chamber serve under test, with what the checks read behind
// its back: its database and its evidence store.
type stack struct {
	t      *testing.T
	c      *testenv.Chamber
	db     *sql.DB
	store  evidence.Store
	bucket string
	minio  *testenv.MinIOServer

	// The staff: officials are assigned to sessions and enter them as
	// themselves (docs/identity-and-access.md).
	clerk, judge, notary, officer staff
}

// staff is a staff member and their API token.
type staff struct{ id, token string }

var buckets atomic.Int64

func newStack(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	dir := t.TempDir()
	dbURL := cfg.pg.CreateDB(t)
	env := []string{"CHAMBER_DATABASE=" + dbURL, "CHAMBER_LOG_LEVEL=info"}
	s := &stack{t: t, minio: cfg.minio}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := filepath.Join(dir, "data")
	if cfg.minio != nil {
		s.bucket = fmt.Sprintf("faults-%d-%d", os.Getpid(), buckets.Add(1))
		env = append(env, "CHAMBER_S3_ENDPOINT="+cfg.minio.Endpoint, "CHAMBER_S3_INSECURE=true",
			"CHAMBER_S3_ACCESS_KEY="+cfg.minio.AccessKey, "CHAMBER_S3_SECRET_KEY="+cfg.minio.SecretKey,
			"CHAMBER_S3_BUCKET="+s.bucket, "CHAMBER_S3_OP_TIMEOUT=3s")
	} else if cfg.evidenceDir != "" {
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(cfg.evidenceDir, filepath.Join(dataDir, "evidence")); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--nat-ip", "127.0.0.1",
		// Owed work is retried, and readiness probed, every second, so
		// that the tests wait for seconds, not for the defaults' minutes.
		"--evidence-retry-interval", "1s", "--readiness-probe-interval", "1s",
		// The tests reconcile with the operator command, and only then.
		"--evidence-reconcile-interval", "0"}, cfg.args...)
	c, err := testenv.StartChamber(ctx, testenv.ChamberConfig{Bin: binary, Dir: dir, DataDir: dataDir, Env: env, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("chamber serve did not stop cleanly: %v", err)
		}
		if t.Failed() {
			// The whole log outlives the test's directory, for reading.
			kept := filepath.Join(os.TempDir(), "chamber-faults-"+strings.ReplaceAll(t.Name(), "/", "-")+".log")
			if b, err := os.ReadFile(c.LogPath); err == nil && os.WriteFile(kept, b, 0o644) == nil {
				t.Logf("server log kept in %s", kept)
			}
			t.Logf("server log (%s):\n%s", c.LogPath, c.LogTail())
		}
	})
	if s.db, err = sql.Open("pgx", dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	if cfg.minio != nil {
		s.store, err = evidence.NewS3(ctx, evidence.S3Config{Endpoint: cfg.minio.Endpoint, Bucket: s.bucket, Insecure: true,
			AccessKey: cfg.minio.AccessKey, SecretKey: cfg.minio.SecretKey})
	} else {
		s.store, err = evidence.NewLocal(filepath.Join(dataDir, "evidence"), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		who        *staff
		name, role string
	}{{&s.clerk, "Clerk Kadri Kask", "clerk"}, {&s.judge, "Judge Anne Saar", "judge"},
		{&s.notary, "Notary Mart Mets", "notary"}, {&s.officer, "Consul Jaan Saar", "embassy_officer"}} {
		if st.who.id, st.who.token, err = c.StaffToken(ctx, st.name, st.role, "sessions:write"); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// kill ends chamber serve with SIGKILL.
func (s *stack) kill() {
	s.t.Helper()
	s.c.Kill()
	s.t.Logf("chamber serve killed")
}

// restart starts chamber serve again on the same data and waits until it
// is ready.
func (s *stack) restart() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.c.Restart(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// answer is what a request got: a status, or an error when no answer
// came (the connection failed or was cut).
type answer struct {
	status int
	body   []byte
	err    error
}

func (a answer) ok() bool { return a.err == nil && a.status >= 200 && a.status < 300 }

func (a answer) String() string {
	if a.err != nil {
		return "no answer: " + a.err.Error()
	}
	b := a.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s", a.status, b)
}

// do makes one request. A body that is []byte or an io.Reader is sent as
// it is with contentType; anything else as JSON.
func (s *stack) do(ctx context.Context, method, path, token string, body any, contentType string) answer {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		buf, _ := json.Marshal(b)
		rd, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, s.c.URL+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{err: fmt.Errorf("reading the answer of %d: %w", res.StatusCode, err)}
	}
	return answer{status: res.StatusCode, body: data}
}

// call makes a request that must succeed with want, and decodes the
// answer into out (a *[]byte takes it raw).
func (s *stack) call(method, path, token string, body any, want int, out any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ct := ""
	if _, raw := body.([]byte); raw {
		ct = "application/pdf"
	}
	a := s.do(ctx, method, path, token, body, ct)
	if a.err != nil || a.status != want {
		s.t.Fatalf("%s %s = %v, want %d", method, path, a, want)
	}
	if out == nil {
		return
	}
	if b, ok := out.(*[]byte); ok {
		*b = a.body
		return
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		s.t.Fatalf("%s %s: decoding %s: %v", method, path, a.body, err)
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	wait.For(t, within, what, cond)
}

// waitMetric waits until a metric of the server satisfies cond.
func (s *stack) waitMetric(within time.Duration, name string, cond func(float64) bool, labels ...string) {
	s.t.Helper()
	var v float64
	var err error
	settled := wait.WithinEvery(within, 50*time.Millisecond, func() bool {
		v, err = s.c.Metric(context.Background(), name, labels...)
		return err == nil && cond(v)
	})
	if !settled {
		s.t.Fatalf("%s%v did not settle within %v: last %v (%v)", name, labels, within, v, err)
	}
}

// waitReady waits until /readyz answers 200.
func (s *stack) waitReady(within time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := s.c.WaitReady(ctx, within); err != nil {
		s.t.Fatal(err)
	}
}

// waitNotReady waits until /readyz answers 503 naming what.
func (s *stack) waitNotReady(within time.Duration, what string) {
	s.t.Helper()
	waitFor(s.t, within, "/readyz to report "+what+" down", func() bool {
		code, body := s.c.Ready(context.Background())
		return code == http.StatusServiceUnavailable && strings.Contains(body, what)
	})
}
