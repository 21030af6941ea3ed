package pades

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
)

// signedSample signs a producer's sample three times (two principals and
// the notary) with LTV at the end.
func signedSample(t testing.TB, p *testPKI, in []byte, ltv bool) []byte {
	t.Helper()
	doc := in
	for i, name := range []string{"Anna Maria Eriksson", "Jüri Õunapuu"} {
		doc, _ = signBytes(t, doc, SignOptions{
			Signer: p.principal(t, name), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
			Reason: "I agree", Location: "Tallinn", Role: "Principal",
			Appearance: &Appearance{Page: 1, X: 40 + float64(i)*180, Y: 40, Width: 170, Height: 60},
		})
	}
	doc, _ = signBytes(t, doc, SignOptions{
		Signer: p.auth.Seal().AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
		Reason: "Notarised", Location: "Tallinn", Role: "Notary",
	})
	if ltv {
		doc = ltvBytes(t, p, doc)
	}
	return doc
}

func TestTamperedByteInvalidates(t *testing.T) {
	p := newTestPKI(t)
	for name, in := range samples(t) {
		t.Run(name, func(t *testing.T) {
			doc := signedSample(t, p, in, true)
			// A byte of the original document (first signed range of every
			// signature) and a byte of the first signature's own revision
			// after its /Contents (its /Location).
			first := bytes.Index(doc, []byte("(Tallinn)"))
			if first < 0 {
				t.Fatal("no /Location in the signed file")
			}
			for _, off := range []int{10, first + 3} {
				bad := bytes.Clone(doc)
				bad[off] ^= 0x01
				rep := verifyBytes(t, p, bad)
				if rep.Valid || rep.Signatures[0].Status != StatusInvalid || rep.Signatures[0].Intact {
					t.Fatalf("flip at %d: Chamber says\n%s", off, reportText(rep))
				}
				ps := p.pdfsig(t, bad)
				if len(ps) == 0 || ps[0].Valid {
					t.Fatalf("flip at %d: pdfsig says %+v", off, ps)
				}
				if !strings.Contains(ps[0].Validation, "Digest Mismatch") {
					t.Errorf("flip at %d: pdfsig %q", off, ps[0].Validation)
				}
			}
		})
	}
}

