package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/documents/pades"
)

// runBundle implements "chamber bundle verify BUNDLE.zip [--trust CA.pem]":
// it needs no server and no database, only the bundle and the roots to
// trust; it exits 1 naming every file or check that failed. A bundle whose
// zip is unsafe or whose signature fails is not read further (see
// bundle.Verify).
func runBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usagef("chamber bundle: want verify")
	}
	var (
		asJSON  bool
		trust   stringList
		dataDir string
	)
	c := newCommand("bundle verify")
	c.fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.fs.Var(&trust, "trust", "trusted root certificate (PEM) of the seal and the timestamp authority; repeatable")
	c.fs.StringVar(&dataDir, "data-dir", "", "also trust this data dir's development CA")
	file, err := c.parseFile(args[1:], stderr, "bundle file")
	if err != nil {
		return err
	}
	certs, err := trustedCerts(dataDir, trust)
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return usagef("chamber bundle verify: give --trust CA.pem (the root of the seal and the timestamp authority)")
	}
	f, size, err := c.openFile(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// Only the given roots: a bundle is checked against the seal's own CA,
	// never the system's.
	rep, err := bundle.Verify(f, size, pades.TrustStore(certs...))
	if err != nil {
		fmt.Fprintf(stderr, "chamber bundle verify: %s: %v\n", file, err)
		return &exitError{code: 1}
	}
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		if rep.Valid {
			fmt.Fprintf(stdout, "VALID: session %s, %d files, signed by %s, timestamped %s by %s; journal %d entries (head %s), %d anchors verified\n",
				rep.SessionID, rep.Files, rep.Signer, rep.SignedAt.Format("2006-01-02 15:04:05 MST"), rep.TSA, rep.Entries, rep.JournalHead, rep.Anchors)
		} else {
			if rep.SessionID == uuid.Nil {
				// Refused before the signed manifest said whose it is.
				fmt.Fprintln(stdout, "NOT VALID")
			} else {
				fmt.Fprintf(stdout, "NOT VALID: session %s\n", rep.SessionID)
			}
			for _, p := range rep.Problems {
				if p.Path != "" {
					fmt.Fprintf(stdout, "  %s: %s\n", p.Path, p.Reason)
				} else {
					fmt.Fprintf(stdout, "  %s\n", p.Reason)
				}
			}
		}
	}
	if !rep.Valid {
		return &exitError{code: 1}
	}
	return nil
}
