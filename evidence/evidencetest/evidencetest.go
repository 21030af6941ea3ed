// Package evidencetest is the contract every evidence.Store must meet,
// written once and run against each implementation (the local directory and
// a real MinIO server).
package evidencetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/fault"
)

// Harness describes the store under test.
type Harness struct {
	// Store is the store under test. All subtests share it and keep to
	// their own key prefixes.
	Store evidence.Store
	// PartSize is the store's multipart part size, or 0 if it has none;
	// the suite then also stores objects spanning several parts and fails
	// uploads half-way through them.
	PartSize int64
}

// Run runs the contract against h.Store. It must not run in parallel with
// other users of the store's metrics (it checks exact counter deltas).
func Run(t *testing.T, h Harness) {
	s := &suite{Harness: h}
	t.Run("RoundTrip", s.roundTrip)
	t.Run("ShortReads", s.shortReads)
	t.Run("ServeContent", s.serveContent)
	t.Run("WriteOnce", s.writeOnce)
	t.Run("ConcurrentPuts", func(t *testing.T) { s.concurrentPuts(t, 16, 1000) })
	if h.PartSize > 0 {
		t.Run("ConcurrentPutsMultipart", func(t *testing.T) { s.concurrentPuts(t, 4, int(h.PartSize)+1000) })
	}
	t.Run("FailingReader", s.failingReader)
	t.Run("CanceledContext", s.canceledContext)
	t.Run("Ranges", s.ranges)
	t.Run("List", s.list)
	t.Run("InvalidKeys", s.invalidKeys)
	t.Run("NotFound", s.notFound)
	t.Run("Retention", s.retention)
	t.Run("RetentionExpires", s.retentionExpires)
	t.Run("LegalHold", s.legalHold)
	t.Run("Delete", s.delete)
	t.Run("Ping", func(t *testing.T) {
		if err := s.Store.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Probe", s.probe)
	t.Run("ReaderErrorKeepsItsKind", s.readerErrorKeepsItsKind)
	t.Run("Metrics", s.metrics)
}

// probe: the write probe succeeds on a healthy store and leaves nothing a
// listing shows.
func (s *suite) probe(t *testing.T) {
	before, err := s.Store.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Store.Probe(t.Context()); err != nil {
			t.Fatalf("Probe: %v", err)
		}
	}
	after, err := s.Store.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("the write probe left objects: %d listed before, %d after", len(before), len(after))
	}
}

// readerErrorKeepsItsKind: a Put whose reader breaks (a client's upload
// cut off) reports the reader's error, never an outage of the store.
func (s *suite) readerErrorKeepsItsKind(t *testing.T) {
	key := prefix(t) + "/cut.bin"
	_, err := s.Store.Put(t.Context(), key, io.MultiReader(bytes.NewReader(data(1000, 1)), iotest.ErrReader(io.ErrUnexpectedEOF)), evidence.PutOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Put: %v; want the reader's error", err)
	}
	if k := fault.KindOf(err); k == fault.Unavailable || k == fault.InsufficientStorage {
		t.Fatalf("a broken reader is reported as %s", k)
	}
}

type suite struct{ Harness }

// prefix returns a key prefix no other test uses.
func prefix(t *testing.T) string {
	return "t-" + strings.ToLower(rand.Text()[:12]) + "/" + strings.ReplaceAll(t.Name(), "/", "-")
}

// data returns n deterministic pseudo-random bytes.
func data(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1})
	r.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (s *suite) put(t *testing.T, key string, b []byte, opts evidence.PutOptions) evidence.Object {
	t.Helper()
	obj, err := s.Store.Put(t.Context(), key, bytes.NewReader(b), opts)
	if err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", key, len(b), err)
	}
	return obj
}

func (s *suite) mustStat(t *testing.T, key string) evidence.Object {
	t.Helper()
	obj, err := s.Store.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%s): %v", key, err)
	}
	return obj
}

