package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// pkiDir is where the development CA, seal and TSA keys live.
func pkiDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

// trustRoots is the trust store for verifying Chamber's own artefacts
// offline: the data dir's development CA when present, plus extra PEM files.
func trustRoots(dataDir string, extra ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if dataDir != "" {
		if _, err := os.Stat(filepath.Join(pkiDir(dataDir), "ca.crt")); err == nil {
			auth, err := pki.LoadOrCreateDev(pkiDir(dataDir), "", slog.New(slog.DiscardHandler))
			if err != nil {
				return nil, err
			}
			pool.AddCert(auth.Root())
		}
	}
	for _, f := range extra {
		if f == "" {
			continue
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("chamber: --trust %s: %v", f, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("chamber: --trust %s: no PEM certificates in it", f)
		}
	}
	return pool, nil
}

// tokenVerifier checks journal anchors against the data dir's trust roots.
func tokenVerifier(dataDir string, extra ...string) (journal.TokenVerifier, error) {
	roots, err := trustRoots(dataDir, extra...)
	if err != nil {
		return nil, err
	}
	return func(token, digest []byte) (time.Time, error) {
		t, _, err := pki.VerifyTimestamp(token, digest, roots)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp: %w", err)
		}
		return t, nil
	}, nil
}
