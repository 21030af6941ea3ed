package pades

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/chamber-court/chamber/fault"
)

// Limits of the bounded parse. A PDF beyond them is refused before any
// third-party parser sees it, because those parsers allocate what the file
// claims (an xref /Size of 2^40 would exhaust memory) or rescan the file
// quadratically.
const (
	// MaxRevisions is the most incremental updates a PDF may carry.
	MaxRevisions = 512
	// MaxSignatures is the most signature fields Verify examines.
	MaxSignatures = 256
	// maxObjectsCeiling caps the object numbers of any PDF.
	maxObjectsCeiling = 2_000_000
	// eofWindow is how close to the end of the file the last %%EOF must be.
	eofWindow = 1024
	// maxContentsGap bounds a signature's /Contents (hex, in the file).
	maxContentsGap = 4 << 20
)

// MalformedError reports a PDF Chamber cannot parse safely: not a PDF,
// truncated, a broken cross-reference table, beyond the parse limits, or a
// panic inside a third-party parser. The API answers it with 422.
type MalformedError struct {
	Reason string
	Err    error
	Stack  []byte // set when a parser panicked, for the log
}

func (e *MalformedError) Error() string {
	if e.Err != nil {
		return "pades: malformed PDF: " + e.Reason + ": " + e.Err.Error()
	}
	return "pades: malformed PDF: " + e.Reason
}

func (e *MalformedError) Unwrap() error { return e.Err }

// FaultKind makes a MalformedError a fault.Public error (422).
func (e *MalformedError) FaultKind() fault.Kind { return fault.Invalid }

// FaultCode tells a PDF over Chamber's parsing budget from a broken one.
func (e *MalformedError) FaultCode() string {
	var limit *LimitError
	if errors.As(e.Err, &limit) {
		return "pdf_too_complex"
	}
	return "malformed_pdf"
}

func malformed(reason string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(reason, args...)}
}

// ErrEncrypted reports an encrypted PDF, which Chamber neither signs nor
// verifies: its strings (signature values included) would need the password.
var ErrEncrypted = &fault.Error{Kind: fault.Invalid, Code: "encrypted_pdf", Message: "encrypted PDFs are not supported"}

// Revision is one version of the document: the original file or an
// incremental update appended to it.
type Revision struct {
	// End is the offset just past this revision's %%EOF marker and its
	// end-of-line, i.e. the size of the file as it was then.
	End int64 `json:"end"`
	// EOF is the offset just past "%%EOF" (without the end-of-line);
	// a signature's ByteRange may end at either.
	EOF int64 `json:"-"`
	// Xref is the offset of this revision's cross-reference section.
	Xref int64 `json:"xref"`
	// XrefStream tells a cross-reference stream from a table.
	XrefStream bool `json:"xref_stream"`
	// Freed lists objects this revision's table marks free ('f').
	Freed []uint32 `json:"-"`
}

// Structure is what Check learns about a PDF without a full parse.
type Structure struct {
	Version   string     `json:"version"`
	Revisions []Revision `json:"revisions"` // oldest first
	// MaxObjects is the highest object count any cross-reference section
	// claims.
	MaxObjects int64 `json:"max_objects"`
}

