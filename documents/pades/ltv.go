package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/chamber-court/chamber/pki"
	"github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"
	"github.com/digitorus/pkcs7"
)

// LTVOptions configure AddLTV.
type LTVOptions struct {
	// Timestamper stamps the document timestamp. Required.
	Timestamper Timestamper
	// HTTPClient fetches CRLs and OCSP responses; build it with
	// pki.Egress, which decides which hosts may be contacted. nil allows
	// no request. Whatever the client, pki's fetcher follows no redirect
	// and bounds time and size.
	HTTPClient *http.Client
	// Certificates are added to every /DSS (e.g. Chamber's own root); the
	// self-signed ones among them are trust anchors when Roots is nil.
	Certificates []*x509.Certificate
	// Roots are the configured trust anchors (Chamber's CA, --trust).
	Roots *x509.CertPool
	// Own are the certificates Chamber itself signed or stamped with: the
	// signer's certificate and chain and the timestamp authority's (SignLTA
	// sets them). Revocation data is fetched for these alone — never for a
	// certificate found in the document, whose OCSP and CRL URLs are
	// whatever its author chose — and only when Chamber can build the
	// chain from them and Certificates, never from the document, to Roots.
	Own    []*x509.Certificate
	Logger *slog.Logger
}

// LTVResult describes the long-term-validation update.
type LTVResult struct {
	Certificates  int       `json:"certificates"` // in the /DSS after the update
	CRLs          int       `json:"crls"`
	OCSPs         int       `json:"ocsps"`
	TimestampTime time.Time `json:"timestamp_time"`
	Size          int64     `json:"size"`
}

// ErrRevocationUnavailable reports a certificate whose revocation status
// could not be fetched for the /DSS.
var ErrRevocationUnavailable = errors.New("pades: revocation data unavailable")

// OIDs of CMS attributes Chamber reads.
var (
	oidTimestampToken = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	oidRevocationInfo = asn1.ObjectIdentifier{1, 2, 840, 113583, 1, 1, 8}
	oidMessageDigest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
)

// AddLTV appends to a signed PDF the material for long-term validation, as
// PAdES B-LT and B-LTA ask: an incremental update with a /DSS dictionary
// holding the certificates of every signer's and timestamp authority's
// chain, and CRLs or OCSP responses fetched now for Chamber's own chains
// (opts.Own); then a document timestamp (pdfsign's TimeStampSignature)
// over everything. Earlier /DSS entries are kept. The result is written
// to w.
func AddLTV(ctx context.Context, r io.ReaderAt, size int64, w io.Writer, opts LTVOptions) (*LTVResult, error) {
	if opts.Timestamper == nil {
		return nil, invalidOptions("no Timestamper for the document timestamp")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	st, err := Check(ctx, r, size)
	if err != nil {
		return nil, err
	}
	b := newBudget(ctx, r, requestLimits(size, false))
	res, err := addLTV(ctx, b, st, size, w, opts, log)
	return res, b.wrap(err)
}

func addLTV(ctx context.Context, b *budget, st *Structure, size int64, w io.Writer, opts LTVOptions, log *slog.Logger) (*LTVResult, error) {
	rdr, err := openReader(b, b, size)
	if err != nil {
		return nil, err
	}
	fields, err := signatureFields(rdr)
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, errors.New("pades: no signature to add validation data for")
	}

	// Everything a verifier needs, deduplicated by content. Certificates
	// found in the document are copied, never followed to the network.
	dss := newDSSBuilder()
	if err := dss.loadExisting(b, rdr); err != nil {
		return nil, err
	}
	for _, c := range opts.Certificates {
		dss.addCert(c)
	}
	for _, f := range fields {
		_, value := f.resolve(rdr)
		for _, c := range signatureCertificates(value) {
			dss.addCert(c)
		}
	}
	for _, c := range opts.Own {
		dss.addCert(c)
	}
	if err := dss.fetchRevocation(ctx, opts.HTTPClient, ownChains(opts, log), log); err != nil {
		return nil, err
	}

	endsWithEOL := false
	if last := st.Revisions[len(st.Revisions)-1]; last.End == size && last.End > last.EOF {
		endsWithEOL = true
	}
	update, err := dss.write(rdr, size, endsWithEOL)
	if err != nil {
		return nil, err
	}

	// The document timestamp covers the file including the update.
	whole := &concatReaderAt{a: b, aSize: size, b: update}
	total := size + int64(len(update))
	in := io.NewSectionReader(whole, 0, total)
	rdr2, err := openReader(b, in, total)
	if err != nil {
		return nil, fmt.Errorf("pades: re-reading after /DSS update: %w", err)
	}
	bridge, err := startBridge(ctx, opts.Timestamper)
	if err != nil {
		return nil, err
	}
	defer bridge.close()
	cw := &countingWriter{w: w}
	err = bridge.run(in, cw, rdr2, total, sign.SignData{
		Signature:       sign.SignDataSignature{CertType: sign.TimeStampSignature, DocMDPPerm: sign.AllowFillingExistingFormFieldsAndSignaturesPerms},
		DigestAlgorithm: crypto.SHA256,
		TSA:             sign.TSA{URL: bridge.url},
	})
	if err != nil {
		return nil, err
	}
	res := &LTVResult{Certificates: len(dss.certs), CRLs: len(dss.crls), OCSPs: len(dss.ocsps), Size: cw.n}
	if tok := bridge.lastToken(); tok != nil {
		res.TimestampTime, _, _ = tokenFacts(tok)
	}
	return res, nil
}

