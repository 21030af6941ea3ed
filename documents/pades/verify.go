package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/chamber-court/chamber/pki"
	"github.com/digitorus/pdf"
	"golang.org/x/crypto/ocsp"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Roots are the trust anchors for signers and timestamp authorities;
	// build them with TrustStore. Nil means the system roots.
	Roots *x509.CertPool
	// Now is the time chains are checked at when a signature has no valid
	// timestamp (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// TrustStore returns a pool with the system roots (when system is true)
// and extra, e.g. Chamber's own CA and certificates given with --trust.
func TrustStore(system bool, extra ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	if system {
		if sys, err := x509.SystemCertPool(); err == nil && sys != nil {
			pool = sys.Clone()
		}
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool
}

// Verify examines every signature and document timestamp of a PDF: the
// integrity of the bytes it signs, that those bytes are the whole revision
// it signs (all but its own /Contents), the chain of its certificate to
// the trust store at the time of its timestamp, revocation data embedded in
// the document, its timestamp, its certification level, and what later
// revisions changed: only signatures, /DSS and document timestamps may
// follow a signature; anything else is reported as "modified after
// signing".
//
// Verify returns an error only when the PDF cannot be examined (a
// *MalformedError, ErrEncrypted, or the context's error); a PDF whose
// signatures are bad yields a Report saying so.
func Verify(ctx context.Context, r io.ReaderAt, size int64, opts VerifyOptions) (rep *Report, err error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Roots == nil {
		opts.Roots = TrustStore(true)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		var me *MalformedError
		if errors.As(err, &me) && me.Stack != nil {
			log.Warn("PDF parser panicked", "reason", me.Reason, "err", me.Err, "stack", string(me.Stack))
		}
	}()

	st, err := Check(ctx, r, size)
	if err != nil {
		return nil, err
	}
	v := &verifier{ctx: ctx, r: r, size: size, st: st, opts: opts,
		br: newBudgetReader(ctx, r, size), readers: map[int]*pdf.Reader{}, classified: map[int][]string{}}
	rdr, err := v.reader(len(st.Revisions) - 1)
	if err != nil {
		return nil, err
	}
	fields, err := signatureFields(rdr)
	if err != nil {
		return nil, err
	}
	rep = &Report{Size: size, Revisions: len(st.Revisions), Version: st.Version}
	if rep.SHA256, err = docHash(ctx, r, size); err != nil {
		return nil, err
	}
	if err := v.loadDSS(rdr); err != nil {
		return nil, err
	}
	for _, f := range fields {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.Signatures = append(rep.Signatures, v.verifyOne(f))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.finish()
	return rep, nil
}

type verifier struct {
	ctx  context.Context
	r    io.ReaderAt
	br   *budgetReader
	size int64
	st   *Structure
	opts VerifyOptions

	readers    map[int]*pdf.Reader
	classified map[int][]string // revision → disallowed changes it made

	dssPool *x509.CertPool
	crls    []*x509.RevocationList
	ocsps   [][]byte
}

// reader opens the document as it was at revision k.
func (v *verifier) reader(k int) (*pdf.Reader, error) {
	if rdr, ok := v.readers[k]; ok {
		return rdr, nil
	}
	end := v.st.Revisions[k].End
	rdr, err := openReader(io.NewSectionReader(v.br, 0, end), end)
	if err != nil {
		return nil, err
	}
	v.readers[k] = rdr
	return rdr, nil
}

func (v *verifier) loadDSS(rdr *pdf.Reader) (err error) {
	defer guard(&err, "reading /DSS")
	v.dssPool = x509.NewCertPool()
	dss := rdr.Trailer().Key("Root").Key("DSS")
	if dss.Kind() != pdf.Dict {
		return nil
	}
	read := func(key string, each func([]byte)) {
		arr := dss.Key(key)
		for i := 0; i < arr.Len() && i < 10000; i++ {
			s := arr.Index(i)
			if s.Kind() != pdf.Stream {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(s.Reader(), 16<<20))
			if err == nil {
				each(data)
			}
		}
	}
	read("Certs", func(b []byte) {
		if c, err := x509.ParseCertificate(b); err == nil {
			v.dssPool.AddCert(c)
		}
	})
	read("CRLs", func(b []byte) {
		if c, err := x509.ParseRevocationList(b); err == nil {
			v.crls = append(v.crls, c)
		}
	})
	read("OCSPs", func(b []byte) { v.ocsps = append(v.ocsps, b) })
	return nil
}

// verifyOne examines one signature field.
func (v *verifier) verifyOne(f sigField) (sr SignatureReport) {
	sr = SignatureReport{Field: f.name, Revision: -1}
	defer func() {
		if p := recover(); p != nil {
			sr.problem(fmt.Sprintf("cannot read the signature: parser panic: %v", p))
		}
		sr.settle()
	}()
	sv := f.value
	sr.SubFilter = sv.Key("SubFilter").Name()
	sr.Name = sv.Key("Name").Text()
	sr.Reason = sv.Key("Reason").Text()
	sr.Location = sv.Key("Location").Text()
	sr.Contact = sv.Key("ContactInfo").Text()
	sr.Kind = "signature"
	if sv.Key("Type").Name() == "DocTimeStamp" || sr.SubFilter == "ETSI.RFC3161" {
		sr.Kind = "document timestamp"
	}
	if sr.Kind == "signature" {
		sr.Certification = certificationOf(sv)
	}
	if m := sv.Key("M"); m.Kind() == pdf.String {
		if t, err := parsePDFDate(m.Text()); err == nil {
			sr.ClaimedTime = &t
		}
	}

	// ByteRange: two ranges around exactly this signature's /Contents,
	// ending at a revision boundary.
	brv := sv.Key("ByteRange")
	if brv.Kind() != pdf.Array || brv.Len() != 4 {
		sr.problem("ByteRange is not four numbers")
		return sr
	}
	var br [4]int64
	for i := range br {
		if brv.Index(i).Kind() != pdf.Integer {
			sr.problem("ByteRange is not four integers")
			return sr
		}
		br[i] = brv.Index(i).Int64()
	}
	sr.ByteRange = br[:]
	contents := []byte(sv.Key("Contents").RawString())
	if err := v.checkCoverage(br, contents, &sr); err != nil {
		sr.problem(err.Error())
		return sr
	}

	switch sr.Kind {
	case "document timestamp":
		v.verifyDocTimestamp(br, contents, &sr)
	default:
		switch sr.SubFilter {
		case "adbe.pkcs7.detached", "ETSI.CAdES.detached":
			v.verifySignature(br, contents, &sr)
		default:
			sr.problem(fmt.Sprintf("unsupported signature format /SubFilter /%s", sr.SubFilter))
			return sr
		}
	}
	v.checkLaterRevisions(&sr)
	return sr
}

// checkCoverage confirms the ByteRange covers every byte of its revision
// except this signature's /Contents hex string.
func (v *verifier) checkCoverage(br [4]int64, contents []byte, sr *SignatureReport) error {
	a, b, c, d := br[0], br[1], br[2], br[3]
	if a != 0 || b <= 0 || c <= b || d < 0 || c+d > v.size {
		return fmt.Errorf("ByteRange %v is not two ranges within the file starting at 0", br)
	}
	end := c + d
	for i, rev := range v.st.Revisions {
		if end == rev.End || end == rev.EOF {
			sr.Revision = i
		}
	}
	if sr.Revision < 0 {
		return fmt.Errorf("ByteRange ends at %d, not at the end of a revision: the signature does not cover a whole revision", end)
	}
	gap := c - b
	if gap > maxContentsGap || gap < 2 {
		return fmt.Errorf("unsigned gap of %d bytes", gap)
	}
	buf := make([]byte, gap)
	if _, err := v.r.ReadAt(buf, b); err != nil {
		return fmt.Errorf("read /Contents: %w", err)
	}
	if buf[0] != '<' || buf[gap-1] != '>' {
		return errors.New("the unsigned gap is not the /Contents hex string")
	}
	raw := make([]byte, hex.DecodedLen(int(gap-2)))
	if _, err := hex.Decode(raw, bytes.TrimSpace(buf[1:gap-1])); err != nil {
		return errors.New("the unsigned gap holds more than the /Contents hex string")
	}
	if !bytes.Equal(bytes.TrimRight(raw, "\x00"), bytes.TrimRight(contents, "\x00")) {
		return errors.New("the unsigned gap is not this signature's /Contents")
	}
	sr.CoversRevision = true
	return nil
}

// hashRanges streams the signed bytes through h.
func (v *verifier) hashRanges(br [4]int64, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("hash %v unavailable", h)
	}
	w := h.New()
	for _, rg := range [][2]int64{{br[0], br[1]}, {br[2], br[3]}} {
		if _, err := io.Copy(w, io.NewSectionReader(ctxReaderAt{v.ctx, v.r}, rg[0], rg[1])); err != nil {
			return nil, err
		}
	}
	return w.Sum(nil), nil
}

type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}

