package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

const (
	crlLifetime     = 7 * 24 * time.Hour
	crlRefresh      = time.Hour
	fileRevokedJSON = "revoked.json"
)

type revokedRecord struct {
	Serial string    `json:"serial"` // hex
	Time   time.Time `json:"time"`
	Reason int       `json:"reason"`
}

func (a *Authority) loadRevoked() error {
	entries, stamp, err := readRevoked(filepath.Join(a.dir, fileRevokedJSON))
	if err != nil {
		return err
	}
	a.revoked, a.revokedStamp = entries, stamp
	return nil
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

func readRevoked(path string) ([]x509.RevocationListEntry, fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fileStamp{}, nil
	}
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("pki: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("pki: %w", err)
	}
	var recs []revokedRecord
	if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fileStamp{}, fmt.Errorf("pki: %s: %w", fileRevokedJSON, err)
	}
	var entries []x509.RevocationListEntry
	for _, r := range recs {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fileStamp{}, fmt.Errorf("pki: %s: bad serial %q", fileRevokedJSON, r.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: r.Time, ReasonCode: r.Reason})
	}
	return entries, fileStamp{fi.ModTime(), fi.Size()}, nil
}

// syncRevoked picks up revocations another process wrote — `chamber
// signer revoke` runs beside the server — so a certificate revoked there
// is refused here at the next check, not at the next restart.
func (a *Authority) syncRevoked() {
	path := filepath.Join(a.dir, fileRevokedJSON)
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	a.mu.Lock()
	same := a.revokedStamp == fileStamp{fi.ModTime(), fi.Size()}
	a.mu.Unlock()
	if same {
		return
	}
	entries, stamp, err := readRevoked(path)
	if err != nil {
		a.log.Error("reading the revocation list another process wrote", "err", err)
		return
	}
	a.mu.Lock()
	a.revoked, a.revokedStamp, a.crl = entries, stamp, nil
	a.mu.Unlock()
}

// Revoke adds a certificate the authority issued to its revocation list,
// with an RFC 5280 reason code (0 unspecified, 1 key compromise, …), and
// persists the list before returning.
func (a *Authority) Revoke(ctx context.Context, serial *big.Int, reason int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.syncRevoked()
	a.mu.Lock()
	for _, e := range a.revoked {
		if e.SerialNumber.Cmp(serial) == 0 {
			a.mu.Unlock()
			return nil
		}
	}
	entries := append(append([]x509.RevocationListEntry(nil), a.revoked...),
		x509.RevocationListEntry{SerialNumber: serial, RevocationTime: a.now().UTC().Truncate(time.Second), ReasonCode: reason})
	a.mu.Unlock()

	recs := make([]revokedRecord, len(entries))
	for i, e := range entries {
		recs[i] = revokedRecord{Serial: fmt.Sprintf("%X", e.SerialNumber), Time: e.RevocationTime, Reason: e.ReasonCode}
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(a.dir, fileRevokedJSON)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	a.mu.Lock()
	a.revoked = entries
	a.crl = nil
	if fi, err := os.Stat(path); err == nil {
		a.revokedStamp = fileStamp{fi.ModTime(), fi.Size()}
	}
	a.mu.Unlock()
	a.log.Warn("revoked certificate", "serial", fmt.Sprintf("%X", serial), "reason", reason)
	return nil
}

// CRL returns the authority's current DER certificate revocation list,
// regenerating it when it is older than an hour or the list changed.
func (a *Authority) CRL(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.syncRevoked()
	a.mu.Lock()
	defer a.mu.Unlock() // signing with an in-memory key: no I/O under the lock
	now := a.now().UTC().Truncate(time.Second)
	if a.crl != nil && now.Sub(a.crlAt) < crlRefresh {
		return a.crl, nil
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixMicro()), // monotonic without extra state
		ThisUpdate:                now,
		NextUpdate:                now.Add(crlLifetime),
		RevokedCertificateEntries: a.revoked,
	}, a.ca.Certificate, a.ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CRL: %w", err)
	}
	a.crl, a.crlAt = der, now
	return der, nil
}

