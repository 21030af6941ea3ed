package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/chamber-court/chamber/documents/pades"
)

func init() {
	extraCommands["verify"] = runVerify
}

// runVerify implements "chamber verify FILE.pdf [--json] [--trust CA.pem]":
// exit 0 only when every signature is valid.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		asJSON  bool
		trust   stringList
		dataDir string
	)
	c := newCommand("verify")
	c.fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.fs.Var(&trust, "trust", "extra trusted root certificate (PEM); repeatable")
	c.fs.StringVar(&dataDir, "data-dir", "./data", "trust this data dir's development CA too, when present")
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
	rep, err := pades.Verify(ctx, f, size, pades.VerifyOptions{Roots: pades.TrustStore(extra...)})
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

// loadCerts reads PEM certificate files given with --trust.
func loadCerts(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, usagef("chamber: --trust %s: %v", name, err)
		}
		n := 0
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, usagef("chamber: --trust %s: %v", name, err)
			}
			out = append(out, c)
			n++
		}
		if n == 0 {
			return nil, usagef("chamber: --trust %s: no PEM certificates in it", name)
		}
	}
	return out, nil
}
