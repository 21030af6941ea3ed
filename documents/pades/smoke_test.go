package pades

import (
	"bytes"
	"context"
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	p := newTestPKI(t)
	for name, in := range samples(t) {
		t.Run(name, func(t *testing.T) {
			signed, res := signBytes(t, in, SignOptions{Signer: p.principal(t, "Anna Maria Eriksson"), Kind: Approval, Permissions: FormFillingAndSigning,
				Timestamper: p.tsa, Reason: "I agree", Location: "Tallinn", Role: "Principal", Act: "Act 42", Appearance: &Appearance{Page: 1, X: 72, Y: 72, Width: 200, Height: 70}})
			t.Logf("%+v", res)
			os.WriteFile("/tmp/smoke-"+name+".pdf", signed, 0o644)
			for _, r := range p.pdfsig(t, signed) {
				t.Logf("pdfsig: %v %v %v %q %q", r.Valid, r.Trusted, r.TotalDoc, r.Validation, r.Certificate)
			}
			var out bytes.Buffer
			lres, err := AddLTV(context.Background(), bytes.NewReader(signed), int64(len(signed)), &out, p.ltv())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", lres)
			os.WriteFile("/tmp/smoke-ltv-"+name+".pdf", out.Bytes(), 0o644)
			for _, r := range p.pdfsig(t, out.Bytes()) {
				t.Logf("pdfsig: %v %v %v %q %q", r.Valid, r.Trusted, r.TotalDoc, r.Validation, r.Certificate)
			}
			qpdfCheck(t, out.Bytes())
		})
	}
}
