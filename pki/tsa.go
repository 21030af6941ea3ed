package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
	"golang.org/x/time/rate"
)

// MIME types of RFC 3161 over HTTP (§3.4).
const (
	ContentTypeTimestampQuery = "application/timestamp-query"
	ContentTypeTimestampReply = "application/timestamp-reply"
)

// maxTimestampQuery bounds a request body: a query is a hash and a few
// small fields, well under 1 KiB.
const maxTimestampQuery = 16 << 10

// maxTimestampReply bounds a response read by the client.
const maxTimestampReply = 1 << 20

// DevTSAPolicy is the policy the development TSA stamps under: the example
// policy of OpenSSL's sample TSA configuration, fitting for a development
// authority that promises nothing.
var DevTSAPolicy = asn1.ObjectIdentifier{1, 2, 3, 4, 1}

// TSA is an RFC 3161 timestamp authority. It serves timestamp queries over
// HTTP (ServeHTTP, mounted at POST /tsa) and in process (Timestamp).
type TSA struct {
	id     Identity
	policy asn1.ObjectIdentifier
	log    *slog.Logger
	now    func() time.Time
}

// NewTSA returns a timestamp authority signing with id, whose certificate
// must carry the critical timeStamping extended key usage.
func NewTSA(id Identity, log *slog.Logger) (*TSA, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ok := false
	for _, u := range id.Certificate.ExtKeyUsage {
		ok = ok || u == x509.ExtKeyUsageTimeStamping
	}
	if !ok {
		return nil, errors.New("pki: TSA certificate lacks the timeStamping key purpose")
	}
	return &TSA{id: id, policy: DevTSAPolicy, log: log, now: time.Now}, nil
}

// TSA returns the authority's built-in timestamp authority.
func (a *Authority) TSA() *TSA {
	t, err := NewTSA(a.tsa, a.log)
	if err != nil {
		panic(err) // the authority created its own TSA certificate with that purpose
	}
	return t
}

// Certificate is the TSA's signing certificate.
func (t *TSA) Certificate() *x509.Certificate { return t.id.Certificate }

// ErrBadTimestampRequest reports a query the TSA rejects.
var ErrBadTimestampRequest = errors.New("pki: bad timestamp request")

// respond builds a granted TimeStampResp for req.
func (t *TSA) respond(req *timestamp.Request) ([]byte, error) {
	switch req.HashAlgorithm {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("%w: hash algorithm %v not accepted", ErrBadTimestampRequest, req.HashAlgorithm)
	}
	if len(req.HashedMessage) != req.HashAlgorithm.Size() {
		return nil, fmt.Errorf("%w: digest length %d does not match %v", ErrBadTimestampRequest, len(req.HashedMessage), req.HashAlgorithm)
	}
	if req.TSAPolicyOID != nil && !req.TSAPolicyOID.Equal(t.policy) {
		return nil, fmt.Errorf("%w: policy %v not offered", ErrBadTimestampRequest, req.TSAPolicyOID)
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     req.HashAlgorithm,
		HashedMessage:     req.HashedMessage,
		Time:              t.now().UTC().Truncate(time.Millisecond),
		Accuracy:          time.Second,
		Policy:            t.policy,
		Nonce:             req.Nonce,
		AddTSACertificate: req.Certificates,
	}
	if req.Certificates {
		ts.Certificates = t.id.Chain
	}
	return ts.CreateResponseWithOpts(t.id.Certificate, t.id.Key, crypto.SHA256)
}

// Timestamp stamps a SHA-256 digest in process and returns the DER
// TimeStampToken, like TSAClient.Timestamp without the HTTP round trip.
func (t *TSA) Timestamp(ctx context.Context, sha256Digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := t.respond(&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sha256Digest, Certificates: true})
	if err != nil {
		return nil, err
	}
	ts, err := timestamp.ParseResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("pki: own timestamp response: %w", err)
	}
	return ts.RawToken, nil
}

