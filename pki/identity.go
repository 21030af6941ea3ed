// Package pki holds Chamber's keys and certificates: the signing identity of
// the court or notary, a development certificate authority that issues
// per-act certificates to principals, its certificate revocation list, and
// an RFC 3161 timestamp authority with its client.
//
// Nothing here knows about PDFs or sessions; documents/pades and journal
// build on it.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"software.sslmate.com/src/go-pkcs12"
)

// A Signer produces signatures for one certificate. A software key loaded
// from a file, a key Chamber issues to a principal for one act, and (later)
// a qualified key on a national ID card reached through the participant's
// browser all satisfy it. SignDigest takes a context because a card-based
// signer waits for a person to confirm with a PIN.
type Signer interface {
	// Certificate is the signer's end-entity certificate.
	Certificate() *x509.Certificate
	// Chain is the issuing chain, nearest issuer first; it may end with
	// the root.
	Chain() []*x509.Certificate
	// SignDigest signs a precomputed digest, like crypto.Signer.Sign.
	SignDigest(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// Identity is a certificate, its chain and its software private key.
type Identity struct {
	Certificate *x509.Certificate
	Chain       []*x509.Certificate // issuers, nearest first; may include the root
	Key         crypto.Signer
}

// AsSigner returns id as a Signer.
func (id Identity) AsSigner() Signer { return identitySigner{id} }

type identitySigner struct{ id Identity }

func (s identitySigner) Certificate() *x509.Certificate { return s.id.Certificate }
func (s identitySigner) Chain() []*x509.Certificate     { return s.id.Chain }
func (s identitySigner) SignDigest(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.id.Key.Sign(nil, digest, opts)
}

// CryptoSigner adapts s to crypto.Signer for libraries that sign
// synchronously; ctx bounds every signature made through it.
func CryptoSigner(ctx context.Context, s Signer) crypto.Signer {
	return cryptoSigner{ctx: ctx, s: s}
}

type cryptoSigner struct {
	ctx context.Context
	s   Signer
}

func (c cryptoSigner) Public() crypto.PublicKey { return c.s.Certificate().PublicKey }
func (c cryptoSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return c.s.SignDigest(c.ctx, digest, opts)
}

// ErrKeyMismatch reports a private key that does not belong to the certificate.
var ErrKeyMismatch = errors.New("pki: private key does not match certificate")

// LoadPEM loads an identity from a PEM certificate file (the end-entity
// certificate first, optionally followed by its chain) and a PEM private key
// file (PKCS#8, PKCS#1 or SEC 1).
func LoadPEM(certFile, keyFile string) (Identity, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: read certificate: %w", err)
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: read key: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: %s: %w", keyFile, err)
	}
	return newIdentity(certs[0], certs[1:], key)
}

// LoadPKCS12 loads an identity from a PKCS#12 (.p12/.pfx) file.
func LoadPKCS12(file, password string) (Identity, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: read PKCS#12: %w", err)
	}
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: %s: %w", file, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return Identity{}, fmt.Errorf("pki: %s: unsupported key type %T", file, key)
	}
	return newIdentity(cert, chain, signer)
}

func newIdentity(cert *x509.Certificate, chain []*x509.Certificate, key crypto.Signer) (Identity, error) {
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return Identity{}, ErrKeyMismatch
	}
	return Identity{Certificate: cert, Chain: chain, Key: key}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ParseCertificatesPEM parses every CERTIFICATE block in data, e.g. the
// file given to `chamber verify --trust`.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	return parseCertsPEM(data)
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
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
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		switch k := key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
	}
}

// CertificatePEM encodes certificates as PEM.
func CertificatePEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
