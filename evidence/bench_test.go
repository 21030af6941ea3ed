package evidence_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/testenv"
)

// The benchmarks store and read a 256 MiB object on each store, next to the
// same bytes copied with cp and with a raw minio-go PutObject, in the same
// run. docs/benchmarks.md has the figures and the command.
const benchSize = 256 << 20

// randomReader is an endless stream of pseudo-random bytes.
func randomReader(seed uint64) io.Reader {
	return mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
}

// benchSource writes benchSize random bytes to a file.
func benchSource(b *testing.B) string {
	b.Helper()
	name := filepath.Join(b.TempDir(), "source.bin")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, randomReader(1), benchSize); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return name
}

func BenchmarkPut(b *testing.B) {
	src := benchSource(b)
	putFrom := func(b *testing.B, s evidence.Store) {
		b.SetBytes(benchSize)
		i := 0
		for b.Loop() {
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			key := fmt.Sprintf("bench/put-%d.bin", i)
			i++
			if _, err := s.Put(b.Context(), key, f, evidence.PutOptions{}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.StopTimer()
			if err := s.Delete(b.Context(), key); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.Run("store=local", func(b *testing.B) {
		s, err := evidence.NewLocal(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		putFrom(b, s)
	})
	b.Run("cp", func(b *testing.B) { benchCP(b, src, false) })
	b.Run("cp+sync", func(b *testing.B) { benchCP(b, src, true) })
	b.Run("store=s3", func(b *testing.B) {
		s, _ := newS3(b, 0, "")
		putFrom(b, s)
	})
	b.Run("minio-go-PutObject", func(b *testing.B) {
		s, _ := newS3(b, 0, "")
		b.SetBytes(benchSize)
		i := 0
		for b.Loop() {
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			key := fmt.Sprintf("bench/raw-%d.bin", i)
			i++
			info, err := s.Client().PutObject(b.Context(), s.Bucket(), key, f, benchSize, minio.PutObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.StopTimer()
			if err := s.Client().RemoveObject(b.Context(), s.Bucket(), key, minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// benchCP copies the source with cp(1), and with sync(1) on the copy when
// asked, since the local store syncs what it writes.
func benchCP(b *testing.B, src string, sync bool) {
	cp := testenv.Command(b, "cp")
	dir := b.TempDir()
	b.SetBytes(benchSize)
	for b.Loop() {
		dst := filepath.Join(dir, "copy.bin")
		if out, err := exec.Command(cp, src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		if sync {
			if out, err := exec.Command(testenv.Command(b, "sync"), dst).CombinedOutput(); err != nil {
				b.Fatalf("sync: %v: %s", err, out)
			}
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

func BenchmarkGet(b *testing.B) {
	readAll := func(b *testing.B, s evidence.Store) {
		key := "bench/get.bin"
		if _, err := s.Put(b.Context(), key, io.LimitReader(randomReader(2), benchSize), evidence.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Delete(context.Background(), key) })
		b.SetBytes(benchSize)
		for b.Loop() {
			rc, err := s.Get(b.Context(), key, 0, -1)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			rc.Close()
		}
	}
	b.Run("store=local", func(b *testing.B) {
		s, err := evidence.NewLocal(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		readAll(b, s)
	})
	b.Run("file", func(b *testing.B) {
		src := benchSource(b)
		b.SetBytes(benchSize)
		for b.Loop() {
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, f); err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			f.Close()
		}
	})
	b.Run("store=s3", func(b *testing.B) {
		s, _ := newS3(b, 0, "")
		readAll(b, s)
	})
	b.Run("minio-go-GetObject", func(b *testing.B) {
		s, _ := newS3(b, 0, "")
		info, err := s.Client().PutObject(b.Context(), s.Bucket(), "bench/raw.bin", io.LimitReader(randomReader(3), benchSize), benchSize, minio.PutObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			s.Client().RemoveObject(context.Background(), s.Bucket(), "bench/raw.bin", minio.RemoveObjectOptions{VersionID: info.VersionID})
		})
		b.SetBytes(benchSize)
		for b.Loop() {
			o, err := s.Client().GetObject(b.Context(), s.Bucket(), "bench/raw.bin", minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, o); err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			o.Close()
		}
	})
}

// Peak memory of storing a 1 GiB object, measured in a fresh process (this
// test binary re-executed as a helper) so that nothing else the tests did
// counts. The target is a peak RSS under 64 MiB.
const (
	rssEnv    = "CHAMBER_EVIDENCE_RSS_HELPER"
	rssSize   = 1 << 30
	rssTarget = 64 << 20
)

func BenchmarkPutPeakRSS(b *testing.B) {
	for _, store := range []string{"local", "s3"} {
		b.Run("store="+store, func(b *testing.B) {
			if store == "s3" {
				testenv.MinIO(b)
			}
			var peak, base int64
			for b.Loop() {
				cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^TestPeakRSSHelper$", "-test.v")
				cmd.Env = append(os.Environ(), rssEnv+"="+store, "CHAMBER_EVIDENCE_RSS_DIR="+b.TempDir())
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("helper: %v\n%s", err, out)
				}
				peak, base = parseRSS(b, out, "peak"), parseRSS(b, out, "before")
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(base)/(1<<20), "RSS-before-put-MiB")
			if peak >= rssTarget {
				b.Errorf("storing %d MiB peaked at %.1f MiB RSS; the target is under %d MiB", rssSize>>20, float64(peak)/(1<<20), rssTarget>>20)
			}
		})
	}
}

func parseRSS(b *testing.B, out []byte, label string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "rss-"+label+"-bytes="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("helper output lacks rss-%s-bytes:\n%s", label, out)
	return 0
}

// TestPeakRSSHelper is the helper process of BenchmarkPutPeakRSS; it does
// nothing in a normal test run.
func TestPeakRSSHelper(t *testing.T) {
	store := os.Getenv(rssEnv)
	if store == "" {
		t.Skip("helper process for BenchmarkPutPeakRSS")
	}
	var s evidence.Store
	switch store {
	case "local":
		l, err := evidence.NewLocal(os.Getenv("CHAMBER_EVIDENCE_RSS_DIR"), nil)
		if err != nil {
			t.Fatal(err)
		}
		s = l
	case "s3":
		s3, _ := newS3(t, 0, "")
		s = s3
	default:
		t.Fatalf("unknown store %q", store)
	}
	fmt.Printf("rss-before-bytes=%d\n", vmHWM(t))
	ctx := context.Background()
	obj, err := s.Put(ctx, "rss/1gib.bin", io.LimitReader(randomReader(4), rssSize), evidence.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != rssSize {
		t.Fatalf("stored %d bytes", obj.Size)
	}
	fmt.Printf("rss-peak-bytes=%d\n", vmHWM(t))
	if err := s.Delete(ctx, "rss/1gib.bin"); err != nil {
		t.Fatal(err)
	}
}

// vmHWM returns the process's peak resident set size.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
