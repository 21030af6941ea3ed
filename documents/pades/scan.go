package pades

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
)

// maxNesting bounds how deeply arrays and dictionaries may nest. The PDF
// parser Chamber uses recurses once per level, and running out of stack is
// a fatal error in Go, not a panic guard can catch: a 5 MB file of "["
// would take the server down.
const maxNesting = 128

// maxObjectTokens bounds the tokens of one object (a dictionary, array or
// the dictionary of a stream; stream data is not tokens). The parser
// builds every object it reads in memory, about 40 bytes a token at worst,
// so this keeps any one object under 4 MiB: a flat page tree of 30 000
// pages still fits.
const maxObjectTokens = 100_000

// maxObjectBytes bounds the bytes of one object outside stream data: a
// single string is one token, however long, and the parser holds it
// whole. A signature dictionary's /Contents (maxContentsGap) must fit.
const maxObjectBytes = maxContentsGap + 1<<20

// scanBody reads the file once, as the parser would read its objects
// (skipping strings, comments and stream data), and returns the offset of
// every object definition ("id gen obj"). It refuses a file that nests
// deeper than maxNesting, an object of more than maxObjectTokens tokens
// (trailer dictionaries included), and obj, endobj or stream inside an
// array or dictionary, where the parser would read on into the next object
// or, for endobj in an array, loop for ever.
//
// Check then accepts only cross-reference entries that point at one of
// these offsets: an object hidden inside another stream's data, which this
// scan skips, is never handed to the parser.
func scanBody(ctx context.Context, r io.ReaderAt, size int64) ([]int64, error) {
	s := &bodyScan{ctx: ctx, r: r, size: size, rd: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s.starts, nil
}

type bodyScan struct {
	ctx  context.Context
	r    io.ReaderAt
	size int64
	rd   *bufio.Reader
	pos  int64 // offset of the next byte rd returns

	depth    int
	counting bool // inside an object or a trailer: tokens count
	tokens   int
	objStart int64 // where the counted object began
	starts   []int64

	// The two tokens before the current one, for "id gen obj".
	prev   [2]scanToken
	word   [9]byte // the current run of regular characters (its head)
	wn     int
	wStart int64
	digits bool
}

type scanToken struct {
	integer bool
	start   int64
}

func (s *bodyScan) next() (byte, bool) {
	c, err := s.rd.ReadByte()
	if err != nil {
		return 0, false
	}
	s.pos++
	return c, true
}

func (s *bodyScan) run() error {
	for {
		if s.pos&(1<<20-1) == 0 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
		c, ok := s.next()
		if !ok {
			if err := s.endWord(); err != nil {
				return err
			}
			return s.endObject()
		}
		if !isSpace(c) && !isDelim(c) {
			if s.wn == 0 {
				s.wStart, s.digits = s.pos-1, true
			}
			if s.wn < len(s.word) {
				s.word[s.wn] = c
			}
			s.wn++
			s.digits = s.digits && c >= '0' && c <= '9'
			continue
		}
		if err := s.endWord(); err != nil {
			return err
		}
		if isSpace(c) {
			continue
		}
		if err := s.delimiter(c); err != nil {
			return err
		}
	}
}

// token counts one token of the current object.
func (s *bodyScan) token(t scanToken) error {
	s.prev[0], s.prev[1] = s.prev[1], t
	if !s.counting {
		return nil
	}
	if s.tokens++; s.tokens > maxObjectTokens {
		return malformed("the object near offset %d has more than %d tokens", s.pos, maxObjectTokens)
	}
	return nil
}

// endWord handles a finished run of regular characters: a number or a
// keyword.
func (s *bodyScan) endWord() error {
	if s.wn == 0 {
		return nil
	}
	n := s.wn
	s.wn = 0
	w := string(s.word[:min(n, len(s.word))])
	if n > len(s.word) {
		w = ""
	}
	switch w {
	case "obj":
		if s.depth > 0 {
			return malformed("an object definition inside an array or dictionary near offset %d", s.wStart)
		}
		if err := s.endObject(); err != nil {
			return err
		}
		start := s.wStart
		if s.prev[0].integer && s.prev[1].integer {
			start = s.prev[0].start
			s.starts = append(s.starts, start)
		}
		s.counting, s.tokens, s.objStart = true, 0, start
		s.prev = [2]scanToken{}
		return nil
	case "endobj", "xref", "startxref", "stream":
		if s.depth > 0 {
			return malformed("%s inside an array or dictionary near offset %d", w, s.wStart)
		}
		if err := s.endObject(); err != nil {
			return err
		}
		s.prev = [2]scanToken{}
		if w == "stream" {
			return s.skipStream()
		}
		return nil
	case "trailer":
		if err := s.endObject(); err != nil {
			return err
		}
		s.counting, s.tokens, s.objStart = true, 0, s.wStart
		return nil
	}
	return s.token(scanToken{integer: s.digits, start: s.wStart})
}

// endObject closes the counted object, refusing one larger than
// maxObjectBytes.
func (s *bodyScan) endObject() error {
	if s.counting && s.pos-s.objStart > maxObjectBytes {
		return malformed("the object at offset %d is larger than %d bytes", s.objStart, maxObjectBytes)
	}
	s.counting = false
	return nil
}

// skipStream jumps past the stream data to the end of "endstream".
func (s *bodyScan) skipStream() error {
	var scratch []byte
	end, err := findForward(s.ctx, s.r, s.size, s.pos, []byte("endstream"), &scratch)
	if err != nil {
		return err
	}
	s.pos = end
	s.rd.Reset(io.NewSectionReader(s.r, s.pos, s.size-s.pos))
	return nil
}

func (s *bodyScan) delimiter(c byte) error {
	start := s.pos - 1
	switch c {
	case '%':
		for c != '\n' && c != '\r' {
			var ok bool
			if c, ok = s.next(); !ok {
				return nil
			}
		}
		return nil
	case '(':
		s.skipString()
	case '<':
		if b, err := s.rd.Peek(1); err == nil && b[0] == '<' {
			s.next()
			s.depth++
		} else {
			for c != '>' {
				var ok bool
				if c, ok = s.next(); !ok {
					break
				}
			}
		}
	case '>':
		if b, err := s.rd.Peek(1); err == nil && b[0] == '>' {
			s.next()
			s.depth = max(0, s.depth-1)
		}
	case '[':
		s.depth++
	case ']':
		s.depth = max(0, s.depth-1)
	case '/':
		for {
			b, err := s.rd.Peek(1)
			if err != nil || isSpace(b[0]) || isDelim(b[0]) {
				break
			}
			s.next()
		}
	}
	if s.depth > maxNesting {
		return malformed("objects nested more than %d deep near offset %d", maxNesting, s.pos)
	}
	return s.token(scanToken{start: start})
}

func (s *bodyScan) skipString() {
	level, esc := 1, false
	for level > 0 {
		c, ok := s.next()
		if !ok {
			return
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