// signatureCertificates returns the certificates inside a signature value:
// the CMS signer's and those of its signature timestamp, or a document
// timestamp's.
func signatureCertificates(v pdf.Value) (certs []*x509.Certificate) {
	defer func() {
		if recover() != nil {
			certs = nil
		}
	}()
	p7, err := pkcs7.Parse(trimDER([]byte(v.Key("Contents").RawString())))
	if err != nil {
		return nil
	}
	certs = append(certs, p7.Certificates...)
	for _, s := range p7.Signers {
		for _, a := range s.UnauthenticatedAttributes {
			if a.Type.Equal(oidTimestampToken) {
				if tp7, err := pkcs7.Parse(a.Value.Bytes); err == nil {
					certs = append(certs, tp7.Certificates...)
				}
			}
		}
	}
	return certs
}

// trimDER cuts the zero padding pdfsign leaves after a CMS object in
// /Contents, using the outer DER length.
func trimDER(b []byte) []byte {
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(b, &raw); err == nil && len(raw.FullBytes) > 0 {
		_ = rest
		return raw.FullBytes
	}
	return b
}

// dssBuilder collects /DSS entries, keeping those already in the file.
type dssBuilder struct {
	certs, crls, ocsps []dssItem
	seen               map[[32]byte]bool
	crlURLs            map[string]bool
	vri                *pdf.Value
}

type dssItem struct {
	ref  string // "id gen R" of an existing stream, or "" for new data
	data []byte // new data only: existing entries are kept by reference
	cert *x509.Certificate
}

func newDSSBuilder() *dssBuilder {
	return &dssBuilder{seen: map[[32]byte]bool{}, crlURLs: map[string]bool{}}
}

func (d *dssBuilder) add(list *[]dssItem, item dssItem) bool {
	h := sha256.Sum256(item.data)
	if d.seen[h] {
		return false
	}
	d.seen[h] = true
	*list = append(*list, item)
	return true
}

func (d *dssBuilder) addCert(c *x509.Certificate) {
	d.add(&d.certs, dssItem{data: c.Raw, cert: c})
}

// maxDSSHashed bounds the existing /DSS entries read for deduplication:
// certificates and OCSP responses are smaller; a larger entry (a CRL) is
// kept by reference without being read.
const maxDSSHashed = 256 << 10