func (v *verifier) verifySignature(br [4]int64, contents []byte, sr *SignatureReport) {
	s, err := parseCMS(contents)
	if err != nil {
		sr.problem(err.Error())
		return
	}
	sr.Signer = s.signer.Subject.String()
	sr.SignerName = s.signer.Subject.CommonName
	sr.Serial = pki.SerialHex(s.signer)
	sr.Issuer = s.signer.Issuer.String()
	sr.Hash = s.hash.String()
	if !s.signingTime.IsZero() {
		t := s.signingTime.UTC()
		sr.ClaimedTime = &t
	}
	digest, err := v.hashRanges(br, s.hash)
	if err != nil {
		sr.problem("cannot read the signed bytes: " + err.Error())
		return
	}
	if err := s.verify(digest); err != nil {
		sr.problem("integrity: " + err.Error())
		return
	}
	sr.Intact = true

	at := v.opts.Now()
	if s.tsToken != nil {
		tr := &TimestampReport{}
		info, err := pki.VerifyTimestampToken(s.tsToken, func(h crypto.Hash) ([]byte, error) {
			if !h.Available() {
				return nil, fmt.Errorf("hash %v unavailable", h)
			}
			w := h.New()
			w.Write(s.signature)
			return w.Sum(nil), nil
		}, v.opts.Roots, v.dssPool)
		var te *pki.TimestampError
		switch {
		case errors.As(err, &te) && te.Reason == "authority not trusted":
			// Intact, but from an authority outside the trust store: the
			// signature is untrusted rather than broken.
			tr.Problem = err.Error()
			sr.untrustedTimestamp = true
		case err != nil:
			tr.Problem = err.Error()
			sr.problem("signature timestamp: " + err.Error())
		default:
			tr.Valid = true
			tr.Time = info.Time.UTC()
			tr.Authority = info.Authority.Subject.String()
			at = info.Time
		}
		sr.Timestamp = tr
	}

	inter := v.dssPool.Clone()
	for _, c := range s.p7.Certificates {
		inter.AddCert(c)
	}
	chains, err := s.signer.Verify(x509.VerifyOptions{
		Roots: v.opts.Roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		sr.ChainProblem = err.Error()
		return
	}
	sr.Trusted = true
	for _, c := range chains[0] {
		sr.Chain = append(sr.Chain, c.Subject.String())
	}
	var issuer *x509.Certificate
	if len(chains[0]) > 1 {
		issuer = chains[0][1]
	}
	v.checkRevocation(s, issuer, at, sr)
}

// checkRevocation looks for the signer's status in the CRLs and OCSP
// responses embedded in the document (/DSS and the signature's own
// revocation attribute). Verify never goes to the network.
func (v *verifier) checkRevocation(s *cmsSignature, issuer *x509.Certificate, at time.Time, sr *SignatureReport) {
	if issuer == nil {
		sr.Revocation = "not applicable (self-signed)"
		return
	}
	crls := append([]*x509.RevocationList(nil), v.crls...)
	for _, raw := range s.revInfo.CRL {
		if c, err := x509.ParseRevocationList(raw.FullBytes); err == nil {
			crls = append(crls, c)
		}
	}
	ocsps := append([][]byte(nil), v.ocsps...)
	for _, raw := range s.revInfo.OCSP {
		ocsps = append(ocsps, raw.FullBytes)
	}
	for _, raw := range ocsps {
		resp, err := ocsp.ParseResponseForCert(raw, s.signer, issuer)
		if err != nil {
			continue
		}
		if resp.Status == ocsp.Revoked {
			if !resp.RevokedAt.After(at) {
				sr.Revoked = true
				sr.Revocation = "revoked " + resp.RevokedAt.UTC().Format(time.RFC3339) + ", before the signing time (embedded OCSP)"
			} else {
				sr.Revocation = "revoked " + resp.RevokedAt.UTC().Format(time.RFC3339) + ", after the timestamped signing time: the signature stands (embedded OCSP)"
			}
			return
		}
		if resp.Status == ocsp.Good {
			sr.Revocation = "good (embedded OCSP of " + resp.ThisUpdate.UTC().Format(time.RFC3339) + ")"
			return
		}
	}
	for _, crl := range crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(s.signer.SerialNumber) != 0 {
				continue
			}
			if !e.RevocationTime.After(at) {
				sr.Revoked = true
				sr.Revocation = "revoked " + e.RevocationTime.UTC().Format(time.RFC3339) + ", before the signing time (embedded CRL)"
			} else {
				sr.Revocation = "revoked " + e.RevocationTime.UTC().Format(time.RFC3339) + ", after the timestamped signing time: the signature stands (embedded CRL)"
			}
			return
		}
		sr.Revocation = "good (embedded CRL of " + crl.ThisUpdate.UTC().Format(time.RFC3339) + ")"
		return
	}
	sr.Revocation = "no revocation data in the document"
}

