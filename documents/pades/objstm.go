package pades

import (
	"regexp"
	"strconv"

	"github.com/digitorus/pdf"
)

// Limits of object streams (ISO 32000-1 §7.5.7). Real ones hold a few
// hundred objects in well under a megabyte.
const (
	maxObjStmBytes   = 8 << 20
	maxObjStmObjects = 100_000
	maxObjStmExtends = 16
)

// admit checks a parser just opened on (part of) the file before anything
// reads objects through it: the cross-reference entries it loaded count
// against the budget, and every object stream it may read from is proved
// safe first (checkObjStm). Check has already made sure that every entry
// outside object streams locates an object the body scan bounded.
func (b *budget) admit(rdr *pdf.Reader) (err error) {
	defer guard(&err, "checking object streams")
	xr := rdr.Xref()
	n := int64(len(xr))
	if b.lim.readerObjects > 0 && n > b.lim.readerObjects {
		b.err = &LimitError{What: "objects in one revision", Limit: b.lim.readerObjects}
		return b.err
	}
	if err := b.object(n); err != nil {
		return err
	}
	seen := map[uint32]bool{}
	for i := range xr {
		s := xr[i].Stream()
		if id := s.GetID(); id != 0 && !seen[id] {
			seen[id] = true
			if err := b.checkObjStm(rdr, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// inObjStm reports whether object id is stored inside an object stream.
func inObjStm(rdr *pdf.Reader, id int64) bool {
	xr := rdr.Xref()
	if id <= 0 || id >= int64(len(xr)) {
		return false
	}
	s := xr[id].Stream()
	return s.GetID() != 0
}

// refRE finds "id gen R" in the parser's rendering of a dictionary.
var refRE = regexp.MustCompile(`(\d+) \d+ R`)

// streamAtRE finds the data offset the parser appends to a stream's
// rendering ("<<…>>@1234").
var streamAtRE = regexp.MustCompile(`@(\d+)$`)

// checkObjStm proves an object stream, and those it extends, safe for the
// parser:
//
//   - the stream itself is an object in the file, not in another object
//     stream, and its dictionary refers to no object inside an object
//     stream: the parser resolves /Length, /Filter and the rest while it
//     looks up an object, so such a reference could recurse until the
//     stack overflows;
//   - its /Extends chain ends, within maxObjStmExtends links;
//   - its data, decompressed within maxObjStmBytes and the budget, passes
//     the lexer: the header's pairs and every object they locate end
//     before the data does, nest at most maxNesting deep and hold at most
//     maxObjectTokens tokens.
func (b *budget) checkObjStm(rdr *pdf.Reader, id uint32) error {
	v, err := b.objStm(rdr, id)
	chain := map[int64]bool{}
	for link := 0; err == nil; link++ {
		if link > maxObjStmExtends {
			return malformed("object stream /Extends chain longer than %d", maxObjStmExtends)
		}
		at := streamAtRE.FindStringSubmatch(v.String())
		if at == nil {
			return malformed("object stream without data")
		}
		off, _ := strconv.ParseInt(at[1], 10, 64)
		if chain[off] {
			// The parser would go round the loop looking for an object
			// that is in none of them.
			return malformed("object stream %d: the /Extends chain loops", id)
		}
		chain[off] = true
		if b.objStms[off] {
			return nil // this one and the rest of its chain were checked
		}
		if err := b.checkObjStmData(v); err != nil {
			return err
		}
		b.objStms[off] = true
		ext := v.Key("Extends")
		if ext.IsNull() {
			return nil
		}
		p := ext.GetPtr()
		v, err = b.objStm(rdr, p.GetID())
	}
	return err
}

// objStm resolves object id, which must be an object stream defined in
// the file itself, and checks its dictionary.
func (b *budget) objStm(rdr *pdf.Reader, id uint32) (pdf.Value, error) {
	xr := rdr.Xref()
	if id == 0 || int(id) >= len(xr) || inObjStm(rdr, int64(id)) {
		return pdf.Value{}, malformed("object stream %d is missing or itself inside an object stream", id)
	}
	p := xr[id].Ptr()
	if p.GetID() != id {
		return pdf.Value{}, malformed("object stream %d is missing", id)
	}
	v := rdr.Resolve(p, p)
	if v.Kind() != pdf.Stream {
		return pdf.Value{}, malformed("object %d holds objects but is not a stream", id)
	}
	for _, m := range refRE.FindAllStringSubmatch(v.String(), -1) {
		ref, _ := strconv.ParseInt(m[1], 10, 64)
		if inObjStm(rdr, ref) {
			return pdf.Value{}, malformed("the dictionary of object stream %d refers to object %d inside an object stream", id, ref)
		}
	}
	if v.Key("Type").Name() != "ObjStm" {
		return pdf.Value{}, malformed("object %d holds objects but is not an object stream", id)
	}
	return v, nil
}

func (b *budget) checkObjStmData(v pdf.Value) error {
	n, first := v.Key("N").Int64(), v.Key("First").Int64()
	if v.Key("N").Kind() != pdf.Integer || n < 0 || n > maxObjStmObjects {
		return malformed("object stream with /N %d (at most %d)", n, maxObjStmObjects)
	}
	if err := b.object(n); err != nil {
		return err
	}
	data, err := b.readStream(v, maxObjStmBytes)
	if err == errTooLarge {
		return malformed("object stream larger than %d bytes decompressed", maxObjStmBytes)
	}
	if err != nil {
		return err
	}
	l := &lexer{data: data}
	offsets := make([]int64, 0, n)
	for i := int64(0); i < 2*n; i++ {
		t, err := l.next()
		if err != nil {
			return malformed("object stream header: %v", err)
		}
		if i%2 == 1 {
			// The parser takes what is not an integer as 0.
			offsets = append(offsets, map[bool]int64{true: t.num}[t.kind == tInt])
		}
	}
	for _, off := range offsets {
		at := first + off
		if at < 0 || at >= int64(len(data)) {
			continue // the parser finds nothing there and stops
		}
		l := &lexer{data: data, pos: int(at)}
		if _, err := l.object(0, true); err != nil {
			return malformed("object stream, object at %d: %v", at, err)
		}
	}
	return nil
}
