package pades

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/revocation"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// Limits of a document's /DSS as the verifier reads it. Each entry is
// read once however often the arrays repeat it, decompressed through the
// request's budget, and kept only while it is needed: certificates for the
// whole request, an OCSP response or a CRL only while one signature is
// checked against it.
const (
	maxDSSEntries   = 10_000   // per array
	maxDSSCert      = 64 << 10 // one certificate
	maxDSSCertBytes = 4 << 20  // all certificates
	maxDSSOCSP      = 256 << 10
	maxDSSCRL       = 8 << 20
)

// dssStreams lists the distinct streams of the /DSS array key: a stream
// the array names twice (or 48 times) is listed once.
func dssStreams(b *budget, dss pdf.Value, key string) ([]pdf.Value, error) {
	arr := dss.Key(key)
	var out []pdf.Value
	seen := map[uint32]bool{}
	for i := 0; i < arr.Len() && i < maxDSSEntries; i++ {
		if err := b.object(1); err != nil {
			return nil, err
		}
		s := arr.Index(i)
		id := ptrID(s)
		if s.Kind() != pdf.Stream || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, s)
	}
	return out, nil
}

// dssIndex is what the verifier keeps of the /DSS.
type dssIndex struct {
	certs *x509.CertPool
	ocsps []pdf.Value
	crls  []pdf.Value
	// crlIssuers holds each CRL's issuer name (raw), read on first need;
	// nil for a CRL too large or unreadable.
	crlIssuers [][]byte
	crlsRead   bool
	skipped    int // CRLs beyond maxDSSCRL
}

// loadDSS reads the certificates of the /DSS and lists its OCSP responses
// and CRLs without reading them.
func (v *verifier) loadDSS(rdr *pdf.Reader) (err error) {
	defer guard(&err, "reading /DSS")
	v.dss = dssIndex{certs: x509.NewCertPool()}
	dss := rdr.Trailer().Key("Root").Key("DSS")
	if dss.Kind() != pdf.Dict {
		return nil
	}
	certs, err := dssStreams(v.b, dss, "Certs")
	if err != nil {
		return err
	}
	var total int64
	for _, s := range certs {
		der, err := v.b.readStream(s, maxDSSCert)
		if err == errTooLarge {
			continue // no certificate is that large
		}
		if err != nil {
			return err
		}
		if total += int64(len(der)); total > maxDSSCertBytes {
			v.b.err = &LimitError{What: "bytes of certificates in the /DSS", Limit: maxDSSCertBytes}
			return v.b.err
		}
		if c, err := x509.ParseCertificate(der); err == nil {
			v.dss.certs.AddCert(c)
		}
	}
	if v.dss.ocsps, err = dssStreams(v.b, dss, "OCSPs"); err != nil {
		return err
	}
	v.dss.crls, err = dssStreams(v.b, dss, "CRLs")
	return err
}

// crlIssuer returns the issuer name of a DER CRL without parsing its
// entries.
func crlIssuer(der []byte) []byte {
	in := cryptobyte.String(der)
	var crl, tbs cryptobyte.String
	var issuer cryptobyte.String
	if !in.ReadASN1(&crl, cbasn1.SEQUENCE) || !crl.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil
	}
	tbs.SkipOptionalASN1(cbasn1.INTEGER)
	if !tbs.SkipASN1(cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return nil
	}
	return issuer
}

// indexCRLs reads each /DSS CRL once, for its issuer.
func (v *verifier) indexCRLs() error {
	if v.dss.crlsRead {
		return nil
	}
	v.dss.crlsRead = true
	for _, s := range v.dss.crls {
		head := &headWriter{keep: 64 << 10}
		n, err := v.b.copyStreamGuarded(head, s, maxDSSCRL)
		var issuer []byte
		switch {
		case v.b.err != nil:
			return v.b.err
		case err == nil && n > maxDSSCRL:
			v.dss.skipped++
		case err == nil:
			issuer = crlIssuer(head.buf)
		}
		v.dss.crlIssuers = append(v.dss.crlIssuers, issuer)
	}
	return nil
}

// headWriter keeps the first bytes written to it and counts the rest.
type headWriter struct {
	buf  []byte
	keep int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.keep - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// checkRevocation looks for the signer's status in the OCSP responses and
// CRLs embedded in the document: the signature's own revocation attribute
// and the /DSS. Verify never goes to the network.
func (v *verifier) checkRevocation(signer, issuer *x509.Certificate, embedded revocation.InfoArchival, at time.Time, sr *SignatureReport) {
	if issuer == nil {
		sr.Revocation = "not applicable (self-signed)"
		return
	}
	decide := func(revokedAt time.Time, source string) {
		when := revokedAt.UTC().Format(time.RFC3339)
		if !revokedAt.After(at) {
			sr.Revoked = true
			sr.Revocation = "revoked " + when + ", before the signing time (" + source + ")"
		} else {
			sr.Revocation = "revoked " + when + ", after the timestamped signing time: the signature stands (" + source + ")"
		}
	}
	ocspAnswer := func(raw []byte) bool {
		resp, err := ocsp.ParseResponseForCert(raw, signer, issuer)
		switch {
		case err != nil:
			return false
		case resp.Status == ocsp.Revoked:
			decide(resp.RevokedAt, "embedded OCSP")
		case resp.Status == ocsp.Good:
			sr.Revocation = "good (embedded OCSP of " + resp.ThisUpdate.UTC().Format(time.RFC3339) + ")"
		default:
			return false
		}
		return true
	}
	for _, raw := range embedded.OCSP {
		if ocspAnswer(raw.FullBytes) {
			return
		}
	}
	for _, s := range v.dss.ocsps {
		if raw, err := v.b.readStream(s, maxDSSOCSP); err == nil && ocspAnswer(raw) {
			return
		}
	}
	crlAnswer := func(der []byte) bool {
		if !bytes.Equal(crlIssuer(der), issuer.RawSubject) {
			return false
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(issuer) != nil {
			return false
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(signer.SerialNumber) == 0 {
				decide(e.RevocationTime, "embedded CRL")
				return true
			}
		}
		sr.Revocation = "good (embedded CRL of " + crl.ThisUpdate.UTC().Format(time.RFC3339) + ")"
		return true
	}
	for _, raw := range embedded.CRL {
		if crlAnswer(raw.FullBytes) {
			return
		}
	}
	if v.indexCRLs() != nil {
		return
	}
	for i, s := range v.dss.crls {
		if !bytes.Equal(v.dss.crlIssuers[i], issuer.RawSubject) {
			continue
		}
		if der, err := v.b.readStream(s, maxDSSCRL); err == nil && crlAnswer(der) {
			return
		}
	}
	sr.Revocation = "no revocation data in the document"
	if v.dss.skipped > 0 {
		sr.Revocation += fmt.Sprintf(" (%d CRL(s) larger than %d MiB not examined)", v.dss.skipped, maxDSSCRL>>20)
	}
}
