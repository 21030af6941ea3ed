package evidence_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/evidencetest"
	"github.com/chamber-court/chamber/internal/testenv"
)

func newLocal(t *testing.T) *evidence.Local {
	t.Helper()
	s, err := evidence.NewLocal(filepath.Join(t.TempDir(), "evidence"), testenv.Logger(t))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return s
}

func TestLocalContract(t *testing.T) {
	evidencetest.Run(t, evidencetest.Harness{Store: newLocal(t)})
}

// files lists every file under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatalf("walk: %v", err)
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestLocalLayoutAndPermissions(t *testing.T) {
	s := newLocal(t)
	key := "sessions/5f0c/documents/9a1e/v1.pdf"
	if _, err := s.Put(t.Context(), key, strings.NewReader("%PDF-1.7"), evidence.PutOptions{ContentType: "application/pdf"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got := files(t, s.Dir())
	want := []string{"sessions/5f0c/documents/9a1e/.v1.pdf.meta", "sessions/5f0c/documents/9a1e/v1.pdf"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v; want %v", got, want)
	}
	for _, f := range got {
		fi, err := os.Stat(filepath.Join(s.Dir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o444 {
			t.Errorf("%s has mode %v; want 0444", f, fi.Mode().Perm())
		}
	}
}

func TestLocalNoTemporaryFilesLeft(t *testing.T) {
	s := newLocal(t)
	boom := errors.New("boom")
	r := &failingReader{data: bytes.Repeat([]byte("x"), 3<<20), err: boom}
	if _, err := s.Put(t.Context(), "a/b/c.bin", r, evidence.PutOptions{}); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	if f := files(t, s.Dir()); len(f) != 0 {
		t.Fatalf("failed Put left %v", f)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// A crash after the record was committed but before the data was linked
// leaves the data under its temporary name; the next reader finishes the Put.
func TestLocalFinishesInterruptedPut(t *testing.T) {
	s := newLocal(t)
	key := "a/interrupted.bin"
	obj, err := s.Put(t.Context(), key, strings.NewReader("committed bytes"), evidence.PutOptions{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	// Recreate the crash state: the record names the pending file, which
	// holds the data; the data's own name does not exist yet.
	dir := filepath.Join(s.Dir(), "a")
	rec, err := os.ReadFile(filepath.Join(dir, ".interrupted.bin.meta"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(rec), `"pending":"`)
	if !ok {
		t.Fatalf("record has no pending name: %s", rec)
	}
	pending, _, _ := strings.Cut(after, `"`)
	if err := os.Rename(filepath.Join(dir, "interrupted.bin"), filepath.Join(dir, pending)); err != nil {
		t.Fatal(err)
	}

	got, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat after interrupted Put: %v", err)
	}
	if got != obj {
		t.Fatalf("Stat = %+v; want %+v", got, obj)
	}
	if f := files(t, s.Dir()); strings.Join(f, " ") != "a/.interrupted.bin.meta a/interrupted.bin" {
		t.Fatalf("files after recovery: %v", f)
	}
	if _, err := evidence.Verify(t.Context(), s, key); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestLocalDetectsTampering(t *testing.T) {
	s := newLocal(t)
	key := "a/doc.bin"
	if _, err := s.Put(t.Context(), key, strings.NewReader("original content"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(s.Dir(), "a", "doc.bin")
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte("ORIGINAL content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Verify(t.Context(), s, key); !errors.Is(err, evidence.ErrCorrupt) {
		t.Fatalf("Verify of altered bytes: %v; want ErrCorrupt", err)
	}
	if err := os.WriteFile(name, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, evidence.ErrCorrupt) {
		t.Fatalf("Stat of truncated data: %v; want ErrCorrupt", err)
	}
}

// The local store cannot hold "a/b" and "a/b/c" at once (one name cannot be
// a file and a folder); it refuses clearly instead of failing half-way.
func TestLocalKeyAndFolderConflict(t *testing.T) {
	s := newLocal(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "x/file", strings.NewReader("1"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "x/file/below", strings.NewReader("2"), evidence.PutOptions{}); !errors.Is(err, evidence.ErrInvalidKey) {
		t.Fatalf("Put below an object: %v; want ErrInvalidKey", err)
	}
	if _, err := s.Put(ctx, "y/folder/below", strings.NewReader("3"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "y/folder", strings.NewReader("4"), evidence.PutOptions{}); !errors.Is(err, evidence.ErrInvalidKey) {
		t.Fatalf("Put over a folder: %v; want ErrInvalidKey", err)
	}
	if _, err := s.Stat(ctx, "y/folder"); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Stat of the refused key: %v", err)
	}
}

// Concurrent Retain and LegalHold calls read, change and rewrite one
// record; none of their changes may be lost.
func TestLocalConcurrentRecordUpdates(t *testing.T) {
	s := newLocal(t)
	ctx := t.Context()
	key := "a/contended.bin"
	if _, err := s.Put(ctx, key, strings.NewReader("x"), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			err := s.Retain(ctx, key, base.Add(time.Duration(i)*time.Second))
			if err != nil && !errors.Is(err, evidence.ErrInvalidRetention) { // a later date may already be set
				t.Errorf("Retain: %v", err)
			}
		})
	}
	wg.Go(func() {
		if err := s.LegalHold(ctx, key, true); err != nil {
			t.Errorf("LegalHold: %v", err)
		}
	})
	wg.Wait()
	obj, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !obj.LegalHold || !obj.RetainUntil.Equal(base.Add(19*time.Second).UTC()) {
		t.Fatalf("after concurrent updates: hold %v, retain until %v; want true, %v", obj.LegalHold, obj.RetainUntil, base.Add(19*time.Second).UTC())
	}
}

func TestLocalReopen(t *testing.T) {
	dir := t.TempDir()
	s1, err := evidence.NewLocal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s1.Put(t.Context(), "k/v", strings.NewReader("persisted"), evidence.PutOptions{RetainUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := evidence.NewLocal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Stat(t.Context(), "k/v"); err != nil || got != obj {
		t.Fatalf("Stat after reopen = %+v, %v; want %+v", got, err, obj)
	}
	if err := s2.Delete(t.Context(), "k/v"); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete after reopen: %v; want ErrRetained", err)
	}
}

func TestNewLocalRefusesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.NewLocal(f, nil); err == nil {
		t.Fatal("NewLocal on a file succeeded")
	}
}
