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
	// readBudgetFactor bounds the bytes the parsers may read, as a multiple
	// of the file size plus a constant; a crafted file that makes a parser
	// reread itself endlessly runs out of budget instead of time.
	readBudgetFactor = 24
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

func malformed(reason string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(reason, args...)}
}

// ErrEncrypted reports an encrypted PDF, which Chamber neither signs nor
// verifies: its strings (signature values included) would need the password.
var ErrEncrypted = errors.New("pades: encrypted PDFs are not supported")

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

// Check is a quick validity check of a PDF, independent of content
// sniffing: header, trailer, the chain of cross-reference sections and
// their claimed sizes, and encryption. It reads only the file's structural
// parts (a few KiB for most files, plus one scan for %%EOF markers), never
// panics, and returns a *MalformedError or ErrEncrypted for files Chamber
// refuses. The upload path may call it to reject a broken PDF early.
func Check(ctx context.Context, r io.ReaderAt, size int64) (st *Structure, err error) {
	defer guard(&err, "structure check")
	if size < 32 {
		return nil, malformed("file too small (%d bytes)", size)
	}
	head := make([]byte, 16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, &MalformedError{Reason: "cannot read header", Err: err}
	}
	m := headerRE.FindSubmatch(head)
	if m == nil {
		return nil, malformed("no %%PDF-1.x or %%PDF-2.0 header at the start of the file")
	}
	st = &Structure{Version: string(m[1])}
	maxObjects := min(int64(maxObjectsCeiling), max(100_000, size/16))

	tailLen := min(size, int64(eofWindow+256))
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		return nil, &MalformedError{Reason: "cannot read trailer", Err: err}
	}
	trimmed := bytes.TrimRight(tail, "\r\n\t \x00")
	if !bytes.HasSuffix(trimmed, []byte("%%EOF")) {
		if bytes.LastIndex(tail, []byte("%%EOF")) < 0 {
			return nil, malformed("no %%%%EOF marker at the end of the file (truncated?)")
		}
		return nil, malformed("data after the last %%%%EOF marker")
	}
	if int64(len(tail)-len(trimmed)) > eofWindow {
		return nil, malformed("too much padding after %%%%EOF")
	}

	// Walk the chain of cross-reference sections from the last startxref.
	lastXref, ok := startxrefBefore(tail, len(trimmed)-5)
	if !ok {
		return nil, malformed("no startxref before the final %%%%EOF")
	}
	chain := map[int64]*section{}
	order := []int64{}
	for off := lastXref; off >= 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(order) >= MaxRevisions {
			return nil, malformed("more than %d cross-reference sections", MaxRevisions)
		}
		if _, seen := chain[off]; seen {
			return nil, malformed("cross-reference /Prev loop at offset %d", off)
		}
		if off >= size {
			return nil, malformed("cross-reference offset %d beyond the end of the file", off)
		}
		sec, err := readSection(r, size, off, maxObjects)
		if err != nil {
			return nil, err
		}
		if sec.encrypted {
			return nil, ErrEncrypted
		}
		st.MaxObjects = max(st.MaxObjects, sec.size)
		chain[off] = sec
		order = append(order, off)
		if sec.xrefStm > 0 {
			if sec.xrefStm >= size {
				return nil, malformed("/XRefStm offset beyond the end of the file")
			}
			hyb, err := readSection(r, size, sec.xrefStm, maxObjects)
			if err != nil {
				return nil, err
			}
			st.MaxObjects = max(st.MaxObjects, hyb.size)
		}
		off = sec.prev
	}

	if err := checkNesting(ctx, r, size); err != nil {
		return nil, err
	}

	// Revisions end at the %%EOF markers whose startxref names a section
	// of the chain; other "%%EOF" bytes (inside streams) are not ends.
	ends, err := findEOFs(ctx, r, size)
	if err != nil {
		return nil, err
	}
	for _, e := range ends {
		if e.xref < 0 {
			continue
		}
		sec, ok := chain[e.xref]
		if !ok || sec.used {
			continue
		}
		sec.used = true
		st.Revisions = append(st.Revisions, Revision{End: e.end, EOF: e.eof, Xref: e.xref, XrefStream: sec.stream, Freed: sec.freed})
	}
	if len(st.Revisions) == 0 || st.Revisions[len(st.Revisions)-1].Xref != lastXref {
		return nil, malformed("the final %%%%EOF does not close the last cross-reference section")
	}
	return st, nil
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

type section struct {
	stream    bool
	prev      int64 // -1 when none
	xrefStm   int64
	size      int64
	encrypted bool
	freed     []uint32
	used      bool
}