// ServeHTTP answers RFC 3161 queries (POST, application/timestamp-query).
// A query that cannot be parsed or is not acceptable gets a rejection
// TimeStampResp with the reason, as §2.4.2 asks; only a wrong method or
// media type or an oversized body is refused at the HTTP level.
func (t *TSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "RFC 3161 timestamp queries are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != ContentTypeTimestampQuery {
			http.Error(w, "want Content-Type "+ContentTypeTimestampQuery, http.StatusUnsupportedMediaType)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTimestampQuery))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "timestamp query too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read query", http.StatusBadRequest)
		return
	}
	resp, failure, err := t.answer(body)
	if err != nil {
		t.log.Info("timestamp query rejected", "err", err, "remote", r.RemoteAddr)
		resp, err = timestamp.CreateErrorResponse(timestamp.Rejection, failure)
		if err != nil {
			http.Error(w, "cannot encode rejection", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", ContentTypeTimestampReply)
	w.Write(resp)
}

// answer parses and stamps a query; a panic in the ASN.1 code on hostile
// input becomes a rejection, never a crashed server.
func (t *TSA) answer(body []byte) (resp []byte, failure timestamp.FailureInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, failure, err = nil, timestamp.BadDataFormat, fmt.Errorf("%w: %v", ErrBadTimestampRequest, p)
		}
	}()
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		return nil, timestamp.BadDataFormat, fmt.Errorf("%w: %v", ErrBadTimestampRequest, err)
	}
	resp, err = t.respond(req)
	if err != nil {
		switch {
		case req.TSAPolicyOID != nil && !req.TSAPolicyOID.Equal(t.policy):
			return nil, timestamp.UnacceptedPolicy, err
		case errors.Is(err, ErrBadTimestampRequest):
			return nil, timestamp.BadAlgorithm, err
		default:
			return nil, timestamp.SystemFailure, err
		}
	}
	return resp, 0, nil
}

// TSAClient asks an RFC 3161 timestamp authority over HTTP.
type TSAClient struct {
	URL        string
	HTTPClient *http.Client // nil: a client with a 30 s timeout
}

// Timestamp asks the TSA to stamp a SHA-256 digest and returns the DER
// TimeStampToken, after checking the response's signature, imprint and
// nonce.
func (c *TSAClient) Timestamp(ctx context.Context, sha256Digest []byte) ([]byte, error) {
	if len(sha256Digest) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("pki: timestamp: digest is %d bytes, want SHA-256", len(sha256Digest))
	}
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	// timestamp.Request.Marshal drops the nonce, so encode the query here.
	query, err := marshalQuery(sha256Digest, nonce)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(query))
	if err != nil {
		return nil, fmt.Errorf("pki: timestamp: %w", err)
	}
	req.Header.Set("Content-Type", ContentTypeTimestampQuery)
	client := c.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pki: timestamp: %w", unreachable(ctx, err, timestampService))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTimestampReply+1))
	if err != nil {
		return nil, fmt.Errorf("pki: timestamp: %w", unreachable(ctx, err, timestampService))
	}
	if err := answered(resp, timestampService); err != nil {
		return nil, fmt.Errorf("pki: timestamp: %s: %w", c.URL, err)
	}
	if len(body) > maxTimestampReply {
		return nil, fmt.Errorf("pki: timestamp: reply larger than %d bytes", maxTimestampReply)
	}
	ts, err := timestamp.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("pki: timestamp: %s: %w", c.URL, err)
	}
	if ts.HashAlgorithm != crypto.SHA256 || subtle.ConstantTimeCompare(ts.HashedMessage, sha256Digest) != 1 {
		return nil, errors.New("pki: timestamp: token stamps another digest")
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, errors.New("pki: timestamp: token does not echo the nonce")
	}
	return ts.RawToken, nil
}

// marshalQuery encodes a TimeStampReq (RFC 3161 §2.4.1) with a nonce.
func marshalQuery(sha256Digest []byte, nonce *big.Int) ([]byte, error) {
	type algorithmIdentifier struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	type messageImprint struct {
		HashAlgorithm algorithmIdentifier
		HashedMessage []byte
	}
	type timeStampReq struct {
		Version        int
		MessageImprint messageImprint
		Nonce          *big.Int `asn1:"optional"`
		CertReq        bool     `asn1:"optional,default:false"`
	}
	return asn1.Marshal(timeStampReq{
		Version: 1,
		MessageImprint: messageImprint{
			HashAlgorithm: algorithmIdentifier{Algorithm: pkcs7.OIDDigestAlgorithmSHA256, Parameters: asn1.NullRawValue},
			HashedMessage: sha256Digest,
		},
		Nonce:   nonce,
		CertReq: true,
	})
}

// TimestampError says why a timestamp token was not accepted.
type TimestampError struct {
	Reason string
	Err    error
}

func (e *TimestampError) Error() string {
	if e.Err != nil {
		return "pki: timestamp " + e.Reason + ": " + e.Err.Error()
	}
	return "pki: timestamp " + e.Reason
}

func (e *TimestampError) Unwrap() error { return e.Err }

// TimestampInfo describes a verified timestamp token.
type TimestampInfo struct {
	Time      time.Time
	Authority *x509.Certificate // the TSA's signing certificate
	Hash      crypto.Hash
	Serial    *big.Int
	Policy    asn1.ObjectIdentifier
}

