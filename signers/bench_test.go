//go:build cgo

package signers_test

import (
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/signers"
)

// BenchmarkPersonalSignature is what an official's identity adds to each
// signature: finding it, opening the sealed key or logging in to the token
// (twice for a token: once to check the PIN before signing, once to sign),
// and the signature itself. The PDF work around it is in
// documents/pades' benchmarks.
func BenchmarkPersonalSignature(b *testing.B) {
	for _, kind := range []string{"issued", "softhsm"} {
		b.Run(kind, func(b *testing.B) {
			db := databasetest.Open(b, database.SQLite)
			bb := newBench(b, db)
			judge := bb.official(b, "Judge Saar", access.Judge)
			e := signers.Enrolment{StaffID: judge.id, Issue: true}
			if kind == "softhsm" {
				tok := bb.tokenWithKey(b, "judge-card", "1111", "signing")
				e = signers.Enrolment{StaffID: judge.id, Token: &tok, PIN: "1111", Certify: true}
			}
			if _, err := bb.svc.Enroll(b.Context(), "system", e); err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("document"))
			b.ResetTimer()
			for b.Loop() {
				s, _, err := bb.svc.For(b.Context(), judge.id, "1111")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.SignDigest(b.Context(), digest[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
