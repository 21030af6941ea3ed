package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/pki"
)

// runVerify implements "chamber verify FILE.pdf [--json] [--trust CA.pem]
// [--production]": exit 0 only when every signature is valid. It trusts
// the roots given with --trust and the data dir's development CA, never
// the operating system's.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		asJSON, production bool
		trust              stringList
		dataDir            string
	)
	c := newCommand("verify")
	c.fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.fs.Var(&trust, "trust", "trusted root certificate (PEM) of signers and timestamp authorities; repeatable")
	c.fs.StringVar(&dataDir, "data-dir", "./data", "trust this data dir's development CA too, when present")
	c.fs.BoolVar(&production, "production", false, "production trust setup: refuse timestamps of a development timestamp authority")
	file, err := c.parseFile(args, stderr, "PDF file")
	if err != nil {
		return err
	}
	extra, err := trustedCerts(dataDir, trust)
	if err != nil {
		return err
	}
	f, size, err := c.openFile(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := pades.Verify(ctx, f, size, pades.VerifyOptions{Roots: pades.TrustStore(extra...), RejectDevelopment: production})
	if err != nil {
		fmt.Fprintf(stderr, "chamber verify: %s cannot be examined: %v\n", file, err)
		return &exitError{code: 1}
	}
	if asJSON {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if !rep.Valid {
		return &exitError{code: 1}
	}
	return nil
}

// loadCerts reads the PEM certificate files given with --trust.
func loadCerts(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, usagef("chamber: --trust %s: %v", name, err)
		}
		certs, err := pki.ParseCertificatesPEM(data)
		if err != nil {
			return nil, usagef("chamber: --trust %s: %v", name, err)
		}
		out = append(out, certs...)
	}
	return out, nil
}