var (
	prevRE    = regexp.MustCompile(`/Prev\s+(\d{1,15})`)
	sizeRE    = regexp.MustCompile(`/Size\s+(\d{1,15})`)
	xrefStmRE = regexp.MustCompile(`/XRefStm\s+(\d{1,15})`)
	encryptRE = regexp.MustCompile(`/Encrypt\b`)
	indexRE   = regexp.MustCompile(`/Index\s*\[([\d\s]*)\]`)
	wRE       = regexp.MustCompile(`/W\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s*\]`)
	xrefTypRE = regexp.MustCompile(`/Type\s*/XRef\b`)
)

// readSection reads the cross-reference section at off just enough to
// bound it: its object numbers, its /Prev, and whether it encrypts.
func readSection(r io.ReaderAt, size, off, maxObjects int64) (*section, error) {
	const window = 64 << 10
	buf := make([]byte, min(window, size-off))
	n, err := r.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &MalformedError{Reason: "read", Err: err}
	}
	buf = buf[:n]
	sec := &section{prev: -1}
	var dict []byte
	switch {
	case bytes.HasPrefix(buf, []byte("xref")):
		// A table: subsections "start count" followed by count entries.
		p := newTableScanner(r, off+4, size)
		var total int64
		for {
			tok, err := p.token()
			if err != nil {
				return nil, &MalformedError{Reason: fmt.Sprintf("cross-reference table at %d", off), Err: err}
			}
			if tok == "trailer" {
				break
			}
			start, err1 := strconv.ParseInt(tok, 10, 64)
			ctok, err := p.token()
			count, err2 := strconv.ParseInt(ctok, 10, 64)
			if err != nil || err1 != nil || err2 != nil || start < 0 || count < 0 {
				return nil, malformed("cross-reference table at %d: bad subsection header", off)
			}
			total += count
			if start+count > maxObjects || total > maxObjects {
				return nil, malformed("cross-reference table at %d claims more than %d objects", off, maxObjects)
			}
			sec.size = max(sec.size, start+count)
			for i := int64(0); i < count; i++ {
				var f [3]string
				for k := range f {
					if f[k], err = p.token(); err != nil {
						return nil, &MalformedError{Reason: fmt.Sprintf("cross-reference table at %d", off), Err: err}
					}
				}
				switch f[2] {
				case "n":
				case "f":
					if start+i != 0 && f[1] != "65535" {
						sec.freed = append(sec.freed, uint32(start+i))
					}
				default:
					return nil, malformed("cross-reference table at %d: bad entry", off)
				}
			}
		}
		tail := make([]byte, 4096)
		k, _ := r.ReadAt(tail, p.off)
		dict = tail[:k]
		if end := bytes.Index(dict, []byte("startxref")); end >= 0 {
			dict = dict[:end]
		}
	case intRE.Match(buf):
		sec.stream = true
		end := bytes.Index(buf, []byte("stream"))
		if end < 0 {
			return nil, malformed("cross-reference stream at %d: no stream keyword within %d bytes", off, window)
		}
		dict = buf[:end]
		if !xrefTypRE.Match(dict) {
			return nil, malformed("object at %d is not a cross-reference stream", off)
		}
		w := wRE.FindSubmatch(dict)
		if w == nil {
			return nil, malformed("cross-reference stream at %d: bad /W", off)
		}
		for _, x := range w[1:] {
			if v, _ := strconv.Atoi(string(x)); v > 8 {
				return nil, malformed("cross-reference stream at %d: field width %d", off, v)
			}
		}
		s := sizeRE.FindSubmatch(dict)
		if s == nil {
			return nil, malformed("cross-reference stream at %d: no /Size", off)
		}
		sec.size, _ = strconv.ParseInt(string(s[1]), 10, 64)
		if sec.size > maxObjects {
			return nil, malformed("cross-reference stream at %d claims %d objects (limit %d)", off, sec.size, maxObjects)
		}
		if idx := indexRE.FindSubmatch(dict); idx != nil {
			nums := bytes.Fields(idx[1])
			if len(nums)%2 != 0 {
				return nil, malformed("cross-reference stream at %d: odd /Index", off)
			}
			var total int64
			for i := 0; i < len(nums); i += 2 {
				a, _ := strconv.ParseInt(string(nums[i]), 10, 64)
				c, _ := strconv.ParseInt(string(nums[i+1]), 10, 64)
				total += c
				if a+c > maxObjects || total > maxObjects || a < 0 || c < 0 {
					return nil, malformed("cross-reference stream at %d: /Index beyond %d objects", off, maxObjects)
				}
			}
		}
	default:
		return nil, malformed("no cross-reference section at offset %d", off)
	}
	if m := prevRE.FindSubmatch(dict); m != nil {
		sec.prev, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := xrefStmRE.FindSubmatch(dict); m != nil {
		sec.xrefStm, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if !sec.stream {
		if m := sizeRE.FindSubmatch(dict); m != nil {
			s, _ := strconv.ParseInt(string(m[1]), 10, 64)
			if s > maxObjects {
				return nil, malformed("trailer /Size %d beyond %d objects", s, maxObjects)
			}
		}
	}
	sec.encrypted = encryptRE.Match(dict)
	return sec, nil
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

// budgetReader is an io.ReaderAt that stops serving reads once its context
// is done or its byte budget is spent, so a pathological file cannot keep a
// parser busy forever: the parser sees a read error (and usually panics,
// which guard catches).
type budgetReader struct {
	ctx    context.Context
	r      io.ReaderAt
	budget int64
	used   int64
}

var errBudget = errors.New("pades: parse budget exhausted")

func newBudgetReader(ctx context.Context, r io.ReaderAt, size int64) *budgetReader {
	return &budgetReader{ctx: ctx, r: r, budget: readBudgetFactor*size + 64<<20}
}

func (b *budgetReader) ReadAt(p []byte, off int64) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	b.used += int64(len(p))
	if b.used > b.budget {
		return 0, errBudget
	}
	return b.r.ReadAt(p, off)
}

// DefaultTimeout bounds one Sign or Verify call when the context has no
// deadline of its own.
const DefaultTimeout = 2 * time.Minute

// maxNesting bounds how deeply arrays and dictionaries may nest. The PDF
// parser Chamber uses recurses once per level, and running out of stack is
// a fatal error in Go, not a panic guard can catch: a 5 MB file of "["
// would take the server down.
const maxNesting = 128

// checkNesting scans the file's objects (skipping strings, comments and
// stream data) and refuses one that nests arrays and dictionaries deeper
// than maxNesting.
func checkNesting(ctx context.Context, r io.ReaderAt, size int64) error {
	pos := int64(0)
	rd := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)
	depth := 0
	var word [9]byte // the current run of letters, for "stream" and "obj"
	wn := 0
	var scratch []byte
	next := func() (byte, bool) {
		c, err := rd.ReadByte()
		if err != nil {
			return 0, false
		}
		pos++
		return c, true
	}
	for {
		if pos&(1<<20-1) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c, ok := next()
		if !ok {
			return nil
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			if wn < len(word) {
				word[wn] = c
			}
			wn++
			continue
		}
		if wn > 0 {
			switch string(word[:min(wn, len(word))]) {
			case "obj", "endobj":
				depth = 0
			case "stream":
				if wn == 6 {
					end, err := findForward(ctx, r, size, pos, []byte("endstream"), &scratch)
					if err != nil {
						return err
					}
					pos = end
					rd.Reset(io.NewSectionReader(r, pos, size-pos))
					wn = 0
					continue
				}
			}
			wn = 0
		}
		switch c {
		case '%':
			for c != '\n' && c != '\r' {
				if c, ok = next(); !ok {
					return nil
				}
			}
		case '(':
			level, esc := 1, false
			for level > 0 {
				if c, ok = next(); !ok {
					return nil
				}
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '(':
					level++
				case c == ')':
					level--
				}
			}
		case '[':
			depth++
		case ']':
			depth = max(0, depth-1)
		case '<':
			if b, err := rd.Peek(1); err == nil && b[0] == '<' {
				next()
				depth++
			} else {
				for c != '>' {
					if c, ok = next(); !ok {
						return nil
					}
				}
			}
		case '>':
			if b, err := rd.Peek(1); err == nil && b[0] == '>' {
				next()
				depth = max(0, depth-1)
			}
		}
		if depth > maxNesting {
			return malformed("objects nested more than %d deep near offset %d", maxNesting, pos)
		}
	}
}

// findForward returns the offset just past the first occurrence of pat at
// or after from, or size when there is none. It reads a small window
// first, since most streams are small, and widens it as it goes.
func findForward(ctx context.Context, r io.ReaderAt, size, from int64, pat []byte, buf *[]byte) (int64, error) {
	window := int64(4 << 10)
	for off := from; off < size; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		need := int(min(window+int64(len(pat)), size-off))
		if cap(*buf) < need {
			*buf = make([]byte, need)
		}
		b := (*buf)[:need]
		n, err := r.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, &MalformedError{Reason: "read", Err: err}
		}
		if i := bytes.Index(b[:n], pat); i >= 0 {
			return off + int64(i+len(pat)), nil
		}
		off += window
		window = min(window*2, 1<<20)
	}
	return size, nil
}
