package pades

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

type section struct {
	stream    bool
	prev      int64 // -1 when none
	xrefStm   int64
	size      int64 // the highest object number it may define, plus one
	encrypted bool
	freed     []uint32
	used      bool
}

// sectionReader reads cross-reference sections for Check.
type sectionReader struct {
	r          io.ReaderAt
	size       int64
	maxObjects int64
	starts     []int64 // object definitions scanBody found
}

// sectionWindow is how much of a section's head is read to find its
// dictionary; trailers and cross-reference stream dictionaries are small.
const sectionWindow = 64 << 10

// read reads the cross-reference section at off: its entries, each of
// which must locate an object definition the scan found, and its
// dictionary's /Prev, /Size, /XRefStm and /Encrypt. The dictionary is
// read with the lexer, as the parser reads it, so that a /Prev inside a
// string cannot send Check down another chain than the parser's.
func (sr *sectionReader) read(off int64) (*section, error) {
	buf := make([]byte, min(sectionWindow, sr.size-off))
	n, err := sr.r.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &MalformedError{Reason: "read", Err: err}
	}
	buf = buf[:n]
	switch {
	case bytes.HasPrefix(buf, []byte("xref")):
		return sr.table(off)
	case intRE.Match(buf):
		return sr.stream(off, buf)
	}
	return nil, malformed("no cross-reference section at offset %d", off)
}

// table reads a cross-reference table and the trailer after it.
func (sr *sectionReader) table(off int64) (*section, error) {
	sec := &section{prev: -1}
	p := newTableScanner(sr.r, off+4, sr.size)
	var total int64
	bad := func(err error) error {
		return &MalformedError{Reason: fmt.Sprintf("cross-reference table at %d", off), Err: err}
	}
	for {
		tok, err := p.token()
		if err != nil {
			return nil, bad(err)
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
		if start+count > sr.maxObjects || total > sr.maxObjects {
			return nil, malformed("cross-reference table at %d claims more than %d objects", off, sr.maxObjects)
		}
		sec.size = max(sec.size, start+count)
		for i := int64(0); i < count; i++ {
			var f [3]string
			for k := range f {
				if f[k], err = p.token(); err != nil {
					return nil, bad(err)
				}
			}
			switch f[2] {
			case "n":
				at, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return nil, malformed("cross-reference table at %d: bad entry", off)
				}
				if err := sr.locates(start+i, at); err != nil {
					return nil, err
				}
			case "f":
				if start+i != 0 && f[1] != "65535" {
					sec.freed = append(sec.freed, uint32(start+i))
				}
			default:
				return nil, malformed("cross-reference table at %d: bad entry", off)
			}
		}
	}
	trailer, err := sr.dictAt(p.off)
	if err != nil {
		return nil, &MalformedError{Reason: fmt.Sprintf("trailer of the cross-reference table at %d", off), Err: err}
	}
	if err := sec.fromDict(trailer, sr.maxObjects); err != nil {
		return nil, err
	}
	return sec, nil
}

// dictAt reads the dictionary at off.
func (sr *sectionReader) dictAt(off int64) (value, error) {
	buf := make([]byte, min(sectionWindow, sr.size-off))
	n, err := sr.r.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return value{}, err
	}
	l := &lexer{data: buf[:n]}
	v, err := l.object(0, false)
	if err != nil {
		return value{}, err
	}
	if v.kind != tOpenDict {
		return value{}, errors.New("not a dictionary")
	}
	return v, nil
}

// fromDict takes what Check needs from a trailer or cross-reference
// stream dictionary.
func (sec *section) fromDict(d value, maxObjects int64) error {
	if p, ok := d.dict["Prev"]; ok {
		n, ok := p.int()
		if !ok || n < 0 {
			return malformed("/Prev is not an offset")
		}
		sec.prev = n
	}
	if x, ok := d.dict["XRefStm"].int(); ok && x > 0 {
		sec.xrefStm = x
	}
	if s, ok := d.dict["Size"].int(); ok {
		if s > maxObjects || s < 0 {
			return malformed("/Size %d beyond %d objects", s, maxObjects)
		}
		sec.size = max(sec.size, s)
	}
	_, sec.encrypted = d.dict["Encrypt"]
	return nil
}

