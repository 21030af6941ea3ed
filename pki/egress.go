package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/chamber-court/chamber/fault"
)

// Egress is the policy for every request Chamber makes for revocation
// data — CRLs and OCSP responses, while checking a signing certificate and
// while embedding validation data in a signed PDF. Which certificates may
// cause a request is decided by the callers (only chains Chamber built
// itself to a configured trust root); Egress decides where a request may
// go and how much it may cost:
//
//   - only http and https URLs;
//   - URLs in Local are answered in process (Chamber's own CRL), never over
//     the network;
//   - any other host must be on AllowHosts (--revocation-allow-host);
//     with no allow-list, requests go only through Proxy (--egress-proxy),
//     which then decides; with neither, nothing leaves Chamber;
//   - direct connections never reach link-local (cloud metadata),
//     multicast or unspecified addresses, whatever a name resolves to;
//   - redirects are never followed;
//   - every request ends within Timeout and reads at most MaxBytes.
type Egress struct {
	AllowHosts []string // host or host:port, case-insensitive
	Proxy      *url.URL
	Local      map[string]http.Handler // exact URL → handler
	Timeout    time.Duration           // default HTTPTimeout
	MaxBytes   int64                   // default MaxRevocationBody
}

// HTTPTimeout bounds each revocation request.
const HTTPTimeout = 10 * time.Second

// MaxRevocationBody bounds a CRL or OCSP response fetched from elsewhere.
const MaxRevocationBody = 8 << 20

// ErrEgressDenied reports a request the egress policy does not allow.
var ErrEgressDenied = errors.New("pki: request not allowed by the egress policy")

// Client returns an HTTP client that enforces the policy.
func (e Egress) Client() *http.Client {
	if e.Timeout <= 0 {
		e.Timeout = HTTPTimeout
	}
	if e.MaxBytes <= 0 {
		e.MaxBytes = MaxRevocationBody
	}
	dialer := &net.Dialer{Timeout: e.Timeout, Control: refuseSpecialAddresses}
	base := &http.Transport{
		Proxy:                  nil, // never the environment's proxy: only the configured one
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    e.Timeout,
		ResponseHeaderTimeout:  e.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		DisableKeepAlives:      true,
	}
	if e.Proxy != nil {
		base.Proxy = http.ProxyURL(e.Proxy)
	}
	return &http.Client{
		Transport:     &egressTransport{policy: e, base: base},
		CheckRedirect: refuseRedirect,
		Timeout:       e.Timeout,
	}
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// refuseSpecialAddresses runs on every dial, after name resolution, so
// that no DNS answer leads a request to the cloud metadata service.
func refuseSpecialAddresses(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("%w: address %s", ErrEgressDenied, address)
	}
	return nil
}

type egressTransport struct {
	policy Egress
	base   http.RoundTripper
}

func (t *egressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q", ErrEgressDenied, req.URL.Scheme)
	}
	if h, ok := t.policy.Local[req.URL.String()]; ok {
		return serveLocal(h, req, t.policy.MaxBytes)
	}
	if !t.allowed(req.URL) {
		return nil, fmt.Errorf("%w: host %s is not on the allow-list (--revocation-allow-host) and no egress proxy is configured", ErrEgressDenied, req.URL.Host)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{r: resp.Body, left: t.policy.MaxBytes}
	return resp, nil
}