// VerifyTimestamp checks that token is a valid TimeStampToken over
// sha256Digest, signed by a TSA whose certificate chains to roots with the
// timeStamping purpose at the stamped time. It returns that time and the
// TSA's certificate.
func VerifyTimestamp(token, sha256Digest []byte, roots *x509.CertPool) (time.Time, *x509.Certificate, error) {
	info, err := VerifyTimestampToken(token, func(h crypto.Hash) ([]byte, error) {
		if h != crypto.SHA256 {
			return nil, fmt.Errorf("token uses %v, want SHA-256", h)
		}
		return sha256Digest, nil
	}, roots, nil)
	if err != nil {
		return time.Time{}, nil, err
	}
	return info.Time, info.Authority, nil
}

// VerifyTimestampToken verifies a TimeStampToken whose imprint must equal
// digest(hash), where hash is the algorithm the token names; digest lets a
// caller hash large data only once it knows the algorithm. intermediates
// may add certificates found elsewhere (a PDF's /DSS) to those in the token.
func VerifyTimestampToken(token []byte, digest func(crypto.Hash) ([]byte, error), roots, intermediates *x509.CertPool) (info *TimestampInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, &TimestampError{Reason: "malformed", Err: fmt.Errorf("%v", p)}
		}
	}()
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return nil, &TimestampError{Reason: "malformed", Err: err}
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, &TimestampError{Reason: "without its TSA certificate"}
	}
	ts, err := timestamp.Parse(token) // checks the TSA's signature over TSTInfo
	if err != nil {
		return nil, &TimestampError{Reason: "signature invalid", Err: err}
	}
	want, err := digest(ts.HashAlgorithm)
	if err != nil {
		return nil, &TimestampError{Reason: "imprint", Err: err}
	}
	if subtle.ConstantTimeCompare(want, ts.HashedMessage) != 1 {
		return nil, &TimestampError{Reason: "does not match the stamped data"}
	}
	inter := x509.NewCertPool()
	if intermediates != nil {
		inter = intermediates.Clone()
	}
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	if _, err := signer.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   ts.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	}); err != nil {
		return nil, &TimestampError{Reason: "authority not trusted", Err: err}
	}
	return &TimestampInfo{Time: ts.Time, Authority: signer, Hash: ts.HashAlgorithm, Serial: ts.SerialNumber, Policy: ts.Policy}, nil
}

// WithPolicy returns a TSA that stamps under policy instead of the
// development policy (for an authority that is not a development one, and
// for tests of how verifiers tell the two apart).
func (t *TSA) WithPolicy(policy asn1.ObjectIdentifier) *TSA {
	c := *t
	c.policy = policy
	return &c
}

// RateLimit bounds the anonymous HTTP endpoint of a TSA: each client
// address gets Burst queries and then one every Every; all clients
// together get TotalBurst and one every TotalEvery.
type RateLimit struct {
	Every      time.Duration
	Burst      int
	TotalEvery time.Duration
	TotalBurst int
}

// DevTSALimit is the limit Chamber serves its development TSA with.
var DevTSALimit = RateLimit{Every: time.Second, Burst: 20, TotalEvery: 50 * time.Millisecond, TotalBurst: 100}

// Limited returns the TSA's HTTP handler behind the rate limit: a query
// beyond it is answered 429 with Retry-After and never signed.
func (t *TSA) Limited(l RateLimit) http.Handler {
	return &limitedTSA{tsa: t, l: l, total: rate.NewLimiter(rate.Every(l.TotalEvery), l.TotalBurst),
		clients: map[string]*clientRate{}, now: time.Now}
}

type limitedTSA struct {
	tsa   *TSA
	l     RateLimit
	total *rate.Limiter
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*clientRate
}

type clientRate struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxTSAClients bounds the limiter's memory; beyond it clients not seen
// for a while are forgotten.
const maxTSAClients = 50_000

func (h *limitedTSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	if wait, ok := h.allow(clientHost(r), now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Round(time.Second).Seconds()))))
		http.Error(w, "too many timestamp queries; the development TSA is rate-limited", http.StatusTooManyRequests)
		return
	}
	h.tsa.ServeHTTP(w, r)
}

// allow spends one query of the client's and of the total allowance.
func (h *limitedTSA) allow(client string, now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.clients[client]
	if c == nil {
		if len(h.clients) >= maxTSAClients {
			for k, v := range h.clients {
				if now.Sub(v.seen) > time.Duration(h.l.Burst)*h.l.Every {
					delete(h.clients, k)
				}
			}
		}
		c = &clientRate{lim: rate.NewLimiter(rate.Every(h.l.Every), h.l.Burst)}
		h.clients[client] = c
	}
	c.seen = now
	if c.lim.TokensAt(now) < 1 {
		return time.Duration((1 - c.lim.TokensAt(now)) * float64(h.l.Every)), false
	}
	if !h.total.AllowN(now, 1) {
		return h.l.TotalEvery, false
	}
	c.lim.AllowN(now, 1)
	return 0, true
}

func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
