package evidence_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/testenv"
)

// privateS3 opens a store on a MinIO server of the test's own, with a
// short operation timeout.
func privateS3(t *testing.T, m *testenv.MinIOServer, opTimeout time.Duration) *evidence.S3 {
	t.Helper()
	s, err := evidence.NewS3(t.Context(), evidence.S3Config{
		Endpoint: m.Endpoint, Bucket: bucketName(), AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Insecure: true, PartSize: evidence.MinPartSize, OpTimeout: opTimeout, Logger: testenv.Logger(t),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

// wantKind fails unless err is of kind k.
func wantKind(t *testing.T, what string, err error, k fault.Kind) {
	t.Helper()
	if !errors.Is(err, k) {
		t.Fatalf("%s: %v (kind %s); want %s", what, err, fault.KindOf(err), k)
	}
}

// TestS3DeadServerIsUnavailable: with the server killed, every operation
// fails as fault.Unavailable, and promptly — not after minio-go's ten
// retries (10–12 s), nor after its one-minute wait for an answer.
func TestS3DeadServerIsUnavailable(t *testing.T) {
	m := testenv.StartMinIO(t, "")
	const opTimeout = 2 * time.Second
	s := privateS3(t, m, opTimeout)
	if _, err := s.Put(t.Context(), "dead/before", strings.NewReader("x"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	ops := map[string]func() error{
		"put": func() error {
			_, err := s.Put(t.Context(), "dead/after", strings.NewReader("y"), evidence.PutOptions{})
			return err
		},
		"stat":   func() error { _, err := s.Stat(t.Context(), "dead/before"); return err },
		"list":   func() error { _, err := s.List(t.Context(), "dead/"); return err },
		"retain": func() error { return s.Retain(t.Context(), "dead/before", time.Now().Add(time.Hour)) },
		"ping":   func() error { return s.Ping(t.Context()) },
		"probe":  func() error { return s.Probe(t.Context()) },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		wantKind(t, name+" on a dead server", err, fault.Unavailable)
		// A bound on a failure path, not a speed target: ten tries took
		// 10–12 s, and a failed connect fails at once.
		if took := time.Since(start); took > 2*opTimeout {
			t.Errorf("%s on a dead server took %s; want under %s", name, took, 2*opTimeout)
		}
	}
	m.Start()
	if _, err := s.Stat(t.Context(), "dead/before"); err != nil {
		t.Fatalf("Stat after the server came back: %v", err)
	}
}

// TestS3FrozenServerIsUnavailable: a server that stops answering (SIGSTOP)
// with connections open fails a small Put, a multipart Put and a Stat as
// fault.Unavailable within the operation timeout rather than holding them
// for the transport's minute; nothing half-written is visible afterwards.
func TestS3FrozenServerIsUnavailable(t *testing.T) {
	m := testenv.StartMinIO(t, "")
	const opTimeout = 2 * time.Second
	s := privateS3(t, m, opTimeout)
	if _, err := s.Put(t.Context(), "frozen/before", strings.NewReader("x"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3*evidence.MinPartSize)
	m.Freeze()
	ops := map[string]func() error{
		"put": func() error {
			_, err := s.Put(t.Context(), "frozen/small", strings.NewReader("y"), evidence.PutOptions{})
			return err
		},
		"multipart": func() error {
			_, err := s.Put(t.Context(), "frozen/big", bytes.NewReader(big), evidence.PutOptions{})
			return err
		},
		"stat":  func() error { _, err := s.Stat(t.Context(), "frozen/before"); return err },
		"probe": func() error { return s.Probe(t.Context()) },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		wantKind(t, name+" on a frozen server", err, fault.Unavailable)
		if took := time.Since(start); took > 4*opTimeout {
			t.Errorf("%s on a frozen server took %s; want about %s", name, took, opTimeout)
		}
	}
	m.Thaw()
	for _, key := range []string{"frozen/small", "frozen/big"} {
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, evidence.ErrNotFound) {
			t.Errorf("%s after the failed Put: %v; want not found", key, err)
		}
	}
}

// TestS3FullServerIsInsufficientStorage: MinIO on a small file system,
// filled up, refuses writes; the store reports fault.InsufficientStorage
// (507) for Put and for the write probe, while Ping, which only asks,
// still succeeds.
func TestS3FullServerIsInsufficientStorage(t *testing.T) {
	m := testenv.StartMinIO(t, testenv.SmallFS(t, 96<<20))
	// A generous operation timeout: this test is about a full disk, and on
	// a loaded machine a slow answer must not pass for an outage.
	s := privateS3(t, m, 30*time.Second)
	// Big objects until the server says it is full, then smaller ones
	// until it says so for those too. While its disk fills, MinIO answers
	// some writes with a 500 or a 400 IncompleteBody before it settles on
	// 507 XMinioStorageFull; those must at least be outages.
	n := 0
	for _, size := range []int{4 << 20, 256 << 10, 64 << 10} {
		for ; ; n++ {
			if n > 2000 {
				t.Fatal("a 96 MiB file system never filled")
			}
			_, err := s.Put(t.Context(), fmt.Sprintf("full/%d", n), bytes.NewReader(make([]byte, size)), evidence.PutOptions{})
			if errors.Is(err, fault.InsufficientStorage) {
				break
			}
			if err != nil && !errors.Is(err, fault.Unavailable) {
				t.Fatalf("Put of %d bytes on a filling server: %v (kind %s)", size, err, fault.KindOf(err))
			}
		}
	}
	// A filling MinIO on a loaded machine still answers some requests as an
	// outage before it settles; what it settles on must be "full".
	wantSettles(t, "Put on a full server", func() error {
		_, err := s.Put(t.Context(), "full/last", bytes.NewReader(make([]byte, 64<<10)), evidence.PutOptions{})
		return err
	}, fault.InsufficientStorage)
	wantSettles(t, "Probe on a full server", func() error { return s.Probe(t.Context()) }, fault.InsufficientStorage)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on a full server: %v", err)
	}
}

// TestLocalFullDiskIsInsufficientStorage: the local store on a full file
// system reports fault.InsufficientStorage for Put and the write probe,
// leaves nothing visible, and works again once space is freed.
func TestLocalFullDiskIsInsufficientStorage(t *testing.T) {
	dir := testenv.SmallFS(t, 2<<20)
	s, err := evidence.NewLocal(dir, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "full/before", strings.NewReader("x"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	free := testenv.Fill(t, dir)
	_, err = s.Put(t.Context(), "full/doc.pdf", bytes.NewReader(make([]byte, 256<<10)), evidence.PutOptions{})
	wantKind(t, "Put on a full disk", err, fault.InsufficientStorage)
	wantKind(t, "Probe on a full disk", s.Probe(t.Context()), fault.InsufficientStorage)
	if _, err := s.Stat(t.Context(), "full/doc.pdf"); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Stat after the failed Put: %v; want not found", err)
	}
	free()
	if err := s.Probe(t.Context()); err != nil {
		t.Fatalf("Probe after freeing space: %v", err)
	}
	if _, err := s.Put(t.Context(), "full/doc.pdf", bytes.NewReader(make([]byte, 256<<10)), evidence.PutOptions{}); err != nil {
		t.Fatalf("Put after freeing space: %v", err)
	}
}

// wantSettles calls op until it fails with something other than an outage
// (at most 30 s), and wants that failure to be of kind want.
func wantSettles(t *testing.T, what string, op func() error, want fault.Kind) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := op()
		if fault.KindOf(err) != fault.Unavailable || time.Now().After(deadline) {
			wantKind(t, what, err, want)
			return
		}
		<-time.After(200 * time.Millisecond) // polling the server, with a deadline
	}
}