// Check is a validity check of a PDF, independent of content sniffing,
// that decides whether the parser may see the file at all: header,
// trailer, the chain of cross-reference sections and their claimed sizes,
// encryption, and one scan of the body (scanBody) that bounds how deeply
// objects nest and how large each is, and finds where objects are defined;
// every cross-reference entry must locate one of those definitions. It
// never panics and returns a *MalformedError or ErrEncrypted for files
// Chamber refuses. The upload path calls it to reject a broken PDF early.
// Object streams are checked later, when a parser is opened on the file
// (openReader), since only then is it known which ones it will read.
func Check(ctx context.Context, r io.ReaderAt, size int64) (st *Structure, err error) {
	defer guard(&err, "structure check")
	if size < 32 {
		return nil, malformed("file too small (%d bytes)", size)
	}
	version, err := readVersion(r)
	if err != nil {
		return nil, err
	}
	st = &Structure{Version: version}
	tail, end, err := readTail(r, size)
	if err != nil {
		return nil, err
	}

	// Walk the chain of cross-reference sections from the last startxref.
	lastXref, ok := startxrefBefore(tail, end-5)
	if !ok {
		return nil, malformed("no startxref before the final %%%%EOF")
	}
	starts, err := scanBody(ctx, r, size)
	if err != nil {
		return nil, err
	}
	maxObjects := min(int64(maxObjectsCeiling), max(100_000, size/16))
	sr := &sectionReader{r: r, size: size, maxObjects: maxObjects, starts: starts}
	chain, err := sr.chain(ctx, lastXref, st)
	if err != nil {
		return nil, err
	}

	// Revisions end at the %%EOF markers whose startxref names a section
	// of the chain; other "%%EOF" bytes (inside streams) are not ends.
	ends, err := findEOFs(ctx, r, size)
	if err != nil {
		return nil, err
	}
	st.Revisions = revisionsOf(ends, chain)
	if len(st.Revisions) == 0 || st.Revisions[len(st.Revisions)-1].Xref != lastXref {
		return nil, malformed("the final %%%%EOF does not close the last cross-reference section")
	}
	return st, nil
}

// readVersion reads the version from the %PDF- header.
func readVersion(r io.ReaderAt) (string, error) {
	head := make([]byte, 16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return "", &MalformedError{Reason: "cannot read header", Err: err}
	}
	m := headerRE.FindSubmatch(head)
	if m == nil {
		return "", malformed("no %%PDF-1.x or %%PDF-2.0 header at the start of the file")
	}
	return string(m[1]), nil
}

// readTail reads the end of the file, which must be the final %%EOF
// marker and at most eofWindow bytes of padding. end is where the
// padding begins.
func readTail(r io.ReaderAt, size int64) (tail []byte, end int, err error) {
	tailLen := min(size, int64(eofWindow+256))
	tail = make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, &MalformedError{Reason: "cannot read trailer", Err: err}
	}
	trimmed := bytes.TrimRight(tail, "\r\n\t \x00")
	if !bytes.HasSuffix(trimmed, []byte("%%EOF")) {
		if bytes.LastIndex(tail, []byte("%%EOF")) < 0 {
			return nil, 0, malformed("no %%%%EOF marker at the end of the file (truncated?)")
		}
		return nil, 0, malformed("data after the last %%%%EOF marker")
	}
	if int64(len(tail)-len(trimmed)) > eofWindow {
		return nil, 0, malformed("too much padding after %%%%EOF")
	}
	return tail, len(trimmed), nil
}

// chain reads the cross-reference sections from the one at last back
// along /Prev, by offset, noting in st the highest /Size among them and
// their hybrid /XRefStm streams.
func (sr *sectionReader) chain(ctx context.Context, last int64, st *Structure) (map[int64]*section, error) {
	chain := map[int64]*section{}
	for off := last; off >= 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(chain) >= MaxRevisions {
			return nil, malformed("more than %d cross-reference sections", MaxRevisions)
		}
		if _, seen := chain[off]; seen {
			return nil, malformed("cross-reference /Prev loop at offset %d", off)
		}
		if off >= sr.size {
			return nil, malformed("cross-reference offset %d beyond the end of the file", off)
		}
		sec, err := sr.read(off)
		if err != nil {
			return nil, err
		}
		if sec.encrypted {
			return nil, ErrEncrypted
		}
		st.MaxObjects = max(st.MaxObjects, sec.size)
		chain[off] = sec
		if sec.xrefStm > 0 {
			if sec.xrefStm >= sr.size {
				return nil, malformed("/XRefStm offset beyond the end of the file")
			}
			hyb, err := sr.read(sec.xrefStm)
			if err != nil {
				return nil, err
			}
			st.MaxObjects = max(st.MaxObjects, hyb.size)
		}
		off = sec.prev
	}
	return chain, nil
}

