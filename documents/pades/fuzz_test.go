package pades

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzCheck: the structure check (body scan, lexer, cross-reference
// sections) answers any input with a structure or an error, never a panic
// or a hang.
func FuzzCheck(f *testing.F) {
	for _, in := range samples(f) {
		f.Add(in)
	}
	f.Add(objStmDoc(map[int]string{}, []byte("1 0 << /Type /Catalog /Pages 2 0 R >>"), 1, ""))
	f.Add(lengthCycle())
	f.Add(extendsCycle())
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := Check(ctx, bytes.NewReader(data), int64(len(data)))
		var me *MalformedError
		if err != nil && !errors.As(err, &me) && !errors.Is(err, ErrEncrypted) && ctx.Err() == nil {
			t.Fatalf("Check: %v is neither malformed nor encrypted", err)
		}
		if err == nil && len(st.Revisions) == 0 {
			t.Fatal("a structure without revisions")
		}
	})
}

// FuzzObjStm: whatever an object stream holds, the parser either reads it
// or is refused before it can loop: Verify returns within its deadline.
// This checks that the lexer mirrors the parser.
func FuzzObjStm(f *testing.F) {
	p := newTestPKI(f)
	for _, c := range []string{
		"1 0 << /Type /Catalog /Pages 2 0 R >>",
		"1 0 <ab", "1 0 (open", "1 0 [1 2", "1 0 [ endobj ]", "1 0 << /A [<0a> (x\\)) /B 1 0 R] >>",
		"1 0 null", "1 0 5 0 R", "1 0 << /K 1 0 obj >>", "1 0 %comment\n<< >>",
	} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		doc := objStmDoc(map[int]string{}, content, 1, "")
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			Verify(ctx, bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: p.roots})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("Verify did not return for object stream %q", content)
		}
	})
}

// FuzzLoadDSS: whatever a /DSS holds as certificates, CRLs and OCSP
// responses, a signed document's verification ends with a report or a
// refusal.
func FuzzLoadDSS(f *testing.F) {
	p := newTestPKI(f)
	signed := signedForHostile(f, p, false)
	crl, err := p.auth.CRL(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.auth.Root().Raw, crl, []byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	f.Add([]byte{}, []byte{0x30, 0x80}, []byte("not DER"))
	f.Fuzz(func(t *testing.T, cert, crl, ocsp []byte) {
		doc := appendDSS(t, signed, [][]byte{rawStream(cert), rawStream(crl), rawStream(ocsp)},
			map[string][]int{"Certs": {0, 0}, "CRLs": {1}, "OCSPs": {2, 2}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rep, err := Verify(ctx, bytes.NewReader(doc), int64(len(doc)), VerifyOptions{Roots: p.roots})
		var me *MalformedError
		switch {
		case err == nil:
			rep.WriteText(&bytes.Buffer{})
		case !errors.As(err, &me) && ctx.Err() == nil:
			t.Fatalf("Verify: %v", err)
		}
	})
}
