package pades

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/digitorus/pdf"
)

// incremental builds an incremental update (ISO 32000-1 §7.5.6) appended to
// a file of size base: new and replaced objects, then a cross-reference
// section of the same kind as the file's last one, and a trailer.
type incremental struct {
	rdr     *pdf.Reader
	base    int64
	buf     bytes.Buffer
	offsets map[uint32]int64
	gens    map[uint32]uint16
	next    uint32
}

func newIncremental(rdr *pdf.Reader, base int64, endsWithEOL bool) *incremental {
	u := &incremental{rdr: rdr, base: base, offsets: map[uint32]int64{}, gens: map[uint32]uint16{}}
	// New objects take numbers past every number in use and past /Size.
	var maxID uint32
	for _, x := range rdr.Xref() {
		p := x.Ptr()
		maxID = max(maxID, p.GetID())
	}
	u.next = max(maxID+1, uint32(max(0, rdr.Trailer().Key("Size").Int64())))
	if !endsWithEOL {
		u.buf.WriteString("\n")
	}
	return u
}

func (u *incremental) alloc() uint32 {
	id := u.next
	u.next++
	return id
}

// object writes object id with a body already serialised.
func (u *incremental) object(id uint32, gen uint16, body []byte) {
	u.offsets[id] = u.base + int64(u.buf.Len())
	u.gens[id] = gen
	fmt.Fprintf(&u.buf, "%d %d obj\n", id, gen)
	u.buf.Write(body)
	u.buf.WriteString("\nendobj\n")
}

// stream writes a new stream object holding data, unfiltered.
func (u *incremental) stream(data []byte) uint32 {
	id := u.alloc()
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< /Length %d >>\nstream\n", len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	u.object(id, 0, b.Bytes())
	return id
}

// finish writes the cross-reference section and trailer and returns the
// whole update.
func (u *incremental) finish(root pdf.Value) ([]byte, error) {
	rootPtr := root.GetPtr()
	trailer := u.rdr.Trailer()
	prev := u.rdr.XrefInformation.StartPos
	size := max(int64(u.next), trailer.Key("Size").Int64())
	ids := make([]uint32, 0, len(u.offsets))
	for id := range u.offsets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	var extra bytes.Buffer // trailer entries shared by both forms
	if info := trailer.Key("Info"); !info.IsNull() {
		if p := info.GetPtr(); p.GetID() != 0 {
			fmt.Fprintf(&extra, " /Info %d %d R", p.GetID(), p.GetGen())
		}
	}
	if id := trailer.Key("ID"); id.Kind() == pdf.Array && id.Len() == 2 {
		fmt.Fprintf(&extra, " /ID [<%s> <%s>]", hex.EncodeToString([]byte(id.Index(0).RawString())), hex.EncodeToString([]byte(id.Index(1).RawString())))
	}

	xrefAt := u.base + int64(u.buf.Len())
	switch u.rdr.XrefInformation.Type {
	case "table":
		u.buf.WriteString("xref\n")
		for i := 0; i < len(ids); {
			j := i
			for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
				j++
			}
			fmt.Fprintf(&u.buf, "%d %d\n", ids[i], j-i+1)
			for k := i; k <= j; k++ {
				fmt.Fprintf(&u.buf, "%010d %05d n\r\n", u.offsets[ids[k]], u.gens[ids[k]])
			}
			i = j + 1
		}
		// Keys spelled the way pdfsign rewrites them on the next signature.
		fmt.Fprintf(&u.buf, "trailer\n<< /Size %d /Root %d %d R%s /Prev %d >>\n", size, rootPtr.GetID(), rootPtr.GetGen(), extra.Bytes(), prev)
	case "stream":
		self := u.alloc()
		ids = append(ids, self)
		u.offsets[self] = xrefAt
		size = max(size, int64(u.next))
		var data, index bytes.Buffer
		for i := 0; i < len(ids); {
			j := i
			for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
				j++
			}
			fmt.Fprintf(&index, " %d %d", ids[i], j-i+1)
			for k := i; k <= j; k++ {
				var e [11]byte
				e[0] = 1
				binary.BigEndian.PutUint64(e[1:9], uint64(u.offsets[ids[k]]))
				binary.BigEndian.PutUint16(e[9:], u.gens[ids[k]])
				data.Write(e[:])
			}
			i = j + 1
		}
		fmt.Fprintf(&u.buf, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 8 2] /Index [%s ] /Root %d %d R%s /Prev %d /Length %d >>\nstream\n",
			self, size, index.Bytes(), rootPtr.GetID(), rootPtr.GetGen(), extra.Bytes(), prev, data.Len())
		u.buf.Write(data.Bytes())
		u.buf.WriteString("\nendstream\nendobj\n")
	default:
		return nil, fmt.Errorf("pades: unknown cross-reference type %q", u.rdr.XrefInformation.Type)
	}
	fmt.Fprintf(&u.buf, "startxref\n%d\n%%%%EOF\n", xrefAt)
	return u.buf.Bytes(), nil
}

var errStreamDirect = errors.New("pades: stream as a direct object")

// writeValue serialises v, found inside the object numbered self: values
// reached through an indirect reference are written as that reference.
func writeValue(b *bytes.Buffer, v pdf.Value, self uint32, depth int) error {
	if depth > 32 {
		return errors.New("pades: object nested too deeply")
	}
	if p := v.GetPtr(); p.GetID() != self {
		if v.IsNull() && p.GetID() == 0 {
			b.WriteString("null")
			return nil
		}
		fmt.Fprintf(b, "%d %d R", p.GetID(), p.GetGen())
		return nil
	}
	switch v.Kind() {
	case pdf.Null:
		b.WriteString("null")
	case pdf.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case pdf.Integer:
		b.WriteString(strconv.FormatInt(v.Int64(), 10))
	case pdf.Real:
		b.WriteString(strconv.FormatFloat(v.Float64(), 'f', -1, 64))
	case pdf.String:
		b.WriteString("<" + hex.EncodeToString([]byte(v.RawString())) + ">")
	case pdf.Name:
		writeName(b, v.Name())
	case pdf.Array:
		b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			if err := writeValue(b, v.Index(i), self, depth+1); err != nil {
				return err
			}
		}
		b.WriteString("]")
	case pdf.Dict:
		b.WriteString("<<")
		for _, k := range v.Keys() {
			b.WriteString(" ")
			writeName(b, k)
			b.WriteString(" ")
			if err := writeValue(b, v.Key(k), self, depth+1); err != nil {
				return err
			}
		}
		b.WriteString(" >>")
	case pdf.Stream:
		return errStreamDirect
	}
	return nil
}

// writeName writes a PDF name, escaping what §7.3.5 requires.
func writeName(b *bytes.Buffer, n string) {
	b.WriteByte('/')
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c < '!' || c > '~' || bytes.IndexByte([]byte("#()<>[]{}/%"), c) >= 0 {
			fmt.Fprintf(b, "#%02X", c)
			continue
		}
		b.WriteByte(c)
	}
}