// Handler serves the authority's public artefacts: GET /pki/ca.crt (DER),
// GET /pki/ca.pem and GET /pki/ca.crl (DER CRL). Mount it at "/pki/".
func (a *Authority) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathCACert, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Write(a.ca.Certificate.Raw)
	})
	mux.HandleFunc("GET /pki/ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(CertificatePEM(a.ca.Certificate))
	})
	mux.HandleFunc("GET "+PathCRL, func(w http.ResponseWriter, r *http.Request) {
		der, err := a.CRL(r.Context())
		if err != nil {
			a.log.Error("serve CRL", "err", err)
			http.Error(w, "CRL unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(der)
	})
	return mux
}

// CertificateProblem says why a certificate may not be used to sign.
type CertificateProblem string

// Problems CheckCertificate reports.
const (
	ProblemNotYetValid CertificateProblem = "not yet valid"
	ProblemExpired     CertificateProblem = "expired"
	ProblemRevoked     CertificateProblem = "revoked"
	ProblemBadChain    CertificateProblem = "not issued by the given chain"
	ProblemKeyUsage    CertificateProblem = "not a signing certificate"
)

// CertificateError is returned when a certificate must not be used.
type CertificateError struct {
	Serial  string
	Subject string
	Problem CertificateProblem
	Err     error // detail, may be nil
}

func (e *CertificateError) Error() string {
	s := fmt.Sprintf("pki: certificate %s (%s) is %s", e.Serial, e.Subject, e.Problem)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CertificateError) Unwrap() error { return e.Err }

// CertificateStatus is what CheckCertificate found, for the journal.
type CertificateStatus struct {
	Serial     string    `json:"serial"` // upper-case hex
	Subject    string    `json:"subject"`
	NotAfter   time.Time `json:"not_after"`
	Revocation string    `json:"revocation"` // "good (CRL)", "good (OCSP)", "good (issuing authority)" or "unchecked: why"
}

// CheckCertificate checks a signing certificate before it is used: its
// validity period, that chain[0] issued it, its key usage, and its
// revocation status where reachable — this authority's own list for
// certificates it issued, otherwise OCSP or the CRL distribution point,
// fetched through the configured egress (SetRevocationChecks) and only
// when the chain reaches a configured trust root: the URLs in a chain
// nobody trusts are the chain author's choice. An unreachable responder or
// an unanchored chain leaves the status "unchecked"; a revoked or expired
// certificate is a *CertificateError.
func (a *Authority) CheckCertificate(ctx context.Context, cert *x509.Certificate, chain []*x509.Certificate) (CertificateStatus, error) {
	st := CertificateStatus{Serial: SerialHex(cert), Subject: cert.Subject.String(), NotAfter: cert.NotAfter}
	fail := func(p CertificateProblem, err error) (CertificateStatus, error) {
		return st, &CertificateError{Serial: st.Serial, Subject: st.Subject, Problem: p, Err: err}
	}
	now := a.now()
	if now.Before(cert.NotBefore) {
		return fail(ProblemNotYetValid, fmt.Errorf("valid from %s", cert.NotBefore.UTC().Format(time.RFC3339)))
	}
	if now.After(cert.NotAfter) {
		return fail(ProblemExpired, fmt.Errorf("expired %s", cert.NotAfter.UTC().Format(time.RFC3339)))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return fail(ProblemKeyUsage, nil)
	}
	var issuer *x509.Certificate
	if len(chain) > 0 {
		issuer = chain[0]
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			return fail(ProblemBadChain, err)
		}
		for _, c := range chain {
			if now.After(c.NotAfter) {
				return fail(ProblemExpired, fmt.Errorf("issuer %s expired", c.Subject))
			}
		}
	}
	if issuer != nil && issuer.Equal(a.ca.Certificate) {
		a.syncRevoked()
		a.mu.Lock()
		var revoked *x509.RevocationListEntry
		for i := range a.revoked {
			if a.revoked[i].SerialNumber.Cmp(cert.SerialNumber) == 0 {
				revoked = &a.revoked[i]
			}
		}
		a.mu.Unlock()
		if revoked != nil {
			return fail(ProblemRevoked, fmt.Errorf("revoked %s", revoked.RevocationTime.Format(time.RFC3339)))
		}
		st.Revocation = "good (issuing authority)"
		return st, nil
	}
	issuer, err := a.anchored(cert, chain, now)
	if err != nil {
		st.Revocation = "unchecked: " + err.Error()
		a.log.Warn("revocation status not fetched", "serial", st.Serial, "err", err)
		return st, nil
	}
	rev, revokedAt, err := CheckRevocation(ctx, a.revocationClient(), cert, issuer)
	switch {
	case err != nil:
		st.Revocation = "unchecked: " + err.Error()
		a.log.Warn("revocation status unavailable", "serial", st.Serial, "err", err)
	case !revokedAt.IsZero():
		return fail(ProblemRevoked, fmt.Errorf("revoked %s (%s)", revokedAt.Format(time.RFC3339), rev))
	default:
		st.Revocation = "good (" + rev + ")"
	}
	return st, nil
}

// RevocationChecks configure how CheckCertificate reaches the revocation
// sources of certificates this authority did not issue.
type RevocationChecks struct {
	// Client carries the egress policy (Egress.Client); nil: no request
	// leaves Chamber.
	Client *http.Client
	// Roots are the configured trust anchors besides this authority's
	// root (--trust).
	Roots []*x509.Certificate
}

// SetRevocationChecks configures CheckCertificate; call it before use.
func (a *Authority) SetRevocationChecks(rc RevocationChecks) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = rc
}

func (a *Authority) revocationClient() *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checks.Client
}

// anchored builds cert's chain from the given intermediates to this
// authority's root or a configured root, and returns cert's issuer on it.
func (a *Authority) anchored(cert *x509.Certificate, chain []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	a.mu.Lock()
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Certificate)
	for _, r := range a.checks.Roots {
		roots.AddCert(r)
	}
	a.mu.Unlock()
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("the chain does not reach a configured trust root, so its revocation sources are not contacted: %w", err)
	}
	if len(chains[0]) < 2 {
		return nil, ErrNoRevocationSource
	}
	return chains[0][1], nil
}
