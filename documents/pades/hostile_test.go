package pades

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/memtest"
)

// maxExtraHeap is the most heap one verification of any PDF up to the
// upload limit may add (item 1 of the hardening brief).
const maxExtraHeap = 64 << 20

// hostileCase builds a PDF meant to exhaust the verifier and says how the
// verifier must answer: with a report, or with a refusal (*MalformedError,
// a *LimitError among its causes when limit is set).
type hostileCase struct {
	name   string
	build  func(t testing.TB, p *testPKI) []byte
	refuse bool
	limit  bool
}

func hostileCases() []hostileCase {
	return []hostileCase{
		// The incident: /DSS arrays naming one small zlib stream, which
		// inflates to 17 MiB, 48 times each.
		{name: "dss repeated references", build: func(t testing.TB, p *testPKI) []byte {
			bomb := zeroStream("", 17)
			return appendDSS(t, signedForHostile(t, p, false), [][]byte{bomb}, map[string][]int{
				"Certs": repeat(0, 48), "CRLs": repeat(0, 48), "OCSPs": repeat(0, 48)})
		}},
		// One CRL that inflates to 256 MiB.
		{name: "dss one huge stream", build: func(t testing.TB, p *testPKI) []byte {
			return appendDSS(t, signedForHostile(t, p, false), [][]byte{zeroStream("", 256)}, map[string][]int{"CRLs": {0}})
		}},
		// Thousands of distinct certificates of 60 KiB each.
		{name: "dss many objects", limit: true, refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			var streams [][]byte
			var certs []int
			z := deflate(zeros(60 << 10))
			for i := range 3000 {
				streams = append(streams, streamBody(fmt.Sprintf("/N%d true /Filter /FlateDecode", i), z))
				certs = append(certs, i)
			}
			return appendDSS(t, signedForHostile(t, p, false), streams, map[string][]int{"Certs": certs})
		}},
		// Three hundred revisions whose cross-reference streams claim
		// 100 000 objects each: one parser per revision used to stay alive.
		{name: "many revisions of many objects", limit: true, refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return manyRevisions(signedForHostile(t, p, true), 300, 100_000)
		}},
		// A direct array of two million numbers.
		{name: "one object of many tokens", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields 3 0 R >> >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			d.obj(3, "["+strings.Repeat("0 ", 2_000_000)+"]")
			return d.table(1, "")
		}},
		// One string of 60 MiB, read as a signature field's name.
		{name: "one huge string", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			d.obj(3, "<< /FT /Sig /T ("+strings.Repeat("x", 60<<20)+") /V << /Contents <00> >> >>")
			return d.table(1, "")
		}},
		// Twenty signature fields whose values hold 4 MiB of /Contents
		// each: verified one at a time, not all held at once.
		{name: "many large signature values", build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			var fields []string
			contents := strings.Repeat("ab", 2<<20)
			for i := range 20 {
				id := 3 + i
				fields = append(fields, fmt.Sprintf("%d 0 R", id))
				d.obj(id, fmt.Sprintf("<< /FT /Sig /T (s%d) /V << /Type /Sig /SubFilter /adbe.pkcs7.detached /ByteRange [0 10 20 10] /Contents <%s> >> >>", i, contents))
			}
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields ["+strings.Join(fields, " ")+"] >> >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			return d.table(1, "")
		}},
		// A trailer with a million-element array.
		{name: "huge trailer", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			return d.table(1, "/Junk ["+strings.Repeat("1 ", 1_000_000)+"]")
		}},
		// "[ endobj": the parser's array reader appends null for ever.
		{name: "endobj inside an array", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields 3 0 R >> >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			d.raw(3, "3 0 obj\n[ 1 2\nendobj\n")
			return d.table(1, "")
		}},
		// Five million "[" inside another stream's data, where the body
		// scan does not look, located by the cross-reference table: the
		// parser recursed until the Go stack limit killed the process.
		{name: "deep nesting hidden in stream data", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			d := newHostileDoc()
			d.obj(1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields 3 0 R >> >>")
			d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
			hidden := "3 0 obj\n" + strings.Repeat("[", 5_000_000) + "\nendobj\n"
			d.hide(4, 3, hidden)
			return d.table(1, "")
		}},
		// Object streams the parser reads without end or without bound.
		{name: "object stream unterminated hex string", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return objStmDoc(map[int]string{}, []byte("1 0 <ab"), 1, "")
		}},
		{name: "object stream unterminated string", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return objStmDoc(map[int]string{}, []byte("1 0 (never closed"), 1, "")
		}},
		{name: "object stream unclosed array", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return objStmDoc(map[int]string{}, []byte("1 0 [1 2 3"), 1, "")
		}},
		{name: "object stream deep nesting", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return objStmDoc(map[int]string{}, []byte("1 0 "+strings.Repeat("[", 5_000_000)), 1, "")
		}},
		// Two object streams whose /Length each lies in the other.
		{name: "object stream length cycle", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return lengthCycle()
		}},
		// Two object streams extending each other, and an object in
		// neither.
		{name: "object stream extends cycle", refuse: true, build: func(t testing.TB, p *testPKI) []byte {
			return extendsCycle()
		}},
	}
}

