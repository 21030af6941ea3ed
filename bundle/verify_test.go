package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/memtest"
	"github.com/chamber-court/chamber/pki"
)

// maxExtraHeap is the most heap verifying any bundle may add.
const maxExtraHeap = 64 << 20

func newAuthority(t testing.TB) *pki.Authority {
	t.Helper()
	a, err := pki.LoadOrCreateDev(filepath.Join(t.TempDir(), "pki"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// entry is one file of a crafted zip: its content, or raw deflated data
// with the sizes and checksum it claims.
type entry struct {
	name  string
	data  []byte
	raw   *rawEntry
	store bool // stored, not deflated (random data does not compress)
}

type rawEntry struct {
	deflated     []byte
	size         uint64
	crc          uint32
	sha256       string
	declaredSize uint64 // 0: size
}

func makeZip(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		if e.raw != nil {
			size := e.raw.size
			if e.raw.declaredSize != 0 {
				size = e.raw.declaredSize
			}
			w, err := zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: zip.Deflate, CRC32: e.raw.crc,
				CompressedSize64: uint64(len(e.raw.deflated)), UncompressedSize64: size})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.raw.deflated)
			continue
		}
		method := zip.Deflate
		if e.store {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// signedZip adds a manifest of the entries, signed by a's seal with a's
// TSA, like Build.
func signedZip(t testing.TB, a *pki.Authority, sid uuid.UUID, entries []entry) []byte {
	t.Helper()
	m := Manifest{Version: 1, SessionID: sid, GeneratedAt: time.Now().UTC().Truncate(time.Second)}
	for _, e := range entries {
		if e.raw != nil {
			m.Files = append(m.Files, File{Path: e.name, SHA256: e.raw.sha256, Size: int64(e.raw.size)})
			continue
		}
		sum := sha256.Sum256(e.data)
		m.Files = append(m.Files, File{Path: e.name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(e.data))})
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	sig, err := sign(context.Background(), manifest, a.Seal().AsSigner(), a.TSA())
	if err != nil {
		t.Fatal(err)
	}
	return makeZip(t, append(entries, entry{name: ManifestName, data: manifest}, entry{name: SignatureName, data: sig}))
}

// repeated builds raw deflated data for head + n×chunk + tail without
// deflating all of it: once the window holds a chunk, every further
// chunk (longer than the window) deflates to the same bytes.
func repeated(head, chunk, tail []byte, n int) *rawEntry {
	e := deflateRepeated(head, chunk, tail, n)
	h, c := sha256.New(), crc32.NewIEEE()
	out := io.MultiWriter(h, c)
	out.Write(head)
	for range n {
		out.Write(chunk)
	}
	out.Write(tail)
	e.sha256, e.crc = hex.EncodeToString(h.Sum(nil)), c.Sum32()
	return e
}

// deflateRepeated is repeated without the checksums, for a file that is
// refused before it is read.
func deflateRepeated(head, chunk, tail []byte, n int) *rawEntry {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(head)
	w.Write(chunk)
	w.Flush()
	first := bytes.Clone(b.Bytes())
	b.Reset()
	w.Write(chunk)
	w.Flush()
	middle := bytes.Clone(b.Bytes())
	b.Reset()
	w.Write(tail)
	w.Close()
	e := &rawEntry{deflated: append(first, bytes.Repeat(middle, n-1)...)}
	e.deflated = append(e.deflated, b.Bytes()...)
	e.size = uint64(len(head) + n*len(chunk) + len(tail))
	return e
}

func TestRepeatedDeflate(t *testing.T) {
	e := repeated([]byte("head"), noisyChunk(), []byte("tail"), 5)
	data, err := io.ReadAll(flate.NewReader(bytes.NewReader(e.deflated)))
	if err != nil || uint64(len(data)) != e.size || crc32.ChecksumIEEE(data) != e.crc {
		t.Fatalf("%d bytes, %v", len(data), err)
	}
}

// noisyChunk is 64 KiB that deflates about a hundredfold: a run of one
// letter and a little noise (the same noise every time).
func noisyChunk() []byte {
	c := bytes.Repeat([]byte("a"), 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		c[i*300] = byte('b' + rng.IntN(20))
	}
	return c
}

// countingReaderAt counts the bytes Verify reads.
type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

func verifyMeasured(t *testing.T, z []byte, roots *pki.Authority) (*Report, int64) {
	t.Helper()
	in := &countingReaderAt{r: bytes.NewReader(z)}
	var rep *Report
	var err error
	peak := memtest.Peak(func() { rep, err = Verify(in, int64(len(z)), roots.Roots()) })
	if err != nil {
		t.Fatal(err)
	}
	if peak > maxExtraHeap {
		t.Errorf("verifying added %d MiB of heap (limit %d)", peak>>20, maxExtraHeap>>20)
	}
	t.Logf("+%d MiB of heap, %d KiB read", peak>>20, in.n.Load()>>10)
	return rep, in.n.Load()
}

// A bundle whose signature fails is not read further: not its evidence,
// not its journal.
func TestVerifyStopsAtABadSignature(t *testing.T) {
	a, other := newAuthority(t), newAuthority(t)
	evidence := make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{3}).Read(evidence)
	z := signedZip(t, other, uuid.New(), []entry{{name: "evidence/recording.webm", data: evidence, store: true}, {name: JournalName, data: []byte(`{"entries":[],"anchors":[]}`)}})
	rep, read := verifyMeasured(t, z, a)
	if rep.Valid || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0].Path, "manifest.json") {
		t.Fatalf("problems %+v", rep.Problems)
	}
	if read > 2<<20 {
		t.Errorf("read %d MiB of a bundle whose signature failed", read>>20)
	}
}