// loadExisting keeps an earlier /DSS's entries by reference. Each distinct
// stream is read once, through the request's budget and only up to
// maxDSSHashed, to recognise what is already there; no data is kept.
func (d *dssBuilder) loadExisting(b *budget, rdr *pdf.Reader) (err error) {
	defer guard(&err, "reading the existing /DSS")
	old := rdr.Trailer().Key("Root").Key("DSS")
	if old.Kind() != pdf.Dict {
		return nil
	}
	for _, k := range []struct {
		key  string
		list *[]dssItem
	}{{"Certs", &d.certs}, {"CRLs", &d.crls}, {"OCSPs", &d.ocsps}} {
		streams, err := dssStreams(b, old, k.key)
		if err != nil {
			return err
		}
		for _, s := range streams {
			p := s.GetPtr()
			item := dssItem{ref: fmt.Sprintf("%d %d R", p.GetID(), p.GetGen())}
			h := sha256.New()
			n, err := b.copyStream(h, s, maxDSSHashed)
			if b.err != nil {
				return b.err
			}
			if err == nil && n <= maxDSSHashed {
				d.seen[[32]byte(h.Sum(nil))] = true
			}
			*k.list = append(*k.list, item)
		}
	}
	if vri := old.Key("VRI"); !vri.IsNull() {
		d.vri = &vri
	}
	return nil
}

// ownChain is a certificate of Chamber's own chain and its issuer.
type ownChain struct{ cert, issuer *x509.Certificate }

// ownChains builds the chains of the certificates Chamber signed and
// stamped with (opts.Own) to the configured roots, from opts.Own and
// opts.Certificates alone, and lists each certificate on them with its
// issuer. A certificate whose chain reaches no configured root gets no
// revocation data: whoever issued it chose its URLs.
func ownChains(opts LTVOptions, log *slog.Logger) []ownChain {
	roots := opts.Roots
	if roots == nil {
		roots = x509.NewCertPool()
		for _, c := range opts.Certificates {
			if isSelfSigned(c) {
				roots.AddCert(c)
			}
		}
	}
	inter := x509.NewCertPool()
	for _, c := range append(append([]*x509.Certificate(nil), opts.Own...), opts.Certificates...) {
		inter.AddCert(c)
	}
	var out []ownChain
	seen := map[string]bool{}
	for _, c := range opts.Own {
		if isSelfSigned(c) {
			continue
		}
		chains, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			log.Warn("no revocation data fetched: the chain reaches no configured trust root", "subject", c.Subject.String(), "err", err)
			continue
		}
		chain := chains[0]
		for i := 0; i+1 < len(chain); i++ {
			key := string(chain[i].Raw)
			if !seen[key] {
				seen[key] = true
				out = append(out, ownChain{cert: chain[i], issuer: chain[i+1]})
			}
		}
	}
	return out
}