// TestHostilePDFs verifies each hostile PDF in a child process, so that a
// crash or a hang fails the case instead of the whole run, and checks the
// answer, the time and the heap the verification added.
func TestHostilePDFs(t *testing.T) {
	if os.Getenv("CHAMBER_HOSTILE_CASE") != "" {
		t.Skip("in a child")
	}
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			res := runHostileChild(t, c.name)
			if res.Peak > maxExtraHeap {
				t.Errorf("the verification added %d MiB of heap (limit %d MiB)", res.Peak>>20, maxExtraHeap>>20)
			}
			switch {
			case c.refuse && !res.Malformed:
				t.Errorf("not refused: err %q, report %q", res.Err, res.Summary)
			case c.limit && !res.Limit:
				t.Errorf("refused, but not for a limit: %q", res.Err)
			case !c.refuse && res.Err != "":
				t.Errorf("refused: %q", res.Err)
			}
			t.Logf("%s in %v, +%d MiB heap: %s%s", c.name, res.Elapsed, res.Peak>>20, res.Err, res.Summary)
		})
	}
}

type hostileResult struct {
	Peak      uint64
	Elapsed   time.Duration
	Err       string
	Malformed bool
	Limit     bool
	Summary   string
}

func runHostileChild(t *testing.T, name string) hostileResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileChild$", "-test.v")
	cmd.Env = append(os.Environ(), "CHAMBER_HOSTILE_CASE="+name)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the verification did not end within 3 minutes (a hang)")
	}
	_, line, ok := strings.Cut(string(out), "HOSTILE-RESULT ")
	if !ok {
		tail := out[max(0, len(out)-3000):]
		t.Fatalf("the child process died (%v):\n%s", err, tail)
	}
	line, _, _ = strings.Cut(line, "\n")
	var res hostileResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestHostileChild is the child half of TestHostilePDFs.
func TestHostileChild(t *testing.T) {
	name := os.Getenv("CHAMBER_HOSTILE_CASE")
	if name == "" {
		t.Skip("run by TestHostilePDFs")
	}
	var c hostileCase
	for _, x := range hostileCases() {
		if x.name == name {
			c = x
		}
	}
	p := newTestPKI(t)
	// From a file, as the server verifies: the document's bytes would
	// otherwise be live heap that the collector's target grows with.
	f, err := os.CreateTemp(t.TempDir(), "hostile-*.pdf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(c.build(t, p)); err != nil {
		t.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	res := hostileResult{}
	var rep *Report
	start := time.Now()
	res.Peak = memtest.Peak(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rep, err = Verify(ctx, f, size, VerifyOptions{Roots: p.roots})
	})
	res.Elapsed = time.Since(start).Round(time.Millisecond)
	var me *MalformedError
	var le *LimitError
	if err != nil {
		res.Err, res.Malformed, res.Limit = err.Error(), errors.As(err, &me), errors.As(err, &le)
	} else {
		res.Summary = rep.Summary
	}
	b, _ := json.Marshal(res)
	fmt.Printf("HOSTILE-RESULT %s\n", b)
}

