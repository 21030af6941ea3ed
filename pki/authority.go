package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// DevMarker is part of the subject of every certificate the development
// authority issues, so that nobody mistakes one for a real seal.
const DevMarker = "DEVELOPMENT ONLY — not for legal use"

// Object identifiers used in the certificates Chamber issues.
var (
	// OIDExtKeyUsageDocumentSigning is id-kp-documentSigning (RFC 9336).
	OIDExtKeyUsageDocumentSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 36}
	oidExtKeyUsage                = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtKeyUsageTimeStamping    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
)

// File names under the authority's directory.
const (
	fileCACert   = "ca.crt"
	fileCAKey    = "ca.key"
	fileSealCert = "seal.crt"
	fileSealKey  = "seal.key"
	fileTSACert  = "tsa.crt"
	fileTSAKey   = "tsa.key"
)

// Paths under PublicURL where Handler serves the authority's artefacts.
const (
	PathCACert = "/pki/ca.crt"
	PathCRL    = "/pki/ca.crl"
)

// Authority is a certificate authority that issues per-act signing
// certificates, keeps their revocation list and carries the identities of
// Chamber's own seal and timestamp authority. LoadOrCreateDev makes the
// development one.
type Authority struct {
	dir       string
	publicURL string
	log       *slog.Logger
	now       func() time.Time

	ca   Identity // self-signed root: Chain is empty
	seal Identity
	tsa  Identity

	mu           sync.Mutex // guards revoked, revokedStamp, crl and checks
	checks       RevocationChecks
	revoked      []x509.RevocationListEntry
	revokedStamp fileStamp // of revoked.json as last read or written
	crl          []byte
	crlAt        time.Time
}