func (s *suite) mustNotExist(t *testing.T, key string) {
	t.Helper()
	if obj, err := s.Store.Stat(t.Context(), key); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Stat(%s) = %+v, %v; want ErrNotFound", key, obj, err)
	}
	if _, _, err := s.Store.Open(t.Context(), key); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Open(%s) = %v; want ErrNotFound", key, err)
	}
	if _, err := s.Store.Get(t.Context(), key, 0, -1); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Get(%s) = %v; want ErrNotFound", key, err)
	}
}

func (s *suite) readAll(t *testing.T, key string) []byte {
	t.Helper()
	rc, err := s.Store.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", key, err)
	}
	return b
}

func sameObject(t *testing.T, what string, got, want evidence.Object) {
	t.Helper()
	if got.Key != want.Key || got.Size != want.Size || got.SHA256 != want.SHA256 ||
		got.ContentType != want.ContentType || !got.Created.Equal(want.Created) ||
		!got.RetainUntil.Equal(want.RetainUntil) || got.LegalHold != want.LegalHold {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func (s *suite) sizes() []int {
	sizes := []int{0, 1, 1000, 64<<10 + 1, 3<<20 + 5}
	if p := int(s.PartSize); p > 0 {
		sizes = append(sizes, p-1, p, p+1, 2*p+12345)
	}
	return sizes
}

func (s *suite) roundTrip(t *testing.T) {
	p := prefix(t)
	for i, n := range s.sizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := data(n, uint64(i))
			key := fmt.Sprintf("%s/%d.bin", p, n)
			ct := ""
			wantCT := "application/octet-stream"
			if i%2 == 1 {
				ct, wantCT = "application/pdf", "application/pdf"
			}
			before := time.Now().Add(-time.Second)
			obj := s.put(t, key, b, evidence.PutOptions{ContentType: ct})
			after := time.Now().Add(time.Second)
			if obj.Key != key || obj.Size != int64(n) || obj.SHA256 != sum(b) || obj.ContentType != wantCT ||
				obj.Created.Before(before) || obj.Created.After(after) || !obj.RetainUntil.IsZero() || obj.LegalHold {
				t.Fatalf("Put returned %+v; want key %s, %d bytes, SHA-256 %s, %s, created now, no retention",
					obj, key, n, sum(b), wantCT)
			}
			if obj.Created.Location() != time.UTC || !obj.Created.Equal(obj.Created.Truncate(time.Microsecond)) {
				t.Errorf("Created %v is not UTC microseconds", obj.Created)
			}
			sameObject(t, "Stat after Put", s.mustStat(t, key), obj)

			if got := s.readAll(t, key); !bytes.Equal(got, b) {
				t.Fatalf("Get returned %d bytes (SHA-256 %s), want %d (%s)", len(got), sum(got), n, sum(b))
			}

			r, oobj, err := s.Store.Open(t.Context(), key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			sameObject(t, "Open", oobj, obj)
			if n > 0 {
				off := int64(n / 3)
				buf := make([]byte, min(n-int(off), 4096))
				if _, err := r.ReadAt(buf, off); err != nil && !(err == io.EOF && len(buf) == n-int(off)) {
					t.Fatalf("ReadAt(%d): %v", off, err)
				}
				if !bytes.Equal(buf, b[off:off+int64(len(buf))]) {
					t.Fatalf("ReadAt(%d) returned other bytes", off)
				}
				if pos, err := r.Seek(off, io.SeekStart); err != nil || pos != off {
					t.Fatalf("Seek(%d) = %d, %v", off, pos, err)
				}
			}
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read after Seek: %v", err)
			}
			if !bytes.Equal(rest, b[n/3:]) {
				t.Fatalf("read after Seek returned %d bytes, want %d", len(rest), n-n/3)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := evidence.Verify(t.Context(), s.Store, key); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// shortReads stores through a reader that returns fewer bytes than asked.
func (s *suite) shortReads(t *testing.T) {
	n := 2<<20 + 17
	if s.PartSize > 0 {
		n = int(s.PartSize) + 17
	}
	b := data(n, 99)
	key := prefix(t) + "/half.bin"
	obj, err := s.Store.Put(t.Context(), key, iotest.HalfReader(bytes.NewReader(b)), evidence.PutOptions{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if obj.Size != int64(n) || obj.SHA256 != sum(b) {
		t.Fatalf("Put = %+v; want %d bytes, %s", obj, n, sum(b))
	}
	if got := s.readAll(t, key); !bytes.Equal(got, b) {
		t.Fatal("stored bytes differ")
	}
}

// serveContent checks that an open object serves HTTP byte ranges.
func (s *suite) serveContent(t *testing.T) {
	b := data(10000, 7)
	key := prefix(t) + "/doc.pdf"
	obj := s.put(t, key, b, evidence.PutOptions{ContentType: "application/pdf"})
	r, _, err := s.Store.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	req := httptest.NewRequest(http.MethodGet, "/doc.pdf", nil)
	req.Header.Set("Range", "bytes=100-199,9990-")
	w := httptest.NewRecorder()
	http.ServeContent(w, req, "doc.pdf", obj.Created, r)
	if w.Code != http.StatusPartialContent || !strings.HasPrefix(w.Header().Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi-range: status %d, type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if body := w.Body.Bytes(); !bytes.Contains(body, b[100:200]) || !bytes.Contains(body, b[9990:]) {
		t.Fatal("multi-range body lacks the ranges")
	}
	req.Header.Set("Range", "bytes=5000-5099")
	w = httptest.NewRecorder()
	http.ServeContent(w, req, "doc.pdf", obj.Created, r)
	if w.Code != http.StatusPartialContent || !bytes.Equal(w.Body.Bytes(), b[5000:5100]) {
		t.Fatalf("range: status %d, %d bytes", w.Code, w.Body.Len())
	}
}

func (s *suite) writeOnce(t *testing.T) {
	key := prefix(t) + "/once.txt"
	first := []byte("first version")
	obj := s.put(t, key, first, evidence.PutOptions{ContentType: "text/plain"})
	_, err := s.Store.Put(t.Context(), key, strings.NewReader("second version"), evidence.PutOptions{})
	if !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("second Put: %v; want ErrExists", err)
	}
	sameObject(t, "Stat after refused Put", s.mustStat(t, key), obj)
	if got := s.readAll(t, key); !bytes.Equal(got, first) {
		t.Fatalf("content changed to %q", got)
	}
}

// barrierReader holds its first Read until every writer has started reading,
// so that all of them are past any early existence check and the store's
// commit alone decides the winner.
type barrierReader struct {
	r     io.Reader
	ready *sync.WaitGroup
	once  sync.Once
}

func (b *barrierReader) Read(p []byte) (int, error) {
	b.once.Do(func() { b.ready.Done(); b.ready.Wait() })
	return b.r.Read(p)
}

func (s *suite) concurrentPuts(t *testing.T, writers, size int) {
	key := prefix(t) + "/race.bin"
	var ready, done sync.WaitGroup
	ready.Add(writers)
	errs := make([]error, writers)
	objs := make([]evidence.Object, writers)
	contents := make([][]byte, writers)
	for i := range writers {
		contents[i] = data(size, uint64(1000+i))
		done.Go(func() {
			r := &barrierReader{r: bytes.NewReader(contents[i]), ready: &ready}
			objs[i], errs[i] = s.Store.Put(t.Context(), key, r, evidence.PutOptions{})
		})
	}
	done.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, evidence.ErrExists):
			t.Fatalf("writer %d: %v; want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	sameObject(t, "Stat after race", s.mustStat(t, key), objs[winner])
	if got := s.readAll(t, key); !bytes.Equal(got, contents[winner]) {
		t.Fatalf("stored bytes are not the winner's (SHA-256 %s, winner %s)", sum(got), sum(contents[winner]))
	}
}

var errBoom = errors.New("evidencetest: reader failed")

// failAfter returns n bytes of b and then fails.
type failAfter struct {
	r io.Reader
}

func newFailAfter(b []byte, n int) *failAfter {
	return &failAfter{r: io.MultiReader(bytes.NewReader(b[:n]), iotest.ErrReader(errBoom))}
}

func (f *failAfter) Read(p []byte) (int, error) { return f.r.Read(p) }

// cutPoints are where the failure tests break a Put: inside the first part
// and, for multipart stores, after whole parts have been uploaded.
func (s *suite) cutPoints() []int {
	cuts := []int{0, 10, 2<<20 + 3}
	if p := int(s.PartSize); p > 0 {
		cuts = append(cuts, p, p+10, 2*p+10)
	}
	return cuts
}

func (s *suite) failingReader(t *testing.T) {
	p := prefix(t)
	for _, cut := range s.cutPoints() {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			key := fmt.Sprintf("%s/%d.bin", p, cut)
			b := data(cut+1000, uint64(cut))
			_, err := s.Store.Put(t.Context(), key, newFailAfter(b, cut), evidence.PutOptions{RetainUntil: time.Now().Add(time.Hour)})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Put: %v; want the reader's error", err)
			}
			s.mustNotExist(t, key)
			if objs, err := s.Store.List(t.Context(), p+"/"); err != nil || len(objs) != 0 {
				t.Fatalf("List after failed Put = %v, %v; want nothing", objs, err)
			}
			// Nothing reserves the key: a later Put succeeds.
			obj := s.put(t, key, b[:100], evidence.PutOptions{})
			if obj.SHA256 != sum(b[:100]) {
				t.Fatalf("Put after failure stored %s", obj.SHA256)
			}
			if err := s.Store.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		})
	}
}

// cancelAfter cancels its context once n bytes have been read, and keeps
// supplying data.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	if len(p) > c.n && c.n > 0 {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func (s *suite) canceledContext(t *testing.T) {
	p := prefix(t)
	for _, cut := range s.cutPoints() {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			key := fmt.Sprintf("%s/%d.bin", p, cut)
			b := data(cut+1000, uint64(cut))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			_, err := s.Store.Put(ctx, key, &cancelAfter{r: bytes.NewReader(b), n: cut, cancel: cancel}, evidence.PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put: %v; want context.Canceled", err)
			}
			s.mustNotExist(t, key)
			obj := s.put(t, key, b, evidence.PutOptions{})
			if obj.SHA256 != sum(b) {
				t.Fatalf("Put after cancel stored %s", obj.SHA256)
			}
		})
	}
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		key := p + "/before.bin"
		if _, err := s.Store.Put(ctx, key, strings.NewReader("x"), evidence.PutOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with a canceled context: %v; want context.Canceled", err)
		}
		s.mustNotExist(t, key)
	})
}

