package pades

import (
	"errors"
	"fmt"
	"strconv"
)

// lexer reads PDF objects from bytes held in memory, by the same lexical
// rules as the parser Chamber uses (github.com/digitorus/pdf), for two
// jobs: reading the dictionaries Check relies on (trailers, cross-reference
// streams) without regular expressions a string could fool, and proving
// that an object stream is safe before that parser reads from it.
//
// Inside an object stream the parser treats the end of the data as an
// endless run of newlines: an unterminated string or hex string, or an
// unclosed array, makes it loop for ever, appending as it goes, without
// another read that a deadline could stop. The lexer refuses every such
// construct, objects nested deeper than maxNesting and objects of more
// than maxObjectTokens tokens.
type lexer struct {
	data   []byte
	pos    int
	tokens int // tokens read for the current object
}

type tokenKind int

const (
	tEOF tokenKind = iota
	tInt
	tReal
	tBool
	tKeyword
	tName
	tString
	tOpenArray
	tCloseArray
	tOpenDict
	tCloseDict
	tRef // a parsed "id gen R", never a token
)

type token struct {
	kind tokenKind
	text string // keyword, name (without /), or decoded string
	num  int64
}

// value is a parsed object, kept only as far as Check needs it.
type value struct {
	kind tokenKind // tInt, tReal, tBool, tName, tString, tKeyword (null), tRef, tOpenArray (array), tOpenDict (dict); tEOF when absent
	num  int64
	text string
	ref  [2]int64 // id and generation of a tRef
	arr  []value
	dict map[string]value
}

// Errors of the lexer; each means the parser would misbehave.
var (
	errLexEOF       = errors.New("the data ends inside a string, hex string or array")
	errLexTokens    = fmt.Errorf("an object has more than %d tokens", maxObjectTokens)
	errLexNesting   = fmt.Errorf("objects nested more than %d deep", maxNesting)
	errLexForbidden = errors.New("obj, endobj or stream inside an object stream")
)

func isSpace(c byte) bool {
	switch c {
	case 0, '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

func isDelim(c byte) bool {
	switch c {
	case '<', '>', '(', ')', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// next reads one token. The end of the data between tokens is tEOF; inside
// a string or hex string it is errLexEOF.
func (l *lexer) next() (token, error) {
	for {
		if l.pos >= len(l.data) {
			return token{kind: tEOF}, nil
		}
		c := l.data[l.pos]
		switch {
		case isSpace(c):
			l.pos++
			continue
		case c == '%':
			for l.pos < len(l.data) && l.data[l.pos] != '\r' && l.data[l.pos] != '\n' {
				l.pos++
			}
			continue
		}
		break
	}
	l.tokens++
	if l.tokens > maxObjectTokens {
		return token{}, errLexTokens
	}
	c := l.data[l.pos]
	l.pos++
	switch c {
	case '<':
		if l.pos < len(l.data) && l.data[l.pos] == '<' {
			l.pos++
			return token{kind: tOpenDict}, nil
		}
		return l.hexString()
	case '>':
		if l.pos < len(l.data) && l.data[l.pos] == '>' {
			l.pos++
			return token{kind: tCloseDict}, nil
		}
		return token{}, errors.New("stray >")
	case '(':
		return l.literalString()
	case '[':
		return token{kind: tOpenArray}, nil
	case ']':
		return token{kind: tCloseArray}, nil
	case '/':
		return l.name()
	case ')', '{', '}':
		return token{}, fmt.Errorf("unexpected delimiter %q", c)
	}
	l.pos--
	return l.keyword(), nil
}

func (l *lexer) hexString() (token, error) {
	var b []byte
	for {
		c, ok := l.nonSpace()
		if !ok {
			return token{}, errLexEOF
		}
		if c == '>' {
			return token{kind: tString, text: string(b)}, nil
		}
		c2, ok := l.nonSpace()
		if !ok {
			return token{}, errLexEOF
		}
		if c2 == '>' { // an odd digit count: the parser refuses it
			return token{}, errors.New("malformed hex string")
		}
		x := unhex(c)<<4 | unhex(c2)
		if unhex(c) < 0 || unhex(c2) < 0 {
			return token{}, errors.New("malformed hex string")
		}
		b = append(b, byte(x))
	}
}

func (l *lexer) nonSpace() (byte, bool) {
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		l.pos++
		if !isSpace(c) {
			return c, true
		}
	}
	return 0, false
}

func (l *lexer) literalString() (token, error) {
	var b []byte
	for depth := 1; ; {
		if l.pos >= len(l.data) {
			return token{}, errLexEOF
		}
		c := l.data[l.pos]
		l.pos++
		switch c {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return token{kind: tString, text: string(b)}, nil
			}
		case '\\':
			if l.pos >= len(l.data) {
				return token{}, errLexEOF
			}
			c = l.data[l.pos]
			l.pos++
		}
		b = append(b, c)
	}
}

func (l *lexer) name() (token, error) {
	var b []byte
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		if isSpace(c) || isDelim(c) {
			break
		}
		l.pos++
		if c == '#' {
			if l.pos+2 > len(l.data) || unhex(l.data[l.pos]) < 0 || unhex(l.data[l.pos+1]) < 0 {
				return token{}, errors.New("malformed name")
			}
			c = byte(unhex(l.data[l.pos])<<4 | unhex(l.data[l.pos+1]))
			l.pos += 2
		}
		b = append(b, c)
	}
	return token{kind: tName, text: string(b)}, nil
}

func (l *lexer) keyword() token {
	start := l.pos
	for l.pos < len(l.data) && !isSpace(l.data[l.pos]) && !isDelim(l.data[l.pos]) {
		l.pos++
	}
	s := string(l.data[start:l.pos])
	switch {
	case s == "true" || s == "false":
		return token{kind: tBool, text: s}
	case isInteger(s):
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return token{kind: tKeyword, text: s}
		}
		return token{kind: tInt, num: n}
	case isReal(s):
		return token{kind: tReal, text: s}
	}
	return token{kind: tKeyword, text: s}
}