// The zip bombs and names a bundle may not hold are refused before
// anything is inflated.
func TestVerifyRefusesUnsafeZips(t *testing.T) {
	a := newAuthority(t)
	bomb := deflateRepeated([]byte(`{"entries":[{"details":"`), bytes.Repeat([]byte("a"), 64<<10), []byte(`"}]}`), 16<<10) // 1 GiB
	tests := []struct {
		name    string
		entries []entry
		path    string
	}{
		{"journal bomb, unsigned", []entry{{name: ManifestName, data: []byte(`{"version":1,"files":[]}`)}, {name: SignatureName, data: []byte{0x30, 0}}, {name: JournalName, raw: bomb}}, JournalName},
		{"parent directory", []entry{{name: "../x", data: []byte("x")}}, "../x"},
		{"nested parent directory", []entry{{name: "evidence/../../x", data: []byte("x")}}, "evidence/../../x"},
		{"absolute path", []entry{{name: "/etc/cron.d/x", data: []byte("x")}}, "/etc/cron.d/x"},
		{"drive letter", []entry{{name: "C:/x", data: []byte("x")}}, "C:/x"},
		{"backslash", []entry{{name: `evidence\..\x`, data: []byte("x")}}, `evidence\..\x`},
		{"control character", []entry{{name: "evidence/a\nb", data: []byte("x")}}, "evidence/a\nb"},
		{"duplicate", []entry{{name: "evidence/a", data: []byte("1")}, {name: "evidence/a", data: []byte("2")}}, "evidence/a"},
		{"duplicate but for case", []entry{{name: "evidence/A", data: []byte("1")}, {name: "evidence/a", data: []byte("2")}}, "evidence/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, read := verifyMeasured(t, makeZip(t, tt.entries), a)
			if rep.Valid || len(rep.Problems) == 0 || rep.Problems[0].Path != tt.path || !strings.HasPrefix(rep.Problems[0].Reason, "refused:") {
				t.Fatalf("problems %+v", rep.Problems)
			}
			if read > 1<<20 {
				t.Errorf("read %d KiB", read>>10)
			}
		})
	}
}

// A signed bundle whose journal is 160 MiB of one JSON string is checked
// in bounded memory: the journal is hashed in a stream and parsed one
// value at a time, and the oversized value is a problem.
func TestVerifyStreamsTheJournal(t *testing.T) {
	a := newAuthority(t)
	sid := uuid.New()
	journal := repeated([]byte(`{"entries":[{"seq":1,"session_id":"`+sid.String()+`","details":"`), noisyChunk(), []byte(`"}],"anchors":[]}`), 2560)
	z := signedZip(t, a, sid, []entry{{name: JournalName, raw: journal}})
	rep, _ := verifyMeasured(t, z, a)
	if rep.Valid || len(rep.Problems) != 1 || rep.Problems[0].Path != JournalName || !strings.Contains(rep.Problems[0].Reason, "larger than") {
		t.Fatalf("problems %+v", rep.Problems)
	}
}

// A file's declared size bounds what is read; a size that differs from
// the data is a problem, not a longer read.
func TestVerifyDeclaredSizes(t *testing.T) {
	a := newAuthority(t)
	sid := uuid.New()
	for name, declared := range map[string]uint64{"declared smaller": 1000, "declared larger": 9000} {
		t.Run(name, func(t *testing.T) {
			data := repeated([]byte("x"), bytes.Repeat([]byte("y"), 4000), nil, 1)
			data.declaredSize = declared
			z := signedZip(t, a, sid, []entry{{name: "evidence/exhibit.txt", raw: data}, {name: JournalName, data: []byte(`{"entries":[],"anchors":[]}`)}})
			rep, _ := verifyMeasured(t, z, a)
			if rep.Valid || len(rep.Problems) != 1 || rep.Problems[0].Path != "evidence/exhibit.txt" {
				t.Fatalf("problems %+v", rep.Problems)
			}
		})
	}
}

// More files than a bundle may hold are refused before archive/zip
// allocates a record for each.
func TestVerifyTooManyEntries(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range maxEntries + 1 {
		zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("e/%d", i), Method: zip.Store})
	}
	zw.Close()
	rep, err := Verify(bytes.NewReader(b.Bytes()), int64(b.Len()), nil)
	if err != nil || rep.Valid || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Reason, "more than") {
		t.Fatalf("%v %+v", err, rep)
	}
}
