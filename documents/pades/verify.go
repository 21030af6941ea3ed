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
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Roots are the trust anchors for signers and timestamp authorities:
	// Chamber's CA and the roots configured with --trust (TrustStore).
	// Nil trusts nothing.
	Roots *x509.CertPool
	// RejectDevelopment is for a production trust setup: a timestamp from
	// a development authority (pki.DevMarker in its certificate, or the
	// example policy pki.DevTSAPolicy) is then not trusted at all. Without
	// it such a timestamp is accepted, but the entry and the verdict say
	// "development" and never plain "valid".
	RejectDevelopment bool
	// Now is the time chains are checked at when a signature has no valid
	// timestamp (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Verify examines every signature and document timestamp of a PDF: the
// integrity of the bytes it signs, that those bytes are the whole revision
// it signs (all but its own /Contents), the chain of its certificate to
// the trust store at the time of its timestamp and that the certificate
// may sign documents, revocation data embedded in the document, its
// timestamp, its certification level, and what later revisions changed:
// only signatures, /DSS and document timestamps may follow a signature;
// anything else is reported as "modified after signing".
//
// One budget (see budget) bounds everything the request parses; a PDF
// beyond it is refused with a *LimitError inside a *MalformedError.
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
		opts.Roots = x509.NewCertPool() // never the system's: x509 uses those for nil
	}
	log := opts.Logger
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
	b := newBudget(ctx, r, requestLimits(size, true))
	if st.MaxObjects > b.lim.readerObjects {
		return nil, b.wrap(&LimitError{What: "objects in one revision", Limit: b.lim.readerObjects})
	}
	v := &verifier{ctx: ctx, r: r, b: b, size: size, st: st, opts: opts,
		classified: map[int][]string{}, addsSig: map[int]bool{}}
	v.readers = readerCache{open: v.open, readers: map[int]*pdf.Reader{}}
	rep, err = v.run()
	if err == nil && b.err != nil {
		err = b.err
	}
	if err != nil {
		return nil, b.wrap(err)
	}
	return rep, nil
}

type verifier struct {
	ctx  context.Context
	r    io.ReaderAt // the file, for hashing and the /Contents gaps
	b    *budget     // what the parsers read through
	size int64
	st   *Structure
	opts VerifyOptions

	readers    readerCache
	classified map[int][]string // revision → disallowed changes it made
	addsSig    map[int]bool     // revision → adds a signature
	dss        dssIndex
}

// run verifies in two passes so that at most two parsers are alive at a
// time: first every signature against the last revision (fields, /DSS,
// cryptography, chains, revocation), then the later revisions of each.
func (v *verifier) run() (*Report, error) {
	last := len(v.st.Revisions) - 1
	rdr, err := v.readers.get(last)
	if err != nil {
		return nil, err
	}
	fields, err := signatureFields(rdr)
	if err != nil {
		return nil, err
	}
	rep := &Report{Size: v.size, Revisions: len(v.st.Revisions), Version: v.st.Version, Signatures: []SignatureReport{}}
	if rep.SHA256, err = docHash(v.ctx, v.r, v.size); err != nil {
		return nil, err
	}
	if err := v.loadDSS(rdr); err != nil {
		return nil, err
	}
	// One signature at a time: each /Contents may be megabytes.
	for _, f := range fields {
		if err := v.ctx.Err(); err != nil {
			return nil, err
		}
		rep.Signatures = append(rep.Signatures, v.verifyOne(readSigInfo(rdr, f)))
		if v.b.err != nil {
			return nil, v.b.err
		}
	}
	fields, rdr = nil, nil
	v.dss = dssIndex{} // the /DSS is no longer needed: drop its parser
	for i := range rep.Signatures {
		sr := &rep.Signatures[i]
		v.checkLaterRevisions(sr)
		sr.settle()
	}
	if err := v.ctx.Err(); err != nil {
		return nil, err
	}
	rep.finish()
	return rep, nil
}

// readerCache keeps the parsers of the two revisions used last; each
// holds the cross-reference table of its revision (32 bytes an object).
type readerCache struct {
	open    func(k int) (*pdf.Reader, error)
	readers map[int]*pdf.Reader
	order   []int // least recently used first
}

const readersKept = 2

func (c *readerCache) get(k int) (*pdf.Reader, error) {
	if rdr, ok := c.readers[k]; ok {
		c.touch(k)
		return rdr, nil
	}
	for len(c.order) >= readersKept {
		delete(c.readers, c.order[0])
		c.order = c.order[1:]
	}
	rdr, err := c.open(k)
	if err != nil {
		return nil, err
	}
	c.readers[k] = rdr
	c.order = append(c.order, k)
	return rdr, nil
}