func isInteger(s string) bool {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isReal(s string) bool {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
			dots++
		case s[i] < '0' || s[i] > '9':
			return false
		}
	}
	return s != "" && dots == 1
}

// object reads one object the way the parser's readObject does and
// returns it. inStream refuses what an object stream may not hold.
func (l *lexer) object(depth int, inStream bool) (value, error) {
	if depth > maxNesting {
		return value{}, errLexNesting
	}
	t, err := l.next()
	if err != nil {
		return value{}, err
	}
	switch t.kind {
	case tEOF:
		return value{kind: tEOF}, nil
	case tOpenArray:
		return l.array(depth+1, inStream)
	case tOpenDict:
		return l.dict(depth+1, inStream)
	case tKeyword:
		switch t.text {
		case "null":
			return value{kind: tKeyword, text: "null"}, nil
		case "obj", "endobj", "stream", "endstream":
			return value{}, errLexForbidden
		}
		return value{}, fmt.Errorf("unexpected keyword %q", t.text)
	case tInt:
		return l.maybeRef(t, inStream)
	case tCloseArray, tCloseDict:
		return value{}, errors.New("unexpected ] or >>")
	}
	return value{kind: t.kind, text: t.text, num: t.num}, nil
}

// maybeRef reads "id gen R" as a reference; "id gen obj" inside an object
// stream is refused (the parser would read a nested definition).
func (l *lexer) maybeRef(t token, inStream bool) (value, error) {
	// The parser reads the next two tokens to look for "R": a token it
	// cannot finish there is as fatal as anywhere.
	v := value{kind: tInt, num: t.num}
	save, saveTokens := l.pos, l.tokens
	t2, err := l.next()
	if err != nil {
		return value{}, err
	}
	if t2.kind != tInt {
		l.pos, l.tokens = save, saveTokens
		return v, nil
	}
	t3, err := l.next()
	switch {
	case err != nil:
		return value{}, err
	case t3.kind == tKeyword && t3.text == "R":
		return value{kind: tRef, ref: [2]int64{t.num, t2.num}}, nil
	case t3.kind == tKeyword && (t3.text == "obj" || t3.text == "endobj") && inStream:
		return value{}, errLexForbidden
	}
	l.pos, l.tokens = save, saveTokens
	return v, nil
}

func (l *lexer) array(depth int, inStream bool) (value, error) {
	v := value{kind: tOpenArray}
	for {
		save, saveTokens := l.pos, l.tokens
		t, err := l.next()
		if err != nil {
			return value{}, err
		}
		switch t.kind {
		case tEOF:
			return value{}, errLexEOF
		case tCloseArray:
			return v, nil
		case tKeyword:
			if t.text == "endobj" || t.text == "obj" || t.text == "stream" {
				// The parser's array reader would take endobj as null
				// again and again without consuming it.
				return value{}, errLexForbidden
			}
		}
		l.pos, l.tokens = save, saveTokens
		e, err := l.object(depth, inStream)
		if err != nil {
			return value{}, err
		}
		v.arr = append(v.arr, e)
	}
}

func (l *lexer) dict(depth int, inStream bool) (value, error) {
	v := value{kind: tOpenDict, dict: map[string]value{}}
	for {
		t, err := l.next()
		if err != nil {
			return value{}, err
		}
		switch t.kind {
		case tCloseDict:
			if inStream {
				// A stream keyword after the dictionary would make the
				// parser return a stream that is not in the file.
				save, saveTokens := l.pos, l.tokens
				if t, err := l.next(); err == nil && t.kind == tKeyword && t.text == "stream" {
					return value{}, errLexForbidden
				}
				l.pos, l.tokens = save, saveTokens
			}
			return v, nil
		case tName:
		default:
			return value{}, errors.New("dictionary key is not a name")
		}
		e, err := l.object(depth, inStream)
		if err != nil {
			return value{}, err
		}
		v.dict[t.text] = e
	}
}

// int returns v as an integer.
func (v value) int() (int64, bool) { return v.num, v.kind == tInt }

// ints returns an array of integers.
func (v value) ints() ([]int64, bool) {
	if v.kind != tOpenArray {
		return nil, false
	}
	out := make([]int64, 0, len(v.arr))
	for _, e := range v.arr {
		n, ok := e.int()
		if !ok {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}