func (s *suite) ranges(t *testing.T) {
	p := prefix(t)
	b := data(1000, 5)
	key := p + "/r.bin"
	s.put(t, key, b, evidence.PutOptions{})
	empty := p + "/empty.bin"
	s.put(t, empty, nil, evidence.PutOptions{})
	for _, tc := range []struct {
		key            string
		offset, length int64
		want           []byte
		err            error
	}{
		{key, 0, -1, b, nil},
		{key, 0, 0, []byte{}, nil},
		{key, 0, 10, b[:10], nil},
		{key, 10, 20, b[10:30], nil},
		{key, 990, -1, b[990:], nil},
		{key, 990, 100, b[990:], nil},
		{key, 999, 1, b[999:], nil},
		{key, 1000, -1, []byte{}, nil},
		{key, 1000, 5, []byte{}, nil},
		{key, 1001, -1, nil, evidence.ErrInvalidRange},
		{key, -1, 5, nil, evidence.ErrInvalidRange},
		{empty, 0, -1, []byte{}, nil},
		{empty, 0, 10, []byte{}, nil},
		{empty, 1, -1, nil, evidence.ErrInvalidRange},
	} {
		name := fmt.Sprintf("%s@%d+%d", tc.key[len(p)+1:], tc.offset, tc.length)
		t.Run(name, func(t *testing.T) {
			rc, err := s.Store.Get(t.Context(), tc.key, tc.offset, tc.length)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Get: %v; want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

func (s *suite) list(t *testing.T) {
	p := prefix(t)
	keys := []string{p + "/a/1", p + "/a/2", p + "/a/b/3", p + "/ab", p + "/b"}
	objs := map[string]evidence.Object{}
	for i, k := range []int{4, 2, 0, 3, 1} { // out of order on purpose
		objs[keys[k]] = s.put(t, keys[k], data(10+i, uint64(i)), evidence.PutOptions{})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{p + "/", keys},
		{p + "/a/", keys[:3]},
		{p + "/a", keys[:4]},
		{p + "/a/b", keys[2:3]},
		{p + "/b", keys[4:]},
		{p + "/zzz", nil},
		{p + "/a/1", keys[:1]},
	} {
		t.Run(strings.TrimPrefix(tc.prefix, p), func(t *testing.T) {
			got, err := s.Store.List(t.Context(), tc.prefix)
			if err != nil {
				t.Fatalf("List(%s): %v", tc.prefix, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("List(%s) = %d objects %v; want %v", tc.prefix, len(got), got, tc.want)
			}
			for i, obj := range got {
				if obj.Key != tc.want[i] {
					t.Fatalf("List(%s)[%d] = %s; want %s", tc.prefix, i, obj.Key, tc.want[i])
				}
				sameObject(t, "listed object", obj, objs[obj.Key])
			}
		})
	}
	for _, bad := range []string{"../x", "/abs", "a//b", "a/../b", ".hidden/"} {
		if _, err := s.Store.List(t.Context(), bad); !errors.Is(err, evidence.ErrInvalidKey) {
			t.Errorf("List(%q): %v; want ErrInvalidKey", bad, err)
		}
	}
}

// BadKeys are keys every store must refuse.
var BadKeys = []string{
	"", "/", "/abs/key", "trailing/", "a//b", "..", "../x", "a/../b", "a/./b", ".", ".hidden",
	"a/.hidden", "tab\tkey", "nl\nkey", "nul\x00key", "del\x7fkey", "c1\u0085key", "back\\slash",
	"bad\xffutf8", strings.Repeat("x", evidence.MaxSegmentLen+1),
	strings.Repeat("abcdefgh/", evidence.MaxKeyLen/9+1) + "x",
}

func (s *suite) invalidKeys(t *testing.T) {
	ctx := t.Context()
	for _, key := range BadKeys {
		checks := map[string]error{}
		_, checks["Put"] = s.Store.Put(ctx, key, strings.NewReader("x"), evidence.PutOptions{})
		_, checks["Stat"] = s.Store.Stat(ctx, key)
		_, _, checks["Open"] = s.Store.Open(ctx, key)
		_, checks["Get"] = s.Store.Get(ctx, key, 0, -1)
		checks["Retain"] = s.Store.Retain(ctx, key, time.Now().Add(time.Hour))
		checks["LegalHold"] = s.Store.LegalHold(ctx, key, true)
		checks["Delete"] = s.Store.Delete(ctx, key)
		for op, err := range checks {
			if !errors.Is(err, evidence.ErrInvalidKey) {
				t.Errorf("%s(%q): %v; want ErrInvalidKey", op, key, err)
			}
		}
	}
}

func (s *suite) notFound(t *testing.T) {
	ctx := t.Context()
	key := prefix(t) + "/missing"
	s.mustNotExist(t, key)
	for op, err := range map[string]error{
		"Retain":    s.Store.Retain(ctx, key, time.Now().Add(time.Hour)),
		"LegalHold": s.Store.LegalHold(ctx, key, true),
		"Delete":    s.Store.Delete(ctx, key),
	} {
		if !errors.Is(err, evidence.ErrNotFound) {
			t.Errorf("%s: %v; want ErrNotFound", op, err)
		}
	}
}

// ceil rounds t up to a whole second, as the stores keep retention dates.
func ceil(t time.Time) time.Time {
	t = t.UTC()
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

func (s *suite) retention(t *testing.T) {
	ctx := t.Context()
	p := prefix(t)
	key := p + "/kept.pdf"
	until := time.Now().Add(time.Hour + 500*time.Millisecond)
	obj := s.put(t, key, []byte("kept"), evidence.PutOptions{ContentType: "application/pdf", RetainUntil: until})
	if !obj.RetainUntil.Equal(ceil(until)) {
		t.Fatalf("Put: RetainUntil %v; want %v", obj.RetainUntil, ceil(until))
	}
	sameObject(t, "Stat of retained object", s.mustStat(t, key), obj)
	if err := s.Store.Delete(ctx, key); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete under retention: %v; want ErrRetained", err)
	}
	if err := s.Store.Retain(ctx, key, until.Add(-time.Minute)); !errors.Is(err, evidence.ErrInvalidRetention) {
		t.Fatalf("shortening Retain: %v; want ErrInvalidRetention", err)
	}
	if err := s.Store.Retain(ctx, key, time.Now().Add(-time.Minute)); !errors.Is(err, evidence.ErrInvalidRetention) {
		t.Fatalf("Retain into the past: %v; want ErrInvalidRetention", err)
	}
	if err := s.Store.Retain(ctx, key, until); err != nil {
		t.Fatalf("Retain to the same date: %v", err)
	}
	longer := until.Add(24 * time.Hour)
	if err := s.Store.Retain(ctx, key, longer); err != nil {
		t.Fatalf("extending Retain: %v", err)
	}
	obj.RetainUntil = ceil(longer)
	sameObject(t, "Stat after extension", s.mustStat(t, key), obj)
	if err := s.Store.Delete(ctx, key); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete under extended retention: %v; want ErrRetained", err)
	}
	if got := s.readAll(t, key); string(got) != "kept" {
		t.Fatalf("content %q", got)
	}

	// A large object (several parts on a multipart store) gets its
	// retention with the write too.
	big := p + "/kept-big.bin"
	n := 3<<20 + 1
	if s.PartSize > 0 {
		n = 2*int(s.PartSize) + 1
	}
	bigObj := s.put(t, big, data(n, 8), evidence.PutOptions{RetainUntil: until})
	if !bigObj.RetainUntil.Equal(ceil(until)) {
		t.Fatalf("Put of a large object: RetainUntil %v; want %v", bigObj.RetainUntil, ceil(until))
	}
	sameObject(t, "Stat of retained large object", s.mustStat(t, big), bigObj)
	if err := s.Store.Delete(ctx, big); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete of retained large object: %v; want ErrRetained", err)
	}

	past := p + "/past.pdf"
	if _, err := s.Store.Put(ctx, past, strings.NewReader("x"), evidence.PutOptions{RetainUntil: time.Now().Add(-time.Second)}); !errors.Is(err, evidence.ErrInvalidRetention) {
		t.Fatalf("Put with a past retention: %v; want ErrInvalidRetention", err)
	}
	s.mustNotExist(t, past)
}

func (s *suite) retentionExpires(t *testing.T) {
	ctx := t.Context()
	key := prefix(t) + "/brief.bin"
	s.put(t, key, []byte("short-lived"), evidence.PutOptions{})
	until := time.Now().Add(2 * time.Second)
	if err := s.Store.Retain(ctx, key, until); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	if got := s.mustStat(t, key).RetainUntil; !got.Equal(ceil(until)) {
		t.Fatalf("RetainUntil %v; want %v", got, ceil(until))
	}
	if err := s.Store.Delete(ctx, key); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete under retention: %v; want ErrRetained", err)
	}
	time.Sleep(time.Until(ceil(until).Add(1100 * time.Millisecond)))
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after retention ended: %v", err)
	}
	s.mustNotExist(t, key)
}

func (s *suite) legalHold(t *testing.T) {
	ctx := t.Context()
	key := prefix(t) + "/held.bin"
	obj := s.put(t, key, []byte("held"), evidence.PutOptions{})
	if err := s.Store.LegalHold(ctx, key, true); err != nil {
		t.Fatalf("LegalHold(on): %v", err)
	}
	obj.LegalHold = true
	sameObject(t, "Stat under hold", s.mustStat(t, key), obj)
	if err := s.Store.LegalHold(ctx, key, true); err != nil {
		t.Fatalf("LegalHold(on) again: %v", err)
	}
	if err := s.Store.Delete(ctx, key); !errors.Is(err, evidence.ErrRetained) {
		t.Fatalf("Delete under legal hold: %v; want ErrRetained", err)
	}
	if err := s.Store.LegalHold(ctx, key, false); err != nil {
		t.Fatalf("LegalHold(off): %v", err)
	}
	obj.LegalHold = false
	sameObject(t, "Stat after hold", s.mustStat(t, key), obj)
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after hold lifted: %v", err)
	}
	s.mustNotExist(t, key)
}

