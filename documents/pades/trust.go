package pades

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/chamber-court/chamber/pki"
)

// Extended key usages that name document signing, besides
// emailProtection (which S/MIME-style signing certificates carry) and
// anyExtendedKeyUsage.
var (
	// OIDMicrosoftDocumentSigning is Microsoft's document-signing purpose.
	OIDMicrosoftDocumentSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 10, 3, 12}
	// OIDAdobeAuthenticDocuments is Adobe's Authentic Documents Trust purpose.
	OIDAdobeAuthenticDocuments = asn1.ObjectIdentifier{1, 2, 840, 113583, 1, 1, 5}
)

// TrustStore returns a pool holding exactly certs: Chamber's CA and the
// roots configured with --trust. Chamber never adds the operating
// system's web roots, which vouch for web servers, not for signers.
func TrustStore(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

// signsDocuments checks that a signer's certificate may sign documents:
// a key usage extension with digitalSignature or nonRepudiation
// (contentCommitment), and an extended key usage that is absent or names
// any purpose, emailProtection or document signing. A TLS server
// certificate (serverAuth only) does not sign court documents, whatever
// its name says.
func signsDocuments(c *x509.Certificate) (code, text string, ok bool) {
	if c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return ReasonKeyUsage, "the certificate's key usage allows neither digitalSignature nor nonRepudiation: it is not a signing certificate", false
	}
	if !purposeAllowsSigning(c) {
		return ReasonExtKeyUsage, "the certificate's extended key usage (" + purposes(c) + ") names no document-signing purpose", false
	}
	return "", "", true
}

func purposeAllowsSigning(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageAny || u == x509.ExtKeyUsageEmailProtection {
			return true
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		if o.Equal(pki.OIDExtKeyUsageDocumentSigning) || o.Equal(OIDMicrosoftDocumentSigning) || o.Equal(OIDAdobeAuthenticDocuments) {
			return true
		}
	}
	return false
}

var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth",
	x509.ExtKeyUsageCodeSigning: "codeSigning", x509.ExtKeyUsageTimeStamping: "timeStamping",
	x509.ExtKeyUsageOCSPSigning: "OCSPSigning",
}

func purposes(c *x509.Certificate) string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := ekuNames[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, "another purpose")
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		out = append(out, o.String())
	}
	return strings.Join(out, ", ")
}

// chainFor builds the signer's chain to the trust store at time at and
// checks that every certificate on it may sign documents (intermediates
// only as far as they restrict purposes). It returns the first chain that
// passes, or the reason code and text of the failure.
func chainFor(signer *x509.Certificate, roots, inter *x509.CertPool, at time.Time) ([]*x509.Certificate, string, string) {
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: at,
		// Purposes are checked below, with the document-signing OIDs Go
		// does not know.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &unknown):
			return nil, ReasonChainUntrusted, "the certificate does not chain to a trusted root: " + err.Error()
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return nil, ReasonCertificateExpired, "a certificate of the chain was not valid at the signing time: " + err.Error()
		}
		return nil, ReasonChainInvalid, "the certificate chain is not usable: " + err.Error()
	}
	code, text, ok := signsDocuments(signer)
	if !ok {
		return nil, code, text
	}
	for _, chain := range chains {
		if slices.IndexFunc(chain[1:], func(c *x509.Certificate) bool { return !purposeAllowsSigning(c) }) < 0 {
			return chain, "", ""
		}
	}
	return nil, ReasonExtKeyUsage, "an issuing certificate restricts its purposes to ones that exclude document signing"
}

// isDevelopmentCertificate reports a certificate of Chamber's development
// PKI (its subject carries pki.DevMarker).
func isDevelopmentCertificate(c *x509.Certificate) bool {
	return slices.Contains(c.Subject.Organization, pki.DevMarker) || strings.Contains(c.Subject.String(), pki.DevMarker)
}

// isDevelopmentTimestamp reports a timestamp from a development authority:
// its certificate carries pki.DevMarker or it stamps under the example
// policy pki.DevTSAPolicy, which promises nothing.
func isDevelopmentTimestamp(info *pki.TimestampInfo) bool {
	return isDevelopmentCertificate(info.Authority) || info.Policy.Equal(pki.DevTSAPolicy)
}