// fetchRevocation adds an OCSP response or a CRL for each certificate of
// Chamber's own chains, through pki's one fetcher.
func (d *dssBuilder) fetchRevocation(ctx context.Context, client *http.Client, own []ownChain, log *slog.Logger) error {
	for _, o := range own {
		if len(o.cert.OCSPServer) == 0 && len(o.cert.CRLDistributionPoints) == 0 {
			continue
		}
		if slices.ContainsFunc(o.cert.CRLDistributionPoints, func(u string) bool { return d.crlURLs[u] }) {
			continue // a CRL already fetched covers it
		}
		rev, err := pki.FetchRevocation(ctx, client, o.cert, o.issuer)
		if err != nil {
			log.Warn("no revocation data for certificate", "subject", o.cert.Subject.String(), "err", err)
			return fmt.Errorf("%w: %s: %w", ErrRevocationUnavailable, o.cert.Subject, err)
		}
		if rev.Source == "OCSP" {
			d.add(&d.ocsps, dssItem{data: rev.Raw})
		} else {
			d.crlURLs[rev.URL] = true
			d.add(&d.crls, dssItem{data: rev.Raw})
		}
	}
	return nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// write builds the incremental update: new streams, the /DSS dictionary
// and the catalog pointing at it.
func (d *dssBuilder) write(rdr *pdf.Reader, size int64, endsWithEOL bool) (update []byte, err error) {
	defer guard(&err, "writing the /DSS update")
	u := newIncremental(rdr, size, endsWithEOL)
	refs := func(list []dssItem) string {
		var b bytes.Buffer
		for _, it := range list {
			if it.ref == "" {
				it.ref = fmt.Sprintf("%d 0 R", u.stream(it.data))
			}
			b.WriteString(" " + it.ref)
		}
		return b.String()
	}
	var dict bytes.Buffer
	dict.WriteString("<< /Type /DSS")
	fmt.Fprintf(&dict, " /Certs [%s ]", refs(d.certs))
	if len(d.crls) > 0 {
		fmt.Fprintf(&dict, " /CRLs [%s ]", refs(d.crls))
	}
	if len(d.ocsps) > 0 {
		fmt.Fprintf(&dict, " /OCSPs [%s ]", refs(d.ocsps))
	}
	dssID := u.alloc()
	if d.vri != nil {
		dict.WriteString(" /VRI ")
		if err := writeValue(&dict, *d.vri, dssID, 0); err != nil {
			return nil, err
		}
	}
	dict.WriteString(" >>")
	u.object(dssID, 0, dict.Bytes())

	root := rdr.Trailer().Key("Root")
	rp := root.GetPtr()
	var cat bytes.Buffer
	cat.WriteString("<<")
	for _, k := range root.Keys() {
		if k == "DSS" {
			continue
		}
		cat.WriteString(" ")
		writeName(&cat, k)
		cat.WriteString(" ")
		if err := writeValue(&cat, root.Key(k), rp.GetID(), 0); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(&cat, " /DSS %d 0 R >>", dssID)
	u.object(rp.GetID(), rp.GetGen(), cat.Bytes())
	return u.finish(root)
}

// concatReaderAt reads a followed by b without copying either.
type concatReaderAt struct {
	a     io.ReaderAt
	aSize int64
	b     []byte
}

func (c *concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < c.aSize {
		k := int(min(int64(len(p)), c.aSize-off))
		m, err := c.a.ReadAt(p[:k], off)
		n += m
		if m < k {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		p, off = p[k:], off+int64(k)
	}
	if len(p) == 0 {
		return n, nil
	}
	bo := off - c.aSize
	if bo >= int64(len(c.b)) {
		return n, io.EOF
	}
	m := copy(p, c.b[bo:])
	n += m
	if m < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// SignLTA signs (Sign) and then adds the /DSS and document timestamp
// (AddLTV) in one call, so the new version is PAdES B-LTA on its own. The
// B-T intermediate goes to a temporary file in tmpDir ("" for the
// system's), removed before returning; only the final file reaches w.
func SignLTA(ctx context.Context, r io.ReaderAt, size int64, w io.Writer, opts SignOptions, ltv LTVOptions, tmpDir string) (*SignResult, *LTVResult, error) {
	tmp, err := os.CreateTemp(tmpDir, "chamber-sign-*.pdf")
	if err != nil {
		return nil, nil, fmt.Errorf("pades: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sres, err := Sign(ctx, r, size, tmp, opts)
	if err != nil {
		return nil, nil, err
	}
	// Revocation data is fetched for what Chamber signed and stamped
	// with here, and for nothing the document brought.
	ltv.Own = append(append([]*x509.Certificate{opts.Signer.Certificate()}, opts.Signer.Chain()...), sres.tsaCerts...)
	lres, err := AddLTV(ctx, tmp, sres.Size, w, ltv)
	if err != nil {
		return nil, nil, err
	}
	return sres, lres, nil
}