// appendUpdate appends an unsigned incremental update (xref table) that
// replaces object id with body.
func appendUpdate(t testing.TB, doc []byte, id int, body string) []byte {
	t.Helper()
	m := regexp.MustCompile(`startxref\s+(\d+)\s+%%EOF\s*$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("no startxref")
	}
	prev, _ := strconv.Atoi(string(m[1]))
	sizes := regexp.MustCompile(`/Size (\d+)`).FindAllSubmatch(doc, -1)
	size, _ := strconv.Atoi(string(sizes[len(sizes)-1][1]))
	roots := regexp.MustCompile(`/Root (\d+ \d+ R)`).FindAllSubmatch(doc, -1)
	root := string(roots[len(roots)-1][1])
	var b bytes.Buffer
	b.Write(doc)
	off := b.Len()
	fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", id, body)
	x := b.Len()
	fmt.Fprintf(&b, "xref\n%d 1\n%010d 00000 n\r\ntrailer\n<< /Size %d /Root %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", id, off, max(size, id+1), root, prev, x)
	return b.Bytes()
}

func TestUnsignedUpdateIsModification(t *testing.T) {
	p := newTestPKI(t)
	doc := signedSample(t, p, genPDF(2, 0, false), true)
	content := "BT /F1 18 Tf 72 720 Td (Power of attorney revoked) Tj ET"
	tests := []struct {
		name, body, want string
	}{
		{"page content replaced", fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content), "object 6"},
		{"new unreferenced object", "<< /Note (harmless?) >>", "added"},
		{"page dictionary changed", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Resources << /Font << /F1 3 0 R >> >> /Contents 6 0 R >>", "/MediaBox changed"},
	}
	ids := map[string]int{"page content replaced": 6, "new unreferenced object": 999, "page dictionary changed": 5}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := appendUpdate(t, doc, ids[tt.name], tt.body)
			rep := verifyBytes(t, p, bad)
			if rep.Valid {
				t.Fatalf("Chamber accepted:\n%s", reportText(rep))
			}
			for _, s := range rep.Signatures {
				if s.Status != StatusModified || !s.Intact || !s.ModifiedAfter {
					t.Errorf("%s: status %s", s.Field, s.Status)
				}
				if !strings.Contains(strings.Join(s.Changes, "\n"), tt.want) {
					t.Errorf("%s: changes %q lack %q", s.Field, s.Changes, tt.want)
				}
			}
			ps := p.pdfsig(t, bad)
			last := ps[len(ps)-1]
			if last.TotalDoc {
				t.Errorf("pdfsig says the last signature covers the whole document")
			}
			for i, s := range ps {
				if s.IsTimestamp || rep.Signatures[i].Kind == "document timestamp" {
					continue
				}
				if !s.Valid {
					t.Errorf("pdfsig signature #%d: %s (its bytes are intact)", i+1, s.Validation)
				}
			}
			qpdfCheck(t, bad)
		})
	}
}

func TestCheckCoverage(t *testing.T) {
	// A toy file: ranges around "<0a0b>" ending at the revision's end.
	file := []byte("0123456789<0a0b>ABCDEFGHIJ%%EOF\n")
	gapStart := int64(bytes.IndexByte(file, '<'))
	gapEnd := int64(bytes.IndexByte(file, '>') + 1)
	size := int64(len(file))
	st := &Structure{Revisions: []Revision{{End: size, EOF: size - 1}}}
	tests := []struct {
		name     string
		br       [4]int64
		contents string
		ok       bool
	}{
		{"whole revision", [4]int64{0, gapStart, gapEnd, size - gapEnd}, "\x0a\x0b", true},
		{"whole revision without final EOL", [4]int64{0, gapStart, gapEnd, size - 1 - gapEnd}, "\x0a\x0b", true},
		{"stops short of the end", [4]int64{0, gapStart, gapEnd, size - 5 - gapEnd}, "\x0a\x0b", false},
		{"does not start at 0", [4]int64{1, gapStart - 1, gapEnd, size - gapEnd}, "\x0a\x0b", false},
		{"gap wider than /Contents", [4]int64{0, gapStart - 2, gapEnd, size - gapEnd}, "\x0a\x0b", false},
		{"gap is another value", [4]int64{0, gapStart, gapEnd, size - gapEnd}, "\x0c\x0d", false},
		{"beyond the file", [4]int64{0, gapStart, gapEnd, size}, "\x0a\x0b", false},
		{"overlapping ranges", [4]int64{0, gapEnd, gapStart, size - gapStart}, "\x0a\x0b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &verifier{r: bytes.NewReader(file), size: size, st: st}
			sr := SignatureReport{Revision: -1}
			err := v.checkCoverage(tt.br, []byte(tt.contents), &sr)
			if (err == nil) != tt.ok || sr.CoversRevision != tt.ok {
				t.Errorf("err %v covers %v, want ok=%v", err, sr.CoversRevision, tt.ok)
			}
		})
	}
}

// malformedInputs are PDFs Chamber must refuse with an error, never a
// crash or a hang.
func malformedInputs(t testing.TB, signed []byte) map[string][]byte {
	t.Helper()
	xrefAt := bytes.LastIndex(signed, []byte("startxref"))
	deep := func(open string) []byte {
		var b bytes.Buffer
		b.WriteString("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Foo ")
		b.Write(bytes.Repeat([]byte(open), 1_000_000))
		b.WriteString(" >>\nendobj\n")
		x := b.Len()
		fmt.Fprintf(&b, "xref\n0 2\n0000000000 65535 f\r\n0000000009 00000 n\r\ntrailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", x)
		return b.Bytes()
	}
	withTrailer := func(xref string) []byte {
		var b bytes.Buffer
		b.WriteString("%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
		x := b.Len()
		b.WriteString(xref)
		fmt.Fprintf(&b, "\nstartxref\n%d\n%%%%EOF\n", x)
		return b.Bytes()
	}
	return map[string][]byte{
		"empty":                 nil,
		"not a PDF":             []byte("This is a plain text file pretending to be evidence.\n"),
		"header only":           []byte("%PDF-1.7\n%%EOF\n"),
		"truncated":             signed[:len(signed)/2],
		"garbage after EOF":     append(bytes.Clone(signed), bytes.Repeat([]byte("junk "), 2000)...),
		"startxref beyond end":  append(bytes.Clone(signed[:xrefAt]), []byte("startxref\n99999999\n%%EOF\n")...),
		"startxref into text":   append(bytes.Clone(signed[:xrefAt]), []byte("startxref\n3\n%%EOF\n")...),
		"huge xref subsection":  withTrailer("xref\n0 99999999\n0000000000 65535 f\r\ntrailer\n<< /Size 99999999 /Root 1 0 R >>"),
		"huge xref stream Size": withTrailer("2 0 obj\n<< /Type /XRef /Size 999999999 /W [1 4 1] /Root 1 0 R /Length 0 >>\nstream\n\nendstream\nendobj"),
		"huge xref Index":       withTrailer("2 0 obj\n<< /Type /XRef /Size 3 /Index [1000000000 2] /W [1 4 1] /Root 1 0 R /Length 0 >>\nstream\n\nendstream\nendobj"),
		"Prev loop":             withTrailer("xref\n0 2\n0000000000 65535 f\r\n0000000009 00000 n\r\ntrailer\n<< /Size 2 /Root 1 0 R /Prev 45 >>"),
		"broken xref entries":   withTrailer("xref\n0 2\n0000000000 65535 f\r\nhello world\r\ntrailer\n<< /Size 2 /Root 1 0 R >>"),
		"encrypted":             withTrailer("xref\n0 2\n0000000000 65535 f\r\n0000000009 00000 n\r\ntrailer\n<< /Size 2 /Root 1 0 R /Encrypt << /Filter /Standard /V 2 /R 3 >> >>"),
		"deep arrays":           deep("["),
		"deep dictionaries":     deep("<< /A "),
	}
}

func TestMalformedNeverCrashes(t *testing.T) {
	p := newTestPKI(t)
	signed := signedSample(t, p, genPDF(1, 0, false), false)
	for name, in := range malformedInputs(t, signed) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, size := bytes.NewReader(in), int64(len(in))
			var me *MalformedError
			_, err := Verify(ctx, r, size, VerifyOptions{Roots: p.roots})
			if !errors.As(err, &me) && !errors.Is(err, ErrEncrypted) {
				t.Errorf("Verify: %v, want a *MalformedError or ErrEncrypted", err)
			}
			var out bytes.Buffer
			_, err = Sign(ctx, r, size, &out, SignOptions{Signer: p.auth.Seal().AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa})
			if !errors.As(err, &me) && !errors.Is(err, ErrEncrypted) {
				t.Errorf("Sign: %v, want a *MalformedError or ErrEncrypted", err)
			}
			if out.Len() != 0 {
				t.Error("Sign wrote output for a malformed PDF")
			}
			if _, err := Check(ctx, r, size); err == nil {
				t.Error("Check accepted it")
			}
		})
	}
}

func TestRealEncryptedPDF(t *testing.T) {
	qpdf := testenv.Command(t, "qpdf")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	os.WriteFile(in, genPDF(1, 0, false), 0o644)
	if b, err := exec.Command(qpdf, "--encrypt", "", "owner", "256", "--", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --encrypt: %v\n%s", err, b)
	}
	enc, _ := os.ReadFile(out)
	p := newTestPKI(t)
	if _, err := Verify(context.Background(), bytes.NewReader(enc), int64(len(enc)), VerifyOptions{Roots: p.roots}); !errors.Is(err, ErrEncrypted) {
		t.Errorf("Verify: %v", err)
	}
	if _, err := Check(context.Background(), bytes.NewReader(enc), int64(len(enc))); !errors.Is(err, ErrEncrypted) {
		t.Errorf("Check: %v", err)
	}
}

func TestCheckStructure(t *testing.T) {
	p := newTestPKI(t)
	for name, in := range samples(t) {
		t.Run(name, func(t *testing.T) {
			st, err := Check(context.Background(), bytes.NewReader(in), int64(len(in)))
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Revisions) != 1 || st.Revisions[0].End != int64(len(in)) {
				t.Errorf("original: %+v", st.Revisions)
			}
			doc := signedSample(t, p, in, true)
			st, err = Check(context.Background(), bytes.NewReader(doc), int64(len(doc)))
			if err != nil {
				t.Fatal(err)
			}
			// Original, three signatures, /DSS, document timestamp.
			if len(st.Revisions) != 6 {
				t.Errorf("%d revisions, want 6", len(st.Revisions))
			}
			if st.Revisions[0].End != int64(len(in)) && st.Revisions[0].EOF != int64(len(in)) {
				t.Errorf("first revision ends at %d, original is %d bytes", st.Revisions[0].End, len(in))
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	p := newTestPKI(f)
	for _, in := range samples(f) {
		f.Add(in)
	}
	signed := signedSample(f, p, genPDF(1, 0, false), true)
	f.Add(signed)
	f.Add(signedSample(f, p, genPDF(1, 0, true), true))
	for _, in := range malformedInputs(f, signed) {
		if len(in) < 64<<10 {
			f.Add(in)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rep, err := Verify(ctx, bytes.NewReader(data), int64(len(data)), VerifyOptions{Roots: p.roots})
		if err == nil {
			rep.JSON()
			rep.WriteText(&bytes.Buffer{})
		}
	})
}