func (c *readerCache) touch(k int) {
	for i, x := range c.order {
		if x == k {
			c.order = append(append(c.order[:i:i], c.order[i+1:]...), k)
			return
		}
	}
}

// open opens the document as it was at revision k.
func (v *verifier) open(k int) (*pdf.Reader, error) {
	end := v.st.Revisions[k].End
	return openReader(v.b, io.NewSectionReader(v.b, 0, end), end)
}

// sigInfo is what the verifier reads from a signature dictionary, so that
// the dictionary's parser need not stay alive.
type sigInfo struct {
	field, kind, subFilter          string
	name, reason, location, contact string
	certification                   string
	claimed                         *time.Time
	byteRange                       []int64
	byteRangeProblem, unreadable    string
	contents                        []byte
}

func readSigInfo(rdr *pdf.Reader, f sigField) (si sigInfo) {
	si.field = f.name
	defer func() {
		if p := recover(); p != nil {
			si.unreadable = fmt.Sprintf("cannot read the signature: parser panic: %v", p)
		}
	}()
	_, sv := f.resolve(rdr)
	si.subFilter = sv.Key("SubFilter").Name()
	si.name = sv.Key("Name").Text()
	si.reason = sv.Key("Reason").Text()
	si.location = sv.Key("Location").Text()
	si.contact = sv.Key("ContactInfo").Text()
	si.kind = KindSignature
	if sv.Key("Type").Name() == "DocTimeStamp" || si.subFilter == "ETSI.RFC3161" {
		si.kind = KindDocumentTimestamp
	} else {
		si.certification = certificationOf(sv)
	}
	if m := sv.Key("M"); m.Kind() == pdf.String {
		if t, err := parsePDFDate(m.Text()); err == nil {
			si.claimed = &t
		}
	}
	brv := sv.Key("ByteRange")
	if brv.Kind() != pdf.Array || brv.Len() != 4 {
		si.byteRangeProblem = "ByteRange is not four numbers"
		return si
	}
	for i := range 4 {
		if brv.Index(i).Kind() != pdf.Integer {
			si.byteRangeProblem = "ByteRange is not four integers"
			return si
		}
		si.byteRange = append(si.byteRange, brv.Index(i).Int64())
	}
	// /Contents is at most maxContentsGap in the file: checkCoverage
	// compares it with the gap it reads itself.
	si.contents = []byte(sv.Key("Contents").RawString())
	return si
}

// verifyOne examines one signature or document timestamp against the
// last revision; checkLaterRevisions does the rest.
func (v *verifier) verifyOne(si sigInfo) (sr SignatureReport) {
	sr = SignatureReport{Field: si.field, Revision: -1, Kind: si.kind, SubFilter: si.subFilter,
		Name: si.name, Reason: si.reason, Location: si.location, Contact: si.contact,
		Certification: si.certification, ClaimedTime: si.claimed}
	defer func() {
		if p := recover(); p != nil {
			sr.fail(ReasonUnreadable, fmt.Sprintf("cannot read the signature: parser panic: %v", p))
		}
	}()
	switch {
	case si.unreadable != "":
		sr.fail(ReasonUnreadable, si.unreadable)
		return sr
	case si.byteRangeProblem != "":
		sr.fail(ReasonCoverage, si.byteRangeProblem)
		return sr
	}
	br := [4]int64(si.byteRange)
	sr.ByteRange = si.byteRange
	if err := v.checkCoverage(br, si.contents, &sr); err != nil {
		sr.fail(ReasonCoverage, err.Error())
		return sr
	}
	switch {
	case sr.Kind == KindDocumentTimestamp:
		v.verifyDocTimestamp(br, si.contents, &sr)
	case sr.SubFilter == "adbe.pkcs7.detached" || sr.SubFilter == "ETSI.CAdES.detached":
		v.verifySignature(br, si.contents, &sr)
	default:
		sr.fail(ReasonFormat, fmt.Sprintf("unsupported signature format /SubFilter /%s", sr.SubFilter))
	}
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
		sr.fail(ReasonFormat, err.Error())
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
		sr.fail(ReasonUnreadable, "cannot read the signed bytes: "+err.Error())
		return
	}
	if err := s.verify(digest); err != nil {
		sr.fail(ReasonIntegrity, "integrity: "+err.Error())
		return
	}
	sr.Intact = true

	at, devTS := v.opts.Now(), false
	if s.tsToken != nil {
		at, devTS = v.signatureTimestamp(s, sr)
	}
	inter := v.dss.certs.Clone()
	for _, c := range s.p7.Certificates {
		inter.AddCert(c)
	}
	chain, code, text := chainFor(s.signer, v.opts.Roots, inter, at)
	if chain == nil {
		sr.ChainProblem = text
		sr.distrust(code, text)
		return
	}
	sr.Trusted = true
	for _, c := range chain {
		sr.Chain = append(sr.Chain, c.Subject.String())
	}
	sr.devCert, sr.devTS = isDevelopmentCertificate(s.signer), devTS
	var issuer *x509.Certificate
	if len(chain) > 1 {
		issuer = chain[1]
	}
	v.checkRevocation(s.signer, issuer, s.revInfo, at, sr)
}