func (v *verifier) verifyDocTimestamp(br [4]int64, contents []byte, sr *SignatureReport) {
	tr := &TimestampReport{}
	sr.Timestamp = tr
	var digestErr error
	info, err := pki.VerifyTimestampToken(trimDER(contents), func(h crypto.Hash) ([]byte, error) {
		sr.Hash = h.String()
		d, err := v.hashRanges(br, h)
		digestErr = err
		return d, err
	}, v.opts.Roots, v.dssPool)
	if err != nil {
		tr.Problem = err.Error()
		var te *pki.TimestampError
		switch {
		case digestErr != nil:
			sr.problem("cannot read the stamped bytes: " + digestErr.Error())
		case errors.As(err, &te) && te.Reason == "authority not trusted":
			sr.Intact = true
			sr.ChainProblem = err.Error()
		default:
			sr.problem("integrity: " + err.Error())
		}
		return
	}
	sr.Intact, sr.Trusted = true, true
	tr.Valid = true
	tr.Time = info.Time.UTC()
	tr.Authority = info.Authority.Subject.String()
	sr.Signer = tr.Authority
	sr.SignerName = info.Authority.Subject.CommonName
	sr.Serial = pki.SerialHex(info.Authority)
	sr.Issuer = info.Authority.Issuer.String()
}