func (s *suite) delete(t *testing.T) {
	ctx := t.Context()
	p := prefix(t)
	key := p + "/gone.bin"
	s.put(t, key, []byte("old"), evidence.PutOptions{})
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	s.mustNotExist(t, key)
	if objs, err := s.Store.List(ctx, p+"/"); err != nil || len(objs) != 0 {
		t.Fatalf("List after Delete = %v, %v", objs, err)
	}
	if err := s.Store.Delete(ctx, key); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("second Delete: %v; want ErrNotFound", err)
	}
	// A deleted key may be written again.
	b := data(s.sizes()[len(s.sizes())-1], 3)
	obj := s.put(t, key, b, evidence.PutOptions{})
	sameObject(t, "Stat of rewritten key", s.mustStat(t, key), obj)
	if got := s.readAll(t, key); !bytes.Equal(got, b) {
		t.Fatal("rewritten key returns other bytes")
	}
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete of rewritten key: %v", err)
	}
}

// counter reads a counter of the default Prometheus registry.
func counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			n := 0
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok {
					if v != lp.GetValue() {
						continue metrics
					}
					n++
				}
			}
			if n == len(labels) {
				return m.GetCounter().GetValue()
			}
		}
		return 0
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

func (s *suite) metrics(t *testing.T) {
	const ops, bytesTotal = "chamber_store_operations_total", "chamber_store_bytes_total"
	putOK := map[string]string{"op": "put", "result": "ok"}
	putExists := map[string]string{"op": "put", "result": "exists"}
	statNotFound := map[string]string{"op": "stat", "result": "not_found"}
	getOK := map[string]string{"op": "get", "result": "ok"}
	putBytes, getBytes := map[string]string{"op": "put"}, map[string]string{"op": "get"}
	before := map[string]float64{
		"putOK": counter(t, ops, putOK), "putExists": counter(t, ops, putExists),
		"statNotFound": counter(t, ops, statNotFound), "getOK": counter(t, ops, getOK),
		"putBytes": counter(t, bytesTotal, putBytes), "getBytes": counter(t, bytesTotal, getBytes),
	}
	key := prefix(t) + "/m.bin"
	b := data(4321, 11)
	s.put(t, key, b, evidence.PutOptions{})
	s.Store.Put(t.Context(), key, bytes.NewReader(b), evidence.PutOptions{})
	s.Store.Stat(t.Context(), key+"-missing")
	s.readAll(t, key)
	for name, want := range map[string]float64{
		"putOK":        before["putOK"] + 1,
		"putExists":    before["putExists"] + 1,
		"statNotFound": before["statNotFound"] + 1,
		"getOK":        before["getOK"] + 1,
		"putBytes":     before["putBytes"] + 4321,
		"getBytes":     before["getBytes"] + 4321,
	} {
		var got float64
		switch name {
		case "putOK":
			got = counter(t, ops, putOK)
		case "putExists":
			got = counter(t, ops, putExists)
		case "statNotFound":
			got = counter(t, ops, statNotFound)
		case "getOK":
			got = counter(t, ops, getOK)
		case "putBytes":
			got = counter(t, bytesTotal, putBytes)
		case "getBytes":
			got = counter(t, bytesTotal, getBytes)
		}
		if got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
}