// LoadOrCreateDev loads the development authority kept under dir, creating
// a root CA, a seal (signing) certificate and a timestamp-authority
// certificate on first start. publicURL is where Chamber is reachable
// (e.g. https://chamber.example); certificates point their CRL distribution
// point and CA-issuers URL under it. Every subject says DevMarker.
func LoadOrCreateDev(dir, publicURL string, log *slog.Logger) (*Authority, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authority{dir: dir, publicURL: strings.TrimRight(publicURL, "/"), log: log, now: time.Now}
	if a.publicURL != "" {
		if _, err := url.Parse(a.publicURL); err != nil {
			return nil, fmt.Errorf("pki: public URL: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	present := 0
	for _, f := range []string{fileCACert, fileCAKey, fileSealCert, fileSealKey, fileTSACert, fileTSAKey} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			present++
		}
	}
	switch present {
	case 0:
		if err := a.create(); err != nil {
			return nil, err
		}
		log.Warn("created development PKI: "+DevMarker,
			"ca", filepath.Join(dir, fileCACert), "seal", filepath.Join(dir, fileSealCert),
			"tsa", filepath.Join(dir, fileTSACert))
	case 6:
		if err := a.load(); err != nil {
			return nil, err
		}
		log.Info("loaded development PKI: "+DevMarker,
			"ca", filepath.Join(dir, fileCACert), "seal", filepath.Join(dir, fileSealCert),
			"tsa", filepath.Join(dir, fileTSACert))
	default:
		// Never overwrite half a CA: certificates it issued may already
		// be inside signed evidence.
		return nil, fmt.Errorf("pki: %s holds only part of the development PKI; restore or remove it", dir)
	}
	if err := a.loadRevoked(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Authority) create() error {
	now := a.now().UTC().Truncate(time.Second)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Chamber development root CA", Organization: []string{DevMarker}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	ca, err := a.issue(caTmpl, caKey.Public(), nil, caKey)
	if err != nil {
		return err
	}
	a.ca = Identity{Certificate: ca, Key: caKey}

	sealKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	seal, err := a.issue(a.signingTemplate(pkix.Name{CommonName: "Chamber development seal", Organization: []string{DevMarker}},
		now.Add(-time.Hour), now.AddDate(2, 0, 0)), sealKey.Public(), ca, caKey)
	if err != nil {
		return err
	}
	a.seal = Identity{Certificate: seal, Chain: []*x509.Certificate{ca}, Key: sealKey}

	tsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ekuTS, err := asn1.Marshal([]asn1.ObjectIdentifier{oidExtKeyUsageTimeStamping})
	if err != nil {
		return err
	}
	tsaTmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "Chamber development timestamp authority", Organization: []string{DevMarker}},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.AddDate(5, 0, 0),
		KeyUsage:  x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		// RFC 3161 §2.3: the timeStamping key purpose must be the only one and critical.
		ExtraExtensions:       []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: ekuTS}},
		BasicConstraintsValid: true,
	}
	a.addURLs(tsaTmpl)
	tsa, err := a.issue(tsaTmpl, tsaKey.Public(), ca, caKey)
	if err != nil {
		return err
	}
	a.tsa = Identity{Certificate: tsa, Chain: []*x509.Certificate{ca}, Key: tsaKey}

	writes := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{fileCAKey, keyPEM(caKey), 0o600},
		{fileSealKey, keyPEM(sealKey), 0o600},
		{fileTSAKey, keyPEM(tsaKey), 0o600},
		{fileCACert, CertificatePEM(ca), 0o644},
		{fileSealCert, CertificatePEM(seal, ca), 0o644},
		{fileTSACert, CertificatePEM(tsa, ca), 0o644},
	}
	for _, w := range writes {
		if err := writeFileAtomic(filepath.Join(a.dir, w.name), w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

func (a *Authority) load() error {
	var err error
	if a.ca, err = LoadPEM(filepath.Join(a.dir, fileCACert), filepath.Join(a.dir, fileCAKey)); err != nil {
		return err
	}
	if a.seal, err = LoadPEM(filepath.Join(a.dir, fileSealCert), filepath.Join(a.dir, fileSealKey)); err != nil {
		return err
	}
	if a.tsa, err = LoadPEM(filepath.Join(a.dir, fileTSACert), filepath.Join(a.dir, fileTSAKey)); err != nil {
		return err
	}
	want := a.crlURL()
	if dp := a.seal.Certificate.CRLDistributionPoints; want != "" && (len(dp) == 0 || dp[0] != want) {
		a.log.Warn("development PKI was created for another public URL; its certificates keep the old CRL location",
			"crl", dp, "public_url", a.publicURL)
	}
	return nil
}

// signingTemplate is the profile of a document-signing certificate: the
// key usages NSS (pdfsig) and Adobe expect of a signer, plus RFC 9336's
// document-signing purpose.
func (a *Authority) signingTemplate(subject pkix.Name, notBefore, notAfter time.Time) *x509.Certificate {
	t := &x509.Certificate{
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{OIDExtKeyUsageDocumentSigning},
		BasicConstraintsValid: true,
	}
	a.addURLs(t)
	return t
}

func (a *Authority) addURLs(t *x509.Certificate) {
	if a.publicURL == "" {
		return
	}
	t.CRLDistributionPoints = []string{a.crlURL()}
	t.IssuingCertificateURL = []string{a.publicURL + PathCACert}
}

// CRLURLs are every location of the authority's one CRL: where it is
// served now, and where its seal's and timestamp authority's certificates
// say it is. A development PKI created under another public URL (a port
// that changed between starts) keeps the old location in its
// certificates, and the egress policy must answer that one in process
// too: fetched, it is refused as a host off the allow-list, and signing
// failed.
func (a *Authority) CRLURLs() []string {
	var out []string
	add := func(u string) {
		if u != "" && strings.HasSuffix(u, PathCRL) && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	add(a.crlURL())
	for _, id := range []Identity{a.seal, a.tsa} {
		if id.Certificate != nil {
			for _, dp := range id.Certificate.CRLDistributionPoints {
				add(dp)
			}
		}
	}
	return out
}

func (a *Authority) crlURL() string {
	if a.publicURL == "" {
		return ""
	}
	return a.publicURL + PathCRL
}

func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("pki: issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func randomSerial() (*big.Int, error) {
	// 159 random bits: positive, at most 20 octets (RFC 5280 §4.1.2.2).
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
}

func keyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // only our own freshly generated keys reach here
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFileAtomic never leaves a half-written key or certificate behind and
// refuses to replace an existing file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	// Link fails if path exists, unlike Rename.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// Root is the authority's root certificate.
func (a *Authority) Root() *x509.Certificate { return a.ca.Certificate }

// Roots returns a pool holding only the authority's root, for verifiers
// that trust Chamber's CA.
func (a *Authority) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.ca.Certificate)
	return p
}

// Seal is the development signing identity of the court or notary, used
// when no --signing-cert/--signing-p12 is configured.
func (a *Authority) Seal() Identity { return a.seal }

// TSAIdentity is the identity of the built-in timestamp authority.
func (a *Authority) TSAIdentity() Identity { return a.tsa }

// Dir is where the authority keeps its files.
func (a *Authority) Dir() string { return a.dir }

// ErrInvalidName reports a principal name unfit for a certificate subject.
var ErrInvalidName = errors.New("pki: invalid principal name")

// IssuePrincipal issues a fresh key and certificate for one principal in one
// session or act, valid for ttl. The subject names the person and the act,
// so the signature it makes is tied to that act only. The key is never
// stored: the caller keeps it for the act and drops it afterwards.
func (a *Authority) IssuePrincipal(ctx context.Context, name string, sessionID uuid.UUID, ttl time.Duration) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Identity{}, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if ttl <= 0 || ttl > 366*24*time.Hour {
		return Identity{}, fmt.Errorf("pki: principal certificate lifetime %v out of range", ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Identity{}, err
	}
	now := a.now().UTC().Truncate(time.Second)
	subject := pkix.Name{
		CommonName:         name,
		OrganizationalUnit: []string{"act " + sessionID.String()},
		Organization:       []string{DevMarker},
		SerialNumber:       sessionID.String(),
	}
	cert, err := a.issue(a.signingTemplate(subject, now.Add(-5*time.Minute), now.Add(ttl)), key.Public(), a.ca.Certificate, a.ca.Key)
	if err != nil {
		return Identity{}, err
	}
	a.log.Info("issued principal certificate", "name", name, "session", sessionID, "serial", SerialHex(cert), "not_after", cert.NotAfter)
	return Identity{Certificate: cert, Chain: []*x509.Certificate{a.ca.Certificate}, Key: key}, nil
}

// SerialHex formats a certificate's serial number the way Chamber journals it.
func SerialHex(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber) }