// signedForHostile is a small document signed by the test PKI.
func signedForHostile(t testing.TB, p *testPKI, xrefStream bool) []byte {
	t.Helper()
	doc, _ := signBytes(t, genPDF(1, 0, xrefStream), SignOptions{
		Signer: p.principal(t, "Anna"), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
	return doc
}

func zeros(n int) io.Reader { return io.LimitReader(zeroReader{}, int64(n)) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func repeat(x, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = x
	}
	return out
}

func deflate(r io.Reader) []byte {
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	io.Copy(w, r)
	w.Close()
	return b.Bytes()
}

// flateStream is the body of a compressed stream object.
func flateStream(extra string, data io.Reader) []byte {
	return streamBody(extra+" /Filter /FlateDecode", deflate(data))
}

func streamBody(dict string, data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<< %s /Length %d >>\nstream\n", dict, len(data))
	b.Write(data)
	b.WriteString("\nendstream")
	return b.Bytes()
}

// zeroStream is a compressed stream of mib MiB of zeros, built without
// compressing them all: after the first MiB every further MiB of zeros
// deflates to the same bytes.
func zeroStream(extra string, mib int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	chunk := make([]byte, 1<<20)
	w.Write(chunk)
	w.Flush()
	head := bytes.Clone(b.Bytes())
	b.Reset()
	w.Write(chunk)
	w.Flush()
	middle := bytes.Clone(b.Bytes())
	b.Reset()
	w.Close()
	var z bytes.Buffer
	z.Write([]byte{0x78, 0xda})
	z.Write(head)
	for range mib - 1 {
		z.Write(middle)
	}
	z.Write(b.Bytes())
	// Adler-32 of n zeros: a stays 1, b counts the bytes.
	binary.Write(&z, binary.BigEndian, uint32((mib<<20)%65521)<<16|1)
	return streamBody(extra+" /Filter /FlateDecode", z.Bytes())
}

// appendDSS appends an incremental update whose /DSS arrays name the
// given stream objects (by index; an index may repeat).
func appendDSS(t testing.TB, doc []byte, streams [][]byte, arrays map[string][]int) []byte {
	t.Helper()
	size := int64(len(doc))
	b := newBudget(context.Background(), bytes.NewReader(doc), requestLimits(size, false))
	rdr, err := openReader(b, b, size)
	if err != nil {
		t.Fatal(err)
	}
	u := newIncremental(rdr, size, true)
	ids := make([]uint32, len(streams))
	for i, body := range streams {
		ids[i] = u.alloc()
		u.object(ids[i], 0, body)
	}
	var dict bytes.Buffer
	dict.WriteString("<< /Type /DSS")
	for key, idx := range arrays {
		fmt.Fprintf(&dict, " /%s [", key)
		for _, i := range idx {
			fmt.Fprintf(&dict, " %d 0 R", ids[i])
		}
		dict.WriteString(" ]")
	}
	dict.WriteString(" >>")
	dssID := u.alloc()
	u.object(dssID, 0, dict.Bytes())
	root := rdr.Trailer().Key("Root")
	rp := root.GetPtr()
	var cat bytes.Buffer
	cat.WriteString("<<")
	for _, k := range root.Keys() {
		if k == "DSS" {
			continue
		}
		cat.WriteString(" ")
		writeName(&cat, k)
		cat.WriteString(" ")
		if err := writeValue(&cat, root.Key(k), rp.GetID(), 0); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(&cat, " /DSS %d 0 R >>", dssID)
	u.object(rp.GetID(), rp.GetGen(), cat.Bytes())
	update, err := u.finish(root)
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(doc), update...)
}

// manyRevisions appends n updates that each consist of a cross-reference
// stream claiming size objects.
func manyRevisions(doc []byte, n, size int) []byte {
	var b bytes.Buffer
	b.Write(doc)
	prev := startxrefOf(doc)
	root := lastRoot(doc)
	for i := range n {
		id := size - 1 - i
		off := b.Len()
		var entry [11]byte
		entry[0] = 1
		binary.BigEndian.PutUint64(entry[1:9], uint64(off))
		fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 8 2] /Index [%d 1] /Root %s /Prev %d /Length 11 >>\nstream\n", id, size, id, root, prev)
		b.Write(entry[:])
		fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", off)
		prev = off
	}
	return b.Bytes()
}

func startxrefOf(doc []byte) int {
	i := bytes.LastIndex(doc, []byte("startxref"))
	n, _ := strconv.Atoi(strings.Fields(string(doc[i+len("startxref"):]))[0])
	return n
}

func lastRoot(doc []byte) string {
	i := bytes.LastIndex(doc, []byte("/Root "))
	f := strings.Fields(string(doc[i+len("/Root "):]))
	return f[0] + " " + f[1] + " R"
}

// hostileDoc writes PDFs object by object.
type hostileDoc struct {
	b       bytes.Buffer
	offsets map[int]int
	inStm   map[int][2]int // object → object stream, index
}

func newHostileDoc() *hostileDoc {
	d := &hostileDoc{offsets: map[int]int{}, inStm: map[int][2]int{}}
	d.b.WriteString("%PDF-1.7\n")
	return d
}

func (d *hostileDoc) obj(id int, body string) {
	d.raw(id, fmt.Sprintf("%d 0 obj\n%s\nendobj\n", id, body))
}

func (d *hostileDoc) raw(id int, text string) {
	d.offsets[id] = d.b.Len()
	d.b.WriteString(text)
}

func (d *hostileDoc) stream(id int, body []byte) {
	d.offsets[id] = d.b.Len()
	fmt.Fprintf(&d.b, "%d 0 obj\n", id)
	d.b.Write(body)
	d.b.WriteString("\nendobj\n")
}

// hide writes stream holder whose data is text, and locates object id
// inside that data.
func (d *hostileDoc) hide(holder, id int, text string) {
	d.offsets[holder] = d.b.Len()
	fmt.Fprintf(&d.b, "%d 0 obj\n<< /Length %d >>\nstream\n", holder, len(text))
	d.offsets[id] = d.b.Len()
	d.b.WriteString(text)
	d.b.WriteString("\nendstream\nendobj\n")
}

func (d *hostileDoc) maxID() int {
	n := 0
	for id := range d.offsets {
		n = max(n, id)
	}
	for id := range d.inStm {
		n = max(n, id)
	}
	return n
}

// table finishes the file with a cross-reference table.
func (d *hostileDoc) table(root int, trailerExtra string) []byte {
	size := d.maxID() + 1
	x := d.b.Len()
	fmt.Fprintf(&d.b, "xref\n0 %d\n0000000000 65535 f\r\n", size)
	for i := 1; i < size; i++ {
		if o, ok := d.offsets[i]; ok {
			fmt.Fprintf(&d.b, "%010d 00000 n\r\n", o)
		} else {
			d.b.WriteString("0000000000 65535 f\r\n")
		}
	}
	fmt.Fprintf(&d.b, "trailer\n<< /Size %d /Root %d 0 R %s >>\nstartxref\n%d\n%%%%EOF\n", size, root, trailerExtra, x)
	return d.b.Bytes()
}

// xrefStream finishes the file with a cross-reference stream.
func (d *hostileDoc) xrefStream(root int) []byte {
	self := d.maxID() + 1
	size := self + 1
	x := d.b.Len()
	d.offsets[self] = x
	var data bytes.Buffer
	for i := range size {
		var e [6]byte
		switch {
		case d.offsets[i] != 0:
			e[0] = 1
			binary.BigEndian.PutUint32(e[1:5], uint32(d.offsets[i]))
		case d.inStm[i] != [2]int{}:
			e[0] = 2
			binary.BigEndian.PutUint32(e[1:5], uint32(d.inStm[i][0]))
			e[5] = byte(d.inStm[i][1])
		default:
			e[4], e[5] = 0, 0xff
		}
		data.Write(e[:])
	}
	fmt.Fprintf(&d.b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 1] /Root %d 0 R /Length %d >>\nstream\n", self, size, root, data.Len())
	d.b.Write(data.Bytes())
	fmt.Fprintf(&d.b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", x)
	return d.b.Bytes()
}

// objStmDoc is a file whose catalog (object 1) lives in object stream 3
// with the given content (header "1 0" first).
func objStmDoc(direct map[int]string, content []byte, n int, extra string) []byte {
	d := newHostileDoc()
	d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
	for id, body := range direct {
		d.obj(id, body)
	}
	d.stream(3, flateStream(fmt.Sprintf("/Type /ObjStm /N %d /First 4 %s", n, extra), bytes.NewReader(content)))
	d.inStm[1] = [2]int{3, 0}
	return d.xrefStream(1)
}

// lengthCycle: object streams 3 and 4; 3's /Length is object 6, stored in
// 4, and 4's /Length is object 5, stored in 3.
func lengthCycle() []byte {
	d := newHostileDoc()
	d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
	c3 := deflate(strings.NewReader("1 0 5 40\n<< /Type /Catalog /Pages 2 0 R >>          99"))
	c4 := deflate(strings.NewReader("6 0 " + fmt.Sprint(len(c3))))
	d.stream(3, []byte(fmt.Sprintf("<< /Type /ObjStm /N 2 /First 9 /Filter /FlateDecode /Length 6 0 R >>\nstream\n%s\nendstream", c3)))
	d.stream(4, []byte(fmt.Sprintf("<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length 5 0 R >>\nstream\n%s\nendstream", c4)))
	d.inStm[1] = [2]int{3, 0}
	d.inStm[5] = [2]int{3, 1}
	d.inStm[6] = [2]int{4, 0}
	return d.xrefStream(1)
}

// extendsCycle: object streams 3 and 4 extend each other; object 1 (the
// catalog) is said to be in 3 but is in neither.
func extendsCycle() []byte {
	d := newHostileDoc()
	d.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>")
	d.stream(3, flateStream("/Type /ObjStm /N 1 /First 4 /Extends 4 0 R", strings.NewReader("7 0 null")))
	d.stream(4, flateStream("/Type /ObjStm /N 1 /First 4 /Extends 3 0 R", strings.NewReader("8 0 null")))
	d.inStm[1] = [2]int{3, 0}
	d.inStm[7] = [2]int{3, 0}
	d.inStm[8] = [2]int{4, 0}
	return d.xrefStream(1)
}

func TestZeroStream(t *testing.T) {
	body := zeroStream("", 3)
	i := bytes.Index(body, []byte("stream\n")) + 7
	j := bytes.LastIndex(body, []byte("\nendstream"))
	r, err := zlib.NewReader(bytes.NewReader(body[i:j]))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != 3<<20 {
		t.Fatalf("%d bytes, %v", n, err)
	}
}