// revisionsOf returns a revision for each of the %%EOF marks that closes
// a section of the chain, the first that does.
func revisionsOf(ends []eofMark, chain map[int64]*section) []Revision {
	var revs []Revision
	for _, e := range ends {
		if e.xref < 0 {
			continue
		}
		sec, ok := chain[e.xref]
		if !ok || sec.used {
			continue
		}
		sec.used = true
		revs = append(revs, Revision{End: e.end, EOF: e.eof, Xref: e.xref, XrefStream: sec.stream, Freed: sec.freed})
	}
	return revs
}

var (
	headerRE    = regexp.MustCompile(`^%PDF-(1\.[0-7]|2\.0)`)
	startxrefRE = regexp.MustCompile(`startxref\s+(\d{1,15})\s*$`)
	intRE       = regexp.MustCompile(`^\s*(\d{1,15})\s+(\d{1,5})\s+obj\b`)
)

// startxrefBefore finds "startxref N" ending just before position eofAt of buf.
func startxrefBefore(buf []byte, eofAt int) (int64, bool) {
	from := max(0, eofAt-64)
	m := startxrefRE.FindSubmatch(buf[from:eofAt])
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	return n, err == nil
}

type eofMark struct {
	eof, end int64 // past "%%EOF"; past its end-of-line
	xref     int64 // the startxref before it, or -1
}

// findEOFs scans the file once for %%EOF markers.
func findEOFs(ctx context.Context, r io.ReaderAt, size int64) ([]eofMark, error) {
	const chunk = 1 << 20
	const overlap = 80
	buf := make([]byte, min(chunk+overlap, size)) // a small file needs no 1 MiB buffer
	var marks []eofMark
	for base := int64(0); base < size; base += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &MalformedError{Reason: "read", Err: err}
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], []byte("%%EOF"))
			if j < 0 {
				break
			}
			at := i + j
			i = at + 5
			if int64(at) >= chunk && base+chunk < size {
				break // the next chunk sees it
			}
			if len(marks) >= 4*MaxRevisions {
				return nil, malformed("more than %d %%%%EOF markers", 4*MaxRevisions)
			}
			eof := base + int64(at) + 5
			end := eof
			// One end-of-line belongs to the marker.
			if end < size {
				var c [2]byte
				k, _ := r.ReadAt(c[:], end)
				if k > 0 && c[0] == '\r' {
					end++
					if k > 1 && c[1] == '\n' {
						end++
					}
				} else if k > 0 && c[0] == '\n' {
					end++
				}
			}
			xref := int64(-1)
			if n, ok := startxrefBefore(b, at); ok {
				xref = n
			} else if at < 64 && base > 0 {
				// The startxref straddles the chunk boundary: reread.
				var w [80]byte
				from := max(0, base+int64(at)-64)
				k, _ := r.ReadAt(w[:base+int64(at)-from], from)
				if n, ok := startxrefBefore(w[:k], k); ok {
					xref = n
				}
			}
			marks = append(marks, eofMark{eof: eof, end: end, xref: xref})
		}
	}
	return marks, nil
}

// tableScanner reads whitespace-separated tokens of an xref table,
// tracking the file offset it has consumed up to.
type tableScanner struct {
	br  *bufio.Reader
	off int64
}

func newTableScanner(r io.ReaderAt, off, end int64) *tableScanner {
	return &tableScanner{br: bufio.NewReaderSize(io.NewSectionReader(r, off, end-off), 16<<10), off: off}
}

func (s *tableScanner) token() (string, error) {
	var tok []byte
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			if len(tok) > 0 {
				return string(tok), nil
			}
			return "", io.ErrUnexpectedEOF
		}
		s.off++
		if c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '\f' || c == 0 {
			if len(tok) > 0 {
				return string(tok), nil
			}
			continue
		}
		tok = append(tok, c)
		if len(tok) > 20 {
			return "", errors.New("token too long")
		}
	}
}

// guard turns a panic in a third-party parser into a *MalformedError.
func guard(err *error, what string) {
	if p := recover(); p != nil {
		*err = &MalformedError{Reason: what + " failed", Err: fmt.Errorf("parser panic: %v", p), Stack: debug.Stack()}
	}
}

// DefaultTimeout bounds one Sign or Verify call when the context has no
// deadline of its own.
const DefaultTimeout = 2 * time.Minute