// stream reads a cross-reference stream: its dictionary (with the lexer,
// which also skips "id gen obj") and, decompressed, its entries.
func (sr *sectionReader) stream(off int64, buf []byte) (*section, error) {
	sec := &section{prev: -1, stream: true}
	l := &lexer{data: buf}
	for range 3 { // id gen obj
		if _, err := l.next(); err != nil {
			return nil, malformed("cross-reference stream at %d: %v", off, err)
		}
	}
	d, err := l.object(0, false)
	if err != nil || d.kind != tOpenDict {
		return nil, malformed("cross-reference stream at %d: no dictionary within %d bytes", off, sectionWindow)
	}
	if t := d.dict["Type"]; t.kind != tName || t.text != "XRef" {
		return nil, malformed("object at %d is not a cross-reference stream", off)
	}
	if t, err := l.next(); err != nil || t.kind != tKeyword || t.text != "stream" {
		return nil, malformed("cross-reference stream at %d: no stream keyword after its dictionary", off)
	}
	data := off + int64(l.pos)
	if rest := buf[l.pos:]; bytes.HasPrefix(rest, []byte("\r\n")) {
		data += 2
	} else if len(rest) > 0 && (rest[0] == '\n' || rest[0] == '\r') {
		data++
	} else {
		return nil, malformed("cross-reference stream at %d: stream keyword not followed by a newline", off)
	}
	if err := sec.fromDict(d, sr.maxObjects); err != nil {
		return nil, err
	}
	if _, ok := d.dict["Size"].int(); !ok {
		return nil, malformed("cross-reference stream at %d: no /Size", off)
	}
	x := xrefStream{off: off, data: data, dict: d}
	if err := x.layout(sr.maxObjects); err != nil {
		return nil, err
	}
	sec.size = max(sec.size, x.end)
	if err := sr.entries(&x); err != nil {
		return nil, err
	}
	return sec, nil
}

// xrefStream is the layout of a cross-reference stream's data.
type xrefStream struct {
	off, data int64
	dict      value
	w         [3]int
	index     []int64
	end       int64 // past the highest object number
	length    int64
	columns   int64 // PNG predictor columns; 0 without a predictor
}

func (x *xrefStream) layout(maxObjects int64) error {
	bad := func(what string) error { return malformed("cross-reference stream at %d: %s", x.off, what) }
	w, ok := x.dict.dict["W"].ints()
	if !ok || len(w) != 3 {
		return bad("bad /W")
	}
	for i, v := range w {
		if v < 0 || v > 8 {
			return bad(fmt.Sprintf("field width %d", v))
		}
		x.w[i] = int(v)
	}
	size, _ := x.dict.dict["Size"].int()
	x.index = []int64{0, size}
	if idx, ok := x.dict.dict["Index"]; ok {
		if x.index, ok = idx.ints(); !ok || len(x.index)%2 != 0 {
			return bad("bad /Index")
		}
	}
	var total int64
	for i := 0; i < len(x.index); i += 2 {
		a, c := x.index[i], x.index[i+1]
		total += c
		if a < 0 || c < 0 || a+c > maxObjects || total > maxObjects {
			return bad(fmt.Sprintf("/Index beyond %d objects", maxObjects))
		}
		x.end = max(x.end, a+c)
	}
	var ok2 bool
	if x.length, ok2 = x.dict.dict["Length"].int(); !ok2 || x.length < 0 {
		return bad("/Length is not a direct integer")
	}
	switch f := x.dict.dict["Filter"]; {
	case f.kind == tEOF: // absent
	case f.kind == tName && f.text == "FlateDecode":
	case f.kind == tOpenArray && len(f.arr) == 1 && f.arr[0].kind == tName && f.arr[0].text == "FlateDecode":
	default:
		return bad("filter other than /FlateDecode")
	}
	parms := x.dict.dict["DecodeParms"]
	if parms.kind == tOpenArray && len(parms.arr) == 1 {
		parms = parms.arr[0]
	}
	if pred, ok := parms.dict["Predictor"]; ok {
		if p, _ := pred.int(); p != 12 {
			return bad("predictor other than PNG Up (12)")
		}
		if x.columns, ok = parms.dict["Columns"].int(); !ok || x.columns <= 0 || x.columns > 64 {
			return bad("bad predictor /Columns")
		}
	}
	return nil
}