// checkLaterRevisions classifies every revision after the signed one.
func (v *verifier) checkLaterRevisions(sr *SignatureReport) {
	if sr.Revision < 0 {
		return
	}
	for k := sr.Revision + 1; k < len(v.st.Revisions); k++ {
		changes, err := v.classify(k)
		if err != nil {
			changes = []string{fmt.Sprintf("revision %d cannot be examined: %v", k+1, err)}
		}
		for _, c := range changes {
			if len(sr.Changes) < 20 {
				sr.Changes = append(sr.Changes, fmt.Sprintf("revision %d: %s", k+1, c))
			}
		}
		if len(changes) > 0 {
			sr.ModifiedAfter = true
		}
		if sr.Certification == "certification: no changes allowed (P=1)" {
			if added, err := v.addsSignature(k); err == nil && added {
				sr.ModifiedAfter = true
				sr.Changes = append(sr.Changes, fmt.Sprintf("revision %d: adds a signature although the certification forbids any change", k+1))
			}
		}
	}
	sr.LaterRevisions = len(v.st.Revisions) - 1 - sr.Revision
}

func certificationOf(sv pdf.Value) string {
	ref := sv.Key("Reference")
	for i := 0; i < ref.Len(); i++ {
		r := ref.Index(i)
		if r.Key("TransformMethod").Name() != "DocMDP" {
			continue
		}
		switch p := r.Key("TransformParams").Key("P"); {
		case p.IsNull() || p.Int64() == 2:
			return "certification: form filling and signing allowed (P=2)"
		case p.Int64() == 1:
			return "certification: no changes allowed (P=1)"
		case p.Int64() == 3:
			return "certification: annotations, form filling and signing allowed (P=3)"
		default:
			return fmt.Sprintf("certification: unknown permissions P=%d", p.Int64())
		}
	}
	return "approval"
}

// parsePDFDate parses a PDF date string (D:YYYYMMDDHHmmSSOHH'mm').
func parsePDFDate(s string) (time.Time, error) {
	s = strings.TrimPrefix(s, "D:")
	s = strings.ReplaceAll(s, "'", "")
	for _, layout := range []string{"20060102150405-0700", "20060102150405Z0700", "20060102150405Z", "20060102150405"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad PDF date %q", s)
}

// docHash is the SHA-256 of the whole file, for reports.
func docHash(ctx context.Context, r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(ctxReaderAt{ctx, r}, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