func (t *egressTransport) allowed(u *url.URL) bool {
	if len(t.policy.AllowHosts) == 0 {
		return t.policy.Proxy != nil
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, a := range t.policy.AllowHosts {
		a = strings.ToLower(strings.TrimSpace(a))
		if h, p, err := net.SplitHostPort(a); err == nil {
			if h == host && p == port {
				return true
			}
		} else if strings.Trim(a, "[]") == host {
			return true
		}
	}
	return false
}

// cappedBody fails a read past its limit instead of returning more.
type cappedBody struct {
	r    io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: response larger than the limit", ErrEgressDenied)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.r.Close() }

// serveLocal answers a request with an in-process handler.
func serveLocal(h http.Handler, req *http.Request, max int64) (*http.Response, error) {
	w := &memoryResponse{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(w, req)
	if int64(w.body.Len()) > max {
		return nil, fmt.Errorf("%w: response larger than the limit", ErrEgressDenied)
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

type memoryResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (m *memoryResponse) Header() http.Header { return m.header }
func (m *memoryResponse) WriteHeader(code int) {
	if !m.wrote {
		m.status, m.wrote = code, true
	}
}
func (m *memoryResponse) Write(p []byte) (int, error) {
	m.wrote = true
	return m.body.Write(p)
}

// Revocation is a certificate's status as one source answered it.
type Revocation struct {
	Source    string    // "OCSP" or "CRL"
	URL       string    // where it came from
	Raw       []byte    // the DER OCSP response or CRL, e.g. for a PDF's /DSS
	RevokedAt time.Time // zero when the certificate is not revoked
}

// ErrNoRevocationSource reports a certificate without OCSP or CRL pointers.
var ErrNoRevocationSource = errors.New("no OCSP responder or CRL distribution point")

// FetchRevocation is Chamber's one way of fetching revocation data: it
// asks cert's OCSP responder, then its CRL distribution points, through
// client (an Egress client; nil allows no request), and checks every
// answer against issuer. Whatever client it is given, it follows no
// redirect, waits at most HTTPTimeout (or the client's timeout) per
// request and reads at most MaxRevocationBody.
func FetchRevocation(ctx context.Context, client *http.Client, cert, issuer *x509.Certificate) (*Revocation, error) {
	if issuer == nil {
		return nil, errors.New("pki: revocation data is fetched only for a certificate whose issuer is known")
	}
	var errs []error
	if len(cert.OCSPServer) > 0 {
		raw, resp, err := FetchOCSP(ctx, client, cert, issuer)
		switch {
		case err == nil && resp.Status == ocsp.Revoked:
			return &Revocation{Source: "OCSP", URL: cert.OCSPServer[0], Raw: raw, RevokedAt: resp.RevokedAt}, nil
		case err == nil && resp.Status == ocsp.Good:
			return &Revocation{Source: "OCSP", URL: cert.OCSPServer[0], Raw: raw}, nil
		case err == nil:
			err = errors.New("OCSP status unknown")
		}
		errs = append(errs, err)
	}
	for _, u := range cert.CRLDistributionPoints {
		rev, err := fetchCRL(ctx, client, u, cert, issuer)
		if err == nil {
			return rev, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, ErrNoRevocationSource
	}
	return nil, errors.Join(errs...)
}

func fetchCRL(ctx context.Context, client *http.Client, u string, cert, issuer *x509.Certificate) (*Revocation, error) {
	der, err := Fetch(ctx, client, u)
	if err != nil {
		return nil, err
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", u, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL %s: %w", u, err)
	}
	rev := &Revocation{Source: "CRL", URL: u, Raw: der}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			rev.RevokedAt = e.RevocationTime
		}
	}
	return rev, nil
}

// CheckRevocation returns which source answered for cert and, for a
// revoked certificate, when it was revoked (see FetchRevocation).
func CheckRevocation(ctx context.Context, client *http.Client, cert, issuer *x509.Certificate) (source string, revokedAt time.Time, err error) {
	rev, err := FetchRevocation(ctx, client, cert, issuer)
	if err != nil {
		return "", time.Time{}, err
	}
	return rev.Source, rev.RevokedAt, nil
}

// FetchOCSP asks the certificate's OCSP responder for its status and
// returns the raw response (for embedding in a PDF's /DSS) and its parse,
// whose signature has been checked against issuer.
func FetchOCSP(ctx context.Context, client *http.Client, cert, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	if len(cert.OCSPServer) == 0 {
		return nil, nil, ErrNoRevocationSource
	}
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := do(ctx, client, http.MethodPost, cert.OCSPServer[0], req)
	if err != nil {
		return nil, nil, err
	}
	resp, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return nil, nil, err
	}
	return body, resp, nil
}

// Fetch GETs a revocation artefact (a CRL, a certificate).
func Fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	return do(ctx, client, http.MethodGet, url, nil)
}

func do(parent context.Context, client *http.Client, method, rawURL string, body []byte) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %s: only http and https", ErrEgressDenied, rawURL)
	}
	if client == nil {
		client = Egress{}.Client()
	}
	c := *client // whatever the caller's client does, no redirect is followed
	c.CheckRedirect = refuseRedirect
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = HTTPTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/ocsp-request")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, unreachable(parent, err, revocationSource)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, fmt.Errorf("%w: %s %s: %s: redirects are not followed", ErrEgressDenied, method, u.Redacted(), resp.Status)
	}
	if err := answered(resp, revocationSource); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxRevocationBody+1))
	if err != nil {
		return nil, unreachable(parent, fmt.Errorf("%s %s: %w", method, u.Redacted(), err), revocationSource)
	}
	if len(data) > MaxRevocationBody {
		return nil, fmt.Errorf("%s %s: response larger than %d bytes", method, u.Redacted(), MaxRevocationBody)
	}
	return data, nil
}

// The remote services a signature depends on, as an outage names them to
// the person signing.
const (
	revocationSource = "a revocation source (OCSP or CRL)"
	timestampService = "the timestamp authority"
)

// unreachable says that err, a failure to reach or read from a remote
// service the caller depends on (the TSA, an OCSP responder, a CRL's
// host), is an outage: fault.Unavailable, which the API answers with 503
// and Retry-After, so that a signature refused because the network or the
// service is down is retried, not reported as Chamber's own failure.
// Two failures are not outages and keep their own error: the egress
// policy's refusal (configuration; retrying cannot help) and a caller
// that gave up (parent canceled).
func unreachable(parent context.Context, err error, service string) error {
	if errors.Is(err, ErrEgressDenied) || parent.Err() != nil {
		return err
	}
	return fault.Wrap(fault.Unavailable, err, "%s cannot be reached; retry", service)
}

// answered checks a remote service's status: 200 is an answer, 429 and
// 5xx are the service saying it is down or overloaded (an outage, with its
// Retry-After when it gave one in seconds), anything else is a refusal
// that retrying would not change.
func answered(resp *http.Response, service string) error {
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return nil
	case code == http.StatusTooManyRequests || code >= 500:
		e := fault.Wrap(fault.Unavailable, errors.New(resp.Status), "%s is unavailable; retry", service)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
		}
		return e
	default:
		return errors.New(resp.Status)
	}
}

// maxRetryAfter bounds the wait a remote service's Retry-After passes on
// to Chamber's own clients.
const maxRetryAfter = time.Minute
