package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// pkiDir is where the development CA, seal and TSA keys live.
func pkiDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

// devCA returns the data dir's development CA certificate, or nil when the
// data dir has none. Only the certificate is read: verifying needs no key.
func devCA(dataDir string) (*x509.Certificate, error) {
	if dataDir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(pkiDir(dataDir), "ca.crt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("development CA %s: %w", filepath.Join(pkiDir(dataDir), "ca.crt"), err)
	}
	return certs[0], nil
}

// trustedCerts is the data dir's development CA (when present) plus the
// PEM files given with --trust.
func trustedCerts(dataDir string, trust []string) ([]*x509.Certificate, error) {
	certs, err := loadCerts(trust)
	if err != nil {
		return nil, err
	}
	ca, err := devCA(dataDir)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		certs = append(certs, ca)
	}
	return certs, nil
}

// tokenVerifier checks journal anchors against the data dir's CA and the
// extra trusted certificates.
func tokenVerifier(dataDir string, trust ...string) (journal.TokenVerifier, error) {
	certs, err := trustedCerts(dataDir, trust)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c)
	}
	return func(token, digest []byte) (time.Time, error) {
		t, _, err := pki.VerifyTimestamp(token, digest, roots)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp: %w", err)
		}
		return t, nil
	}, nil
}
