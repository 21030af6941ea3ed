package evidencetest

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/testenv"
)

var buckets atomic.Int64

// MinIO opens a store on a fresh bucket (with Object Lock) of the MinIO
// server under test; the test is skipped without one, or fails under
// CI=true.
func MinIO(t testing.TB) *evidence.S3 {
	t.Helper()
	m := testenv.MinIO(t)
	s, err := evidence.NewS3(t.Context(), evidence.S3Config{
		Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Insecure: true,
		Bucket: fmt.Sprintf("chamber-t-%d-%d", time.Now().UnixNano(), buckets.Add(1)),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

// Local opens a store in a fresh temporary directory.
func Local(t testing.TB) *evidence.Local {
	t.Helper()
	s, err := evidence.NewLocal(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
