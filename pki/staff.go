package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// IssueStaff certifies pub as the personal signing key of one official:
// the subject's common name is their name (what a PDF reader shows as the
// signer), its serialNumber attribute their staff ID, so two officials of
// the same name are never one signer. The profile is the document-signing
// one of the seal (digitalSignature, nonRepudiation, id-kp-documentSigning
// and emailProtection). The key may be one Chamber generated or one on a
// PKCS#11 token; the authority never sees the private half of the latter.
func (a *Authority) IssueStaff(ctx context.Context, name string, staffID uuid.UUID, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, []*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if ttl <= 0 || ttl > 3*366*24*time.Hour {
		return nil, nil, fmt.Errorf("pki: staff certificate lifetime %v out of range", ttl)
	}
	now := a.now().UTC().Truncate(time.Second)
	subject := pkix.Name{
		CommonName:   name,
		Organization: []string{DevMarker},
		SerialNumber: "staff " + staffID.String(),
	}
	cert, err := a.issue(a.signingTemplate(subject, now.Add(-5*time.Minute), now.Add(ttl)), pub, a.ca.Certificate, a.ca.Key)
	if err != nil {
		return nil, nil, err
	}
	a.log.Info("issued staff signing certificate", "name", name, "staff", staffID, "serial", SerialHex(cert), "not_after", cert.NotAfter)
	return cert, []*x509.Certificate{a.ca.Certificate}, nil
}

// Issued reports whether cert was issued by this authority: only those can
// be revoked here.
func (a *Authority) Issued(cert *x509.Certificate) bool {
	return cert.CheckSignatureFrom(a.ca.Certificate) == nil
}
