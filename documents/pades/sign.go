// Package pades signs PDFs as PAdES signatures over
// github.com/digitorus/pdfsign, adds the long-term-validation material
// (/DSS and a document timestamp) that pdfsign does not write, and verifies
// signed PDFs independently, including what pdfsign's own verifier leaves
// out: that a signature covers its whole revision and what later
// revisions changed.
//
// Inputs are io.ReaderAt plus size (evidence-store objects), outputs
// io.Writer. Every parse of a PDF is bounded (see Check) and guarded: a
// panic inside a third-party parser becomes a *MalformedError.
package pades

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/pki"
	"github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"
	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
	"github.com/mattetti/filebuffer"
)

// Timestamper stamps a SHA-256 digest with an RFC 3161 TimeStampToken
// (DER). *pki.TSAClient (over HTTP) and *pki.TSA (in process) satisfy it.
type Timestamper interface {
	Timestamp(ctx context.Context, sha256Digest []byte) ([]byte, error)
}

// Kind is the kind of PDF signature (ISO 32000-1 §12.8).
type Kind int

const (
	// Approval is a recipient signature: it approves the document as it
	// is and leaves later signatures, /DSS and document timestamps
	// allowed. Principals, and in Chamber also the notary or judge who
	// signs last, sign this way.
	Approval Kind = iota + 1
	// Certification is an author signature with DocMDP permissions. ISO
	// 32000 allows it only as the first signature of a document, so Sign
	// refuses it on a document that already carries one.
	Certification
)

