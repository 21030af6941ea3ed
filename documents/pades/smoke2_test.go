package pades

import (
	"bytes"
	"context"
	"os"
	"testing"
)

func TestSmokeVerify(t *testing.T) {
	p := newTestPKI(t)
	in := samples(t)["ghostscript-contract"]
	signed, _ := signBytes(t, in, SignOptions{Signer: p.principal(t, "Anna Maria Eriksson"), Kind: Approval, Permissions: FormFillingAndSigning,
		Timestamper: p.tsa, Reason: "I agree", Location: "Tallinn", Role: "Principal", Act: "Act 42", Appearance: &Appearance{Page: 1, X: 72, Y: 72, Width: 200, Height: 70}})
	signed2, _ := signBytes(t, signed, SignOptions{Signer: p.auth.Seal().AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning,
		Timestamper: p.tsa, Reason: "Notarised", Location: "Tallinn", Role: "Notary", Act: "Act 42", Appearance: &Appearance{Page: 2, X: 72, Y: 72, Width: 200, Height: 70}})
	var out bytes.Buffer
	if _, err := AddLTV(context.Background(), bytes.NewReader(signed2), int64(len(signed2)), &out, p.ltv()); err != nil {
		t.Fatal(err)
	}
	doc := out.Bytes()
	doc = append(doc, []byte("1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")...)
	os.WriteFile("/tmp/smoke2.pdf", out.Bytes(), 0o644)
	rep, err := Verify(context.Background(), bytes.NewReader(out.Bytes()), int64(out.Len()), VerifyOptions{Roots: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	rep.WriteText(os.Stdout)
	for _, r := range p.pdfsig(t, out.Bytes()) {
		t.Logf("pdfsig: %v %v %v %q %q", r.Valid, r.Trusted, r.TotalDoc, r.Validation, r.Certificate)
	}
}