// signatureTimestamp checks a signature's timestamp and returns the time
// the chain is checked at: the timestamp's when it is trusted, else now.
func (v *verifier) signatureTimestamp(s *cmsSignature, sr *SignatureReport) (at time.Time, development bool) {
	at = v.opts.Now()
	tr := &TimestampReport{}
	sr.Timestamp = tr
	info, err := pki.VerifyTimestampToken(s.tsToken, func(h crypto.Hash) ([]byte, error) {
		if !h.Available() {
			return nil, fmt.Errorf("hash %v unavailable", h)
		}
		w := h.New()
		w.Write(s.signature)
		return w.Sum(nil), nil
	}, v.opts.Roots, v.dss.certs)
	var te *pki.TimestampError
	switch {
	case errors.As(err, &te) && te.Reason == "authority not trusted":
		// Intact, but from an authority outside the trust store: the
		// signature is untrusted rather than broken.
		tr.Problem = err.Error()
		sr.distrust(ReasonTimestampUntrusted, "the timestamp authority is not trusted: "+err.Error())
		return at, false
	case err != nil:
		tr.Problem = err.Error()
		sr.fail(ReasonTimestampInvalid, "signature timestamp: "+err.Error())
		return at, false
	}
	v.describeTimestamp(tr, info)
	if tr.Development && v.opts.RejectDevelopment {
		sr.distrust(ReasonDevelopmentTimestamp, tr.Problem)
		return at, false
	}
	return info.Time, tr.Development
}

// describeTimestamp fills a report from a verified token; a development
// timestamp under RejectDevelopment is reported as not accepted.
func (v *verifier) describeTimestamp(tr *TimestampReport, info *pki.TimestampInfo) {
	tr.Time = info.Time.UTC()
	tr.Authority = info.Authority.Subject.String()
	tr.Policy = info.Policy.String()
	tr.Development = isDevelopmentTimestamp(info)
	tr.Valid = true
	if tr.Development && v.opts.RejectDevelopment {
		tr.Valid = false
		tr.Problem = "the timestamp comes from a development authority (" + tr.Authority + ", policy " + tr.Policy + "), which a production trust setup does not accept"
	}
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
	}, v.opts.Roots, v.dss.certs)
	if err != nil {
		tr.Problem = err.Error()
		var te *pki.TimestampError
		switch {
		case digestErr != nil:
			sr.fail(ReasonUnreadable, "cannot read the stamped bytes: "+digestErr.Error())
		case errors.As(err, &te) && te.Reason == "authority not trusted":
			sr.Intact = true
			sr.ChainProblem = err.Error()
			sr.distrust(ReasonTimestampUntrusted, "the timestamp authority is not trusted: "+err.Error())
		default:
			sr.fail(ReasonIntegrity, "integrity: "+err.Error())
		}
		return
	}
	sr.Intact = true
	sr.Signer = info.Authority.Subject.String()
	sr.SignerName = info.Authority.Subject.CommonName
	sr.Serial = pki.SerialHex(info.Authority)
	sr.Issuer = info.Authority.Issuer.String()
	v.describeTimestamp(tr, info)
	if !tr.Valid {
		sr.distrust(ReasonDevelopmentTimestamp, tr.Problem)
		return
	}
	sr.Trusted = true
	sr.devTS = tr.Development
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
		if sr.Certification == "certification: no changes allowed (P=1)" && v.revisionAddsSignature(k) {
			sr.ModifiedAfter = true
			sr.Changes = append(sr.Changes, fmt.Sprintf("revision %d: adds a signature although the certification forbids any change", k+1))
		}
	}
	sr.LaterRevisions = len(v.st.Revisions) - 1 - sr.Revision
}

func (v *verifier) revisionAddsSignature(k int) bool {
	if added, ok := v.addsSig[k]; ok {
		return added
	}
	added, err := v.addsSignature(k)
	v.addsSig[k] = err == nil && added
	return v.addsSig[k]
}

func certificationOf(sv pdf.Value) string {
	ref := sv.Key("Reference")
	for i := 0; i < ref.Len() && i < 16; i++ {
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