func (k Kind) String() string {
	switch k {
	case Approval:
		return "approval"
	case Certification:
		return "certification"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Permissions are DocMDP access permissions (ISO 32000-1 Table 254): what a
// certification signature still allows after it. Later /DSS and document
// timestamps are always allowed (ISO 32000-2 §12.8.2.2.2).
type Permissions int

const (
	// NoChanges forbids any change (P=1).
	NoChanges Permissions = 1
	// FormFillingAndSigning allows filling forms and signing (P=2).
	FormFillingAndSigning Permissions = 2
	// AnnotatingFormFillingAndSigning also allows annotations (P=3).
	AnnotatingFormFillingAndSigning Permissions = 3
)

// Appearance places a visible seal on a page. Coordinates are PDF points
// from the page's lower-left corner.
type Appearance struct {
	Page   int     `json:"page"` // 1-based
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

// SignOptions say who signs and how. Kind, Permissions, Signer and
// Timestamper are required: pdfsign's zero values would silently make a
// certification signature that forbids every later change.
type SignOptions struct {
	Signer      pki.Signer
	Kind        Kind
	Permissions Permissions
	Timestamper Timestamper

	Name     string // signer's name, /Name; default the certificate's CN
	Reason   string
	Location string
	Contact  string

	// Role and Act appear in the visible seal (e.g. "Notary",
	// "act 5f0c…"); Appearance nil makes an invisible signature.
	Role       string
	Act        string
	Appearance *Appearance

	// Time is the claimed signing time (default now); the trusted time is
	// the timestamp's.
	Time time.Time
}

// SignResult describes a signature just made, for the journal.
type SignResult struct {
	Serial             string    `json:"serial"` // signer certificate serial, upper-case hex
	Signer             string    `json:"signer"` // certificate subject
	SigningTime        time.Time `json:"signing_time"`
	TimestampTime      time.Time `json:"timestamp_time"`
	TimestampAuthority string    `json:"timestamp_authority"`
	Size               int64     `json:"size"` // bytes written

	tsaCerts []*x509.Certificate // the signature timestamp's certificates
}

// Errors from Sign for unusable options.
var (
	ErrOptions              = errors.New("pades: invalid signing options") // the cause of an invalidOptions error
	ErrCertificationNotLast = errors.New("pades: a certification signature must be the document's first signature")
)

// Sign appends one PAdES signature (B-T: CMS with signing-certificate-v2
// and an RFC 3161 signature timestamp) to the PDF in r as an incremental
// update and writes the whole signed file to w. w receives nothing unless
// signing succeeds.
func Sign(ctx context.Context, r io.ReaderAt, size int64, w io.Writer, opts SignOptions) (res *SignResult, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	in, rdr, err := openToSign(ctx, r, size, opts.Kind)
	if err != nil {
		return nil, err
	}
	cert := opts.Signer.Certificate()
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	name := opts.Name
	if name == "" {
		name = cert.Subject.CommonName
	}
	sd := signData(ctx, &opts, cert, name, now)
	if a := opts.Appearance; a != nil {
		if sd.Appearance, err = sealAppearance(rdr, a, sealLines(&opts, cert, name, now)); err != nil {
			return nil, err
		}
	}

	bridge, err := startBridge(ctx, opts.Timestamper)
	if err != nil {
		return nil, err
	}
	defer bridge.close()
	sd.TSA = sign.TSA{URL: bridge.url}

	cw := &countingWriter{w: w}
	if err := bridge.run(in, cw, rdr, size, sd); err != nil {
		return nil, err
	}
	res = &SignResult{Serial: pki.SerialHex(cert), Signer: cert.Subject.String(), SigningTime: now.UTC(), Size: cw.n}
	if tok := bridge.lastToken(); tok != nil {
		res.TimestampTime, res.TimestampAuthority, res.tsaCerts = tokenFacts(tok)
	}
	return res, nil
}

// openToSign checks the document and opens it under the request's parse
// budget, refusing a certification signature that would not be the
// first signature.
func openToSign(ctx context.Context, r io.ReaderAt, size int64, kind Kind) (*io.SectionReader, *pdf.Reader, error) {
	if _, err := Check(ctx, r, size); err != nil {
		return nil, nil, err
	}
	b := newBudget(ctx, r, requestLimits(size, false))
	in := io.NewSectionReader(b, 0, size)
	rdr, err := openReader(b, in, size)
	if err != nil {
		return nil, nil, b.wrap(err)
	}
	existing, err := countSignatures(rdr)
	if err != nil {
		return nil, nil, b.wrap(err)
	}
	if kind == Certification && existing > 0 {
		return nil, nil, ErrCertificationNotLast
	}
	return in, rdr, nil
}

// signData is what pdfsign needs to sign, but the appearance and the
// timestamp authority.
func signData(ctx context.Context, opts *SignOptions, cert *x509.Certificate, name string, now time.Time) sign.SignData {
	sd := sign.SignData{
		Signature: sign.SignDataSignature{
			CertType:   sign.ApprovalSignature,
			DocMDPPerm: sign.DocMDPPerm(opts.Permissions),
			Info: sign.SignDataSignatureInfo{
				Name: name, Location: opts.Location, Reason: opts.Reason, ContactInfo: opts.Contact, Date: now,
			},
		},
		Signer:            pki.CryptoSigner(ctx, opts.Signer),
		DigestAlgorithm:   crypto.SHA256,
		Certificate:       cert,
		CertificateChains: [][]*x509.Certificate{append([]*x509.Certificate{cert}, opts.Signer.Chain()...)},
	}
	if opts.Kind == Certification {
		sd.Signature.CertType = sign.CertificationSignature
	}
	return sd
}

// sealLines are the visible seal's lines of text.
func sealLines(opts *SignOptions, cert *x509.Certificate, name string, now time.Time) []string {
	lines := []string{name}
	if opts.Role != "" {
		lines = append(lines, opts.Role)
	}
	lines = append(lines, "Signed "+now.UTC().Format("2006-01-02 15:04 MST"))
	if opts.Act != "" {
		lines = append(lines, opts.Act)
	}
	if strings.Contains(cert.Subject.String(), pki.DevMarker) {
		lines = append(lines, "DEVELOPMENT ONLY")
	}
	return lines
}

// sealAppearance renders the visible seal of lines at a, on a page the
// document has.
func sealAppearance(rdr *pdf.Reader, a *Appearance, lines []string) (sign.Appearance, error) {
	pages, err := countPages(rdr)
	if err != nil {
		return sign.Appearance{}, err
	}
	if a.Page < 1 || a.Page > pages {
		return sign.Appearance{}, invalidOptions("seal on page %d of a %d-page document", a.Page, pages)
	}
	if err := checkPageTree(rdr, a.Page); err != nil {
		return sign.Appearance{}, err
	}
	img, err := renderSeal(a.Width, a.Height, lines)
	if err != nil {
		return sign.Appearance{}, invalidOptions("%v", err)
	}
	return sign.Appearance{
		Visible: true, Page: uint32(a.Page),
		LowerLeftX: a.X, LowerLeftY: a.Y, UpperRightX: a.X + a.Width, UpperRightY: a.Y + a.Height,
		Image: img,
	}, nil
}

// tokenFacts reads the time and the authority's name from a timestamp
// token that pdfsign has just embedded. It does not check the token's
// signature again: pdfsign embeds a token only after its own
// timestamp.ParseResponse has verified it, and the Timestamper verified it
// before that, so a third check would only cost time.
func tokenFacts(tok []byte) (genTime time.Time, authority string, certs []*x509.Certificate) {
	p7, err := pkcs7.Parse(tok)
	if err != nil {
		return time.Time{}, "", nil
	}
	// The head of TSTInfo (RFC 3161 §2.4.2); the optional fields after
	// genTime are not needed here.
	var info struct {
		Version        int
		Policy         asn1.ObjectIdentifier
		MessageImprint asn1.RawValue
		SerialNumber   *big.Int
		GenTime        time.Time `asn1:"generalized"`
	}
	if _, err := asn1.Unmarshal(p7.Content, &info); err != nil {
		return time.Time{}, "", nil
	}
	if signer := p7.GetOnlySigner(); signer != nil {
		authority = signer.Subject.String()
	} else if len(p7.Certificates) > 0 {
		authority = p7.Certificates[0].Subject.String()
	}
	return info.GenTime, authority, p7.Certificates
}

func (o *SignOptions) validate() error {
	switch {
	case o.Signer == nil || o.Signer.Certificate() == nil:
		return invalidOptions("no signer")
	case o.Kind != Approval && o.Kind != Certification:
		return invalidOptions("Kind must be Approval or Certification")
	case o.Permissions < NoChanges || o.Permissions > AnnotatingFormFillingAndSigning:
		return invalidOptions("Permissions must be set explicitly (1, 2 or 3)")
	case o.Timestamper == nil:
		return invalidOptions("every signature carries a timestamp; no Timestamper")
	case o.Kind == Certification && o.Appearance != nil:
		// pdfsign draws appearances for approval signatures only.
		return invalidOptions("a certification signature is invisible")
	}
	return nil
}

// runPdfsign calls pdfsign under the panic guard.
//
// pdfsign holds the whole document in memory several times over (its
// output buffer, a copy of the signed ranges, and pkcs7's DER copy of
// those); bigInput is the threshold above which Chamber collects garbage
// straight after, so that the next large step (the /DSS pass, the next
// request) reuses that memory instead of growing the heap further.
func runPdfsign(in *io.SectionReader, w io.Writer, rdr *pdf.Reader, size int64, sd sign.SignData) (err error) {
	defer guard(&err, "pdfsign")
	if size > bigInput {
		defer runtime.GC()
	}
	if err := sign.Sign(presized{in}, w, rdr, size, sd); err != nil {
		return fmt.Errorf("pades: pdfsign: %w", err)
	}
	return nil
}

const bigInput = 16 << 20

// presized is the input handed to pdfsign. pdfsign copies it into its
// output buffer with io.Copy, which uses WriteTo when the source has it:
// growing that buffer to the file's size first spares the bytes.Buffer
// doubling, which at unlucky sizes costs another whole copy of the file.
type presized struct{ *io.SectionReader }

func (p presized) WriteTo(w io.Writer) (int64, error) {
	if fb, ok := w.(*filebuffer.Buffer); ok && fb.Buff != nil {
		fb.Buff.Grow(int(p.Size()) + 256<<10) // room for the update, seal image included
	}
	return io.Copy(w, struct{ io.Reader }{p.SectionReader})
}

// openReader opens the parser on a file Check accepted, reading through
// the request's budget, and admits it (object streams checked) before
// anything else reads through it.
func openReader(b *budget, r io.ReaderAt, size int64) (rdr *pdf.Reader, err error) {
	defer guard(&err, "opening the PDF")
	rdr, err = pdf.NewReader(r, size)
	if err != nil {
		return nil, &MalformedError{Reason: "cannot open", Err: err}
	}
	if !rdr.Trailer().Key("Encrypt").IsNull() {
		return nil, ErrEncrypted
	}
	if err := b.admit(rdr); err != nil {
		return nil, err
	}
	root := rdr.Trailer().Key("Root")
	if root.Kind() != pdf.Dict {
		return nil, malformed("no document catalog")
	}
	// pdfsign adds /Version /1.5 to the catalog whenever the header says
	// less, even when an earlier signature already did, which duplicates
	// the key. Tell it the version the catalog declares.
	if v := root.Key("Version").Name(); v > rdr.PDFVersion && len(v) == 3 && v[1] == '.' {
		rdr.PDFVersion = v
	}
	return rdr, nil
}

// checkPageTree walks the page tree the way pdfsign looks for a page, but
// with a depth limit and cycle detection: pdfsign recurses without either,
// and a cyclic /Kids would overflow the stack, which is fatal in Go.
func checkPageTree(rdr *pdf.Reader, page int) (err error) {
	defer guard(&err, "walking the page tree")
	seen := map[uint32]bool{}
	remaining := page
	var walk func(v pdf.Value, depth int) (bool, error)
	walk = func(v pdf.Value, depth int) (bool, error) {
		if depth > 64 {
			return false, malformed("page tree deeper than 64 levels")
		}
		if id := ptrID(v); id != 0 {
			if seen[id] {
				return false, malformed("page tree contains a cycle at object %d", id)
			}
			seen[id] = true
		}
		switch v.Key("Type").Name() {
		case "Pages":
			kids := v.Key("Kids")
			for i := 0; i < kids.Len(); i++ {
				found, err := walk(kids.Index(i), depth+1)
				if found || err != nil {
					return found, err
				}
			}
		case "Page":
			remaining--
			return remaining == 0, nil
		}
		return false, nil
	}
	found, err := walk(rdr.Trailer().Key("Root").Key("Pages"), 0)
	if err != nil {
		return err
	}
	if !found {
		return invalidOptions("page %d not found in the page tree", page)
	}
	return nil
}

func countPages(rdr *pdf.Reader) (n int, err error) {
	defer guard(&err, "counting pages")
	return rdr.NumPage(), nil
}

// sigField is a signed signature field. It keeps references only: a
// signature value may hold megabytes, a document up to MaxSignatures of
// them, so each field is resolved again (resolve) when it is examined.
type sigField struct {
	name    string
	ref     any        // the field's indirect reference
	direct  *pdf.Value // a field written directly inside an array, which has no reference of its own
	valueID uint32     // object number of the /V dictionary (the field's own when /V is direct)
}

// resolve reads the field and its signature value.
func (f sigField) resolve(rdr *pdf.Reader) (field, value pdf.Value) {
	if f.direct != nil {
		field = *f.direct
	} else {
		field = rdr.Resolve(rdr.Trailer().GetPtr(), f.ref)
	}
	return field, field.Key("V")
}

// signatureFields walks the AcroForm field tree for signed signature fields.
func signatureFields(rdr *pdf.Reader) (out []sigField, err error) {
	defer guard(&err, "reading signature fields")
	fields := rdr.Trailer().Key("Root").Key("AcroForm").Key("Fields")
	seen := map[uint32]bool{}
	visited := 0
	var walk func(v pdf.Value, container uint32, parentName, parentFT string, depth int) error
	walk = func(v pdf.Value, container uint32, parentName, parentFT string, depth int) error {
		if depth > 16 {
			return malformed("form field tree nested too deeply")
		}
		if visited++; visited > 20000 {
			return malformed("too many form fields")
		}
		name := v.Key("T").Text()
		if parentName != "" && name != "" {
			name = parentName + "." + name
		} else if name == "" {
			name = parentName
		}
		ft := v.Key("FT").Name()
		if ft == "" {
			ft = parentFT
		}
		if kids := v.Key("Kids"); kids.Kind() == pdf.Array {
			for i := 0; i < kids.Len(); i++ {
				if err := walk(kids.Index(i), ptrID(kids), name, ft, depth+1); err != nil {
					return err
				}
			}
		}
		if ft != "Sig" {
			return nil
		}
		sv := v.Key("V")
		if sv.Kind() != pdf.Dict {
			return nil // unsigned signature field
		}
		id := ptrID(sv)
		if seen[id] && id != 0 {
			return nil
		}
		seen[id] = true
		if len(out) >= MaxSignatures {
			return malformed("more than %d signatures", MaxSignatures)
		}
		f := sigField{name: name, valueID: id}
		if p := v.GetPtr(); p.GetID() != container {
			f.ref = p
		} else {
			f.direct = &v
		}
		out = append(out, f)
		return nil
	}
	if fields.Kind() != pdf.Array {
		return nil, nil
	}
	for i := 0; i < fields.Len(); i++ {
		if err := walk(fields.Index(i), ptrID(fields), "", "", 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func countSignatures(rdr *pdf.Reader) (int, error) {
	f, err := signatureFields(rdr)
	return len(f), err
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tsaBridge lets pdfsign, which only knows a TSA URL and calls it with its
// own HTTP client, use any Timestamper: a loopback HTTP endpoint, living
// for one signing call, that forwards the query's digest to the
// Timestamper under the caller's context and deadline. The path carries a
// random secret so no other local process can use it meanwhile.
type tsaBridge struct {
	url  string
	srv  *http.Server
	done chan struct{}

	ctx context.Context
	ts  Timestamper

	mu     sync.Mutex
	tokens [][]byte
	failed error // the Timestamper's last error
}

func startBridge(ctx context.Context, ts Timestamper) (*tsaBridge, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pades: timestamp bridge: %w", err)
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	path := fmt.Sprintf("/%x", secret)
	b := &tsaBridge{url: "http://" + ln.Addr().String() + path, ctx: ctx, ts: ts, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+path, b.serve)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(b.done)
		b.srv.Serve(ln)
	}()
	return b, nil
}

func (b *tsaBridge) close() {
	b.srv.Close()
	<-b.done
}

// run signs through pdfsign with this bridge as its TSA. pdfsign sees the
// Timestamper's failure only as the bridge's HTTP answer and reports it as
// text; run reports the Timestamper's own error instead, so that its kind
// survives (an unreachable TSA is an outage, 503 and a retry, not
// Chamber's own failure).
func (b *tsaBridge) run(in *io.SectionReader, w io.Writer, rdr *pdf.Reader, size int64, sd sign.SignData) error {
	err := runPdfsign(in, w, rdr, size, sd)
	if err == nil {
		return nil
	}
	b.mu.Lock()
	failed := b.failed
	b.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("pades: timestamp: %w", failed)
	}
	return err
}

func (b *tsaBridge) lastToken() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.tokens) == 0 {
		return nil
	}
	return b.tokens[len(b.tokens)-1]
}

func (b *tsaBridge) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := timestamp.ParseRequest(body)
	if err != nil || req.HashAlgorithm != crypto.SHA256 {
		http.Error(w, fmt.Sprintf("bad query: %v", err), http.StatusBadRequest)
		return
	}
	token, err := b.ts.Timestamp(b.ctx, req.HashedMessage)
	if err != nil {
		b.mu.Lock()
		b.failed = err
		b.mu.Unlock()
		// pdfsign puts this body into its error message.
		http.Error(w, "timestamp authority: "+err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := asn1.Marshal(struct {
		Status struct{ Status int }
		Token  asn1.RawValue
	}{Token: asn1.RawValue{FullBytes: token}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b.mu.Lock()
	b.tokens = append(b.tokens, token)
	b.mu.Unlock()
	w.Header().Set("Content-Type", pki.ContentTypeTimestampReply)
	w.Write(resp)
}

// invalidOptions reports signing options that cannot work (422); errors.Is
// with ErrOptions matches it.
func invalidOptions(format string, args ...any) error {
	return &fault.Error{Kind: fault.Invalid, Message: "invalid signing options: " + fmt.Sprintf(format, args...), Err: ErrOptions}
}
