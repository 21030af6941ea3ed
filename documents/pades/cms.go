package pades

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/digitorus/pdfsign/revocation"
	"github.com/digitorus/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// cmsSignature is a detached CMS signature, verified against a digest of
// the signed bytes computed by streaming them (digitorus/pkcs7 wants the
// whole content in memory, which for a 200 MB PDF is 200 MB per signature).
type cmsSignature struct {
	p7          *pkcs7.PKCS7
	signer      *x509.Certificate
	hash        crypto.Hash
	signature   []byte // the signer's signature value (timestamped by the TSA)
	signedAttrs []byte // DER SET of the signed attributes, as signed
	sigAlgOID   asn1.ObjectIdentifier
	signingTime time.Time
	tsToken     []byte
	revInfo     revocation.InfoArchival
}

var (
	oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	digestOIDs   = map[string]crypto.Hash{
		pkcs7.OIDDigestAlgorithmSHA1.String():   crypto.SHA1,
		pkcs7.OIDDigestAlgorithmSHA256.String(): crypto.SHA256,
		pkcs7.OIDDigestAlgorithmSHA384.String(): crypto.SHA384,
		pkcs7.OIDDigestAlgorithmSHA512.String(): crypto.SHA512,
	}
)

// parseCMS parses a detached CMS SignedData with exactly one signer.
func parseCMS(der []byte) (s *cmsSignature, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("CMS parser panic: %v", p)
		}
	}()
	der = trimDER(der)
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("CMS: %w", err)
	}
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("CMS has %d signers, want 1", len(p7.Signers))
	}
	si := p7.Signers[0]
	s = &cmsSignature{p7: p7, signature: si.EncryptedDigest}
	for _, c := range p7.Certificates {
		if c.SerialNumber.Cmp(si.IssuerAndSerialNumber.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, si.IssuerAndSerialNumber.IssuerName.FullBytes) {
			s.signer = c
			break
		}
	}
	if s.signer == nil {
		return nil, errors.New("CMS does not carry its signer's certificate")
	}
	h, ok := digestOIDs[si.DigestAlgorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("unsupported digest algorithm %v", si.DigestAlgorithm.Algorithm)
	}
	s.hash = h
	s.signedAttrs, s.sigAlgOID, err = rawSignedAttrs(der)
	if err != nil {
		return nil, err
	}
	var t time.Time
	if p7.UnmarshalSignedAttribute(oidSigningTime, &t) == nil {
		s.signingTime = t
	}
	for _, a := range si.UnauthenticatedAttributes {
		if a.Type.Equal(oidTimestampToken) {
			s.tsToken = a.Value.Bytes
		}
	}
	_ = p7.UnmarshalSignedAttribute(oidRevocationInfo, &s.revInfo)
	return s, nil
}

// verify checks the signature given the digest of the signed bytes.
func (s *cmsSignature) verify(contentDigest []byte) error {
	if len(s.signedAttrs) == 0 {
		// No signed attributes: the signature is over the content digest.
		return verifyDigest(s.signer.PublicKey, s.hash, contentDigest, s.signature, s.sigAlgOID)
	}
	var md []byte
	if err := s.p7.UnmarshalSignedAttribute(oidMessageDigest, &md); err != nil {
		return fmt.Errorf("no message digest attribute: %w", err)
	}
	if subtle.ConstantTimeCompare(md, contentDigest) != 1 {
		return errDigestMismatch
	}
	if k, ok := s.signer.PublicKey.(ed25519.PublicKey); ok {
		if !ed25519.Verify(k, s.signedAttrs, s.signature) {
			return errors.New("Ed25519 signature invalid")
		}
		return nil
	}
	h := s.hash.New()
	h.Write(s.signedAttrs)
	return verifyDigest(s.signer.PublicKey, s.hash, h.Sum(nil), s.signature, s.sigAlgOID)
}

var errDigestMismatch = errors.New("digest mismatch: the signed bytes were changed")

func verifyDigest(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte, sigAlg asn1.ObjectIdentifier) error {
	if h == crypto.SHA1 {
		return errors.New("SHA-1 signatures are not accepted")
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if sigAlg.Equal(oidRSASSAPSS) {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature invalid")
		}
		return nil
	case ed25519.PublicKey:
		return errors.New("Ed25519 in CMS signs the attributes, not a digest; unsupported")
	}
	return fmt.Errorf("unsupported public key %T", pub)
}

// rawSignedAttrs extracts the first SignerInfo's signed attributes exactly
// as encoded (re-tagged from [0] IMPLICIT to SET, RFC 5652 §5.4) and its
// signature algorithm. It needs DER; BER-encoded CMS is refused.
func rawSignedAttrs(der []byte) ([]byte, asn1.ObjectIdentifier, error) {
	bad := errors.New("CMS is not DER-encoded SignedData")
	in := cryptobyte.String(der)
	var ci, content, sd, sis, si, algs cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!content.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
		!sd.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!sd.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) ||
		!sd.ReadASN1(&sis, cbasn1.SET) || !sis.ReadASN1(&si, cbasn1.SEQUENCE) ||
		!si.SkipASN1(cbasn1.INTEGER) {
		return nil, nil, bad
	}
	// sid: IssuerAndSerialNumber or [0] SubjectKeyIdentifier.
	if si.PeekASN1Tag(cbasn1.SEQUENCE) {
		si.SkipASN1(cbasn1.SEQUENCE)
	} else if !si.SkipASN1(cbasn1.Tag(0).ContextSpecific()) {
		return nil, nil, bad
	}
	if !si.SkipASN1(cbasn1.SEQUENCE) { // digestAlgorithm
		return nil, nil, bad
	}
	var attrs []byte
	if si.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific().Constructed()) {
		var el cryptobyte.String
		if !si.ReadASN1Element(&el, cbasn1.Tag(0).ContextSpecific().Constructed()) {
			return nil, nil, bad
		}
		attrs = append([]byte(nil), el...)
		attrs[0] = 0x31 // SET
	}
	var oid asn1.ObjectIdentifier
	if !si.ReadASN1(&algs, cbasn1.SEQUENCE) || !algs.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, bad
	}
	return attrs, oid, nil
}
