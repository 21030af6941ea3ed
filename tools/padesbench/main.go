// Command padesbench is Chamber's side of the signing benchmark in
// documents/pades (bench_test.go): it signs or verifies one file the way
// the server does, as a small program of its own, so that it is measured
// against pdfsign's own command-line tool process for process.
//
// It reads its arguments from the environment the benchmark sets:
// BENCH_MODE (sign, sign-lta or verify), BENCH_IN, BENCH_OUT, BENCH_CERT,
// BENCH_KEY, BENCH_CA and BENCH_TSA.
package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/pki"
)

func main() {
	if err := run(context.Background(), os.Getenv("BENCH_MODE")); err != nil {
		fmt.Fprintln(os.Stderr, "padesbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode string) error {
	in, err := os.Open(os.Getenv("BENCH_IN"))
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tsa := &pki.TSAClient{URL: os.Getenv("BENCH_TSA")}
	switch mode {
	case "sign", "sign-lta":
		id, err := pki.LoadPEM(os.Getenv("BENCH_CERT"), os.Getenv("BENCH_KEY"))
		if err != nil {
			return err
		}
		out, err := os.Create(os.Getenv("BENCH_OUT"))
		if err != nil {
			return err
		}
		defer out.Close()
		opts := pades.SignOptions{Signer: id.AsSigner(), Kind: pades.Approval, Permissions: pades.FormFillingAndSigning, Timestamper: tsa, Name: "bench"}
		if mode == "sign" {
			_, err := pades.Sign(ctx, in, fi.Size(), out, opts)
			return err
		}
		// The benchmark signer has no CRL distribution point, so the /DSS
		// holds certificates only.
		_, _, err = pades.SignLTA(ctx, in, fi.Size(), out, opts, pades.LTVOptions{Timestamper: tsa}, filepath.Dir(out.Name()))
		return err
	case "verify":
		caPEM, err := os.ReadFile(os.Getenv("BENCH_CA"))
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		rep, err := pades.Verify(ctx, in, fi.Size(), pades.VerifyOptions{Roots: roots})
		if err != nil {
			return err
		}
		if !rep.Valid {
			return fmt.Errorf("benchmark file not valid: %s", rep.Summary)
		}
		return nil
	default:
		return fmt.Errorf("unknown BENCH_MODE %q", mode)
	}
}