// entries decompresses the stream's entries, checking that every entry
// of type 1 locates an object definition.
func (sr *sectionReader) entries(x *xrefStream) (err error) {
	defer guard(&err, "reading a cross-reference stream")
	var rd io.Reader = io.NewSectionReader(sr.r, x.data, x.length)
	if f := x.dict.dict["Filter"]; f.kind != tEOF {
		zr, err := zlib.NewReader(rd)
		if err != nil {
			return &MalformedError{Reason: fmt.Sprintf("cross-reference stream at %d", x.off), Err: err}
		}
		rd = zr
	}
	if x.columns > 0 {
		rd = &pngUp{r: rd, row: make([]byte, 1+x.columns), prev: make([]byte, 1+x.columns)}
	}
	br := bufio.NewReader(rd)
	entry := make([]byte, x.w[0]+x.w[1]+x.w[2])
	for i := 0; i < len(x.index); i += 2 {
		for k := range x.index[i+1] {
			if _, err := io.ReadFull(br, entry); err != nil {
				return &MalformedError{Reason: fmt.Sprintf("cross-reference stream at %d: entries", x.off), Err: err}
			}
			typ := int64(1)
			if x.w[0] > 0 {
				typ = decodeInt(entry[:x.w[0]])
			}
			if typ == 1 {
				if err := sr.locates(x.index[i]+k, decodeInt(entry[x.w[0]:x.w[0]+x.w[1]])); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func decodeInt(b []byte) int64 {
	var n int64
	for _, c := range b {
		n = n<<8 | int64(c)
	}
	return n
}

// pngUp undoes the PNG Up predictor the way the parser does: every row
// must carry the Up tag.
type pngUp struct {
	r         io.Reader
	row, prev []byte
	pend      []byte
}

func (p *pngUp) Read(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if len(p.pend) > 0 {
			m := copy(b, p.pend)
			n, b, p.pend = n+m, b[m:], p.pend[m:]
			continue
		}
		if _, err := io.ReadFull(p.r, p.row); err != nil {
			return n, err
		}
		if p.row[0] != 2 {
			return n, errors.New("malformed PNG Up row")
		}
		for i, c := range p.row {
			p.prev[i] += c
		}
		p.pend = p.prev[1:]
	}
	return n, nil
}

// locates checks that the entry for object id at offset at points at an
// object definition the scan found (allowing white space and comments
// before it). An entry pointing anywhere else — into another stream's
// data, say — would let the parser read bytes the scan never bounded.
func (sr *sectionReader) locates(id, at int64) error {
	if at == 0 {
		return nil // the parser reads such an entry as a free object
	}
	if _, ok := slices.BinarySearch(sr.starts, at); ok {
		return nil
	}
	if at > 0 && at < sr.size {
		var b [256]byte
		n, _ := sr.r.ReadAt(b[:min(int64(len(b)), sr.size-at)], at)
		l := &lexer{data: b[:n]}
		if t, err := l.next(); err == nil && t.kind == tInt {
			skipped := int64(l.pos) - int64(len(strconv.FormatInt(t.num, 10)))
			if _, ok := slices.BinarySearch(sr.starts, at+skipped); ok {
				return nil
			}
		}
	}
	return malformed("the cross-reference entry of object %d points at offset %d, where the file defines no object", id, at)
}
