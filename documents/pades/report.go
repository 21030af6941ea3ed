package pades

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the verdict on one signature.
type Status string

// Verdicts, from best to worst.
const (
	StatusValid     Status = "valid"     // intact, whole revision, trusted, not revoked, nothing changed after
	StatusModified  Status = "modified"  // intact, but a later revision changed the document
	StatusUntrusted Status = "untrusted" // intact, but its certificate or timestamp is not trusted for signing
	StatusRevoked   Status = "revoked"   // the certificate was revoked before the signing time
	StatusInvalid   Status = "invalid"   // the signed bytes, the signature or its timestamp are bad
)

// Kinds of entries in a report.
const (
	KindSignature         = "signature"
	KindDocumentTimestamp = "document timestamp"
)

// Reason codes: why a signature or document timestamp is not valid.
const (
	ReasonUnreadable           = "unreadable"             // the signature dictionary or CMS cannot be read
	ReasonFormat               = "unsupported_format"     // a /SubFilter or algorithm Chamber does not verify
	ReasonCoverage             = "coverage"               // the ByteRange does not cover a whole revision
	ReasonIntegrity            = "integrity"              // the signed bytes or the signature value do not match
	ReasonTimestampInvalid     = "timestamp_invalid"      // the timestamp is broken or stamps other data
	ReasonTimestampUntrusted   = "timestamp_untrusted"    // the timestamp authority does not chain to the trust store
	ReasonDevelopmentTimestamp = "development_timestamp"  // a development TSA stamped it and the trust setup is production
	ReasonChainUntrusted       = "chain_untrusted"        // the certificate does not chain to the trust store
	ReasonCertificateExpired   = "certificate_expired"    // a certificate of the chain was not valid at the signing time
	ReasonChainInvalid         = "chain_invalid"          // the chain is otherwise unusable (constraints, algorithms)
	ReasonKeyUsage             = "key_usage"              // the certificate's key usage does not allow signing documents
	ReasonExtKeyUsage          = "extended_key_usage"     // its extended key usage names no document-signing purpose
	ReasonRevoked              = "revoked"                // revoked before the signing time
	ReasonModified             = "modified_after_signing" // a later revision changed the document
)

// Reason says, with a stable code and in words, why an entry is not valid.
type Reason struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Report is the result of Verify. Its JSON form is what POST /api/v1/verify
// returns; WriteText is what `chamber verify` prints.
type Report struct {
	// Valid is true when the document has at least one signature and
	// every signature and document timestamp is valid.
	Valid bool `json:"valid"`
	// Verdict is "valid", "valid (development timestamp)" (or
	// certificate), "not valid" or "no signatures".
	Verdict string `json:"verdict"`
	// Development is true when a valid entry rests on Chamber's
	// development PKI: good for trying Chamber out, not for court.
	Development bool   `json:"development"`
	Summary     string `json:"summary"`

	SignatureCount              int `json:"signature_count"`
	ValidSignatureCount         int `json:"valid_signature_count"`
	DocumentTimestampCount      int `json:"document_timestamp_count"`
	ValidDocumentTimestampCount int `json:"valid_document_timestamp_count"`

	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256,omitempty"`
	Version    string            `json:"pdf_version"`
	Revisions  int               `json:"revisions"`
	Signatures []SignatureReport `json:"signatures"` // signatures and document timestamps, in document order
}

// SignatureReport describes one signature or document timestamp.
type SignatureReport struct {
	Field     string `json:"field"`
	Kind      string `json:"kind"` // KindSignature or KindDocumentTimestamp
	SubFilter string `json:"sub_filter"`
	Status    Status `json:"status"`
	Valid     bool   `json:"valid"`
	// Reasons say why the entry is not valid, each with a stable code;
	// Problems are the same in words only.
	Reasons  []Reason `json:"reasons,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Development names what rests on Chamber's development PKI:
	// "development certificate", "development timestamp" or both.
	Development string `json:"development,omitempty"`

	Signer     string `json:"signer,omitempty"`      // certificate subject
	SignerName string `json:"signer_name,omitempty"` // its common name
	Serial     string `json:"serial,omitempty"`
	Issuer     string `json:"issuer,omitempty"`
	Name       string `json:"name,omitempty"` // /Name in the signature
	Reason     string `json:"reason,omitempty"`
	Location   string `json:"location,omitempty"`
	Contact    string `json:"contact,omitempty"`
	Hash       string `json:"hash,omitempty"`

	// ClaimedTime is the signer's own clock (signingTime attribute or /M);
	// the trusted time is Timestamp.Time.
	ClaimedTime *time.Time       `json:"claimed_time,omitempty"`
	Timestamp   *TimestampReport `json:"timestamp,omitempty"`

	Intact         bool     `json:"intact"` // the signed bytes are unchanged
	ByteRange      []int64  `json:"byte_range,omitempty"`
	CoversRevision bool     `json:"covers_revision"` // all of its revision but /Contents is signed
	Revision       int      `json:"revision"`        // 0-based index of the signed revision, -1 if none
	LaterRevisions int      `json:"later_revisions"`
	Trusted        bool     `json:"trusted"` // the chain reaches the trust store and the certificate may sign documents
	Chain          []string `json:"chain,omitempty"`
	ChainProblem   string   `json:"chain_problem,omitempty"`
	Revocation     string   `json:"revocation,omitempty"`
	Revoked        bool     `json:"revoked"`
	Certification  string   `json:"certification"` // "approval" or the DocMDP level
	ModifiedAfter  bool     `json:"modified_after_signing"`
	Changes        []string `json:"changes,omitempty"` // what later revisions changed that they may not

	// untrusted holds the reason an intact entry is not trusted, found
	// before the later revisions are examined.
	untrusted []Reason
	// devCert and devTS say what of a trusted entry is development-grade.
	devCert, devTS bool
}

// TimestampReport describes an RFC 3161 timestamp.
type TimestampReport struct {
	Valid     bool      `json:"valid"`
	Time      time.Time `json:"time,omitzero"`
	Authority string    `json:"authority,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	// Development is true for a timestamp of a development authority
	// (its certificate says pki.DevMarker, or it stamps under the
	// example policy pki.DevTSAPolicy): it proves nothing in court.
	Development bool   `json:"development"`
	Problem     string `json:"problem,omitempty"`
}

// fail records why the entry is invalid.
func (s *SignatureReport) fail(code, text string) {
	s.Reasons = append(s.Reasons, Reason{Code: code, Text: text})
}

// distrust records why an intact entry is not trusted.
func (s *SignatureReport) distrust(code, text string) {
	s.untrusted = append(s.untrusted, Reason{Code: code, Text: text})
}

// settle derives the verdict from the findings.
func (s *SignatureReport) settle() {
	switch {
	case len(s.Reasons) > 0 || !s.Intact || !s.CoversRevision:
		s.Status = StatusInvalid
		if len(s.Reasons) == 0 {
			s.fail(ReasonUnreadable, "the signature could not be checked")
		}
	case s.Revoked:
		s.Status = StatusRevoked
		s.fail(ReasonRevoked, "the certificate was revoked: "+s.Revocation)
	case len(s.untrusted) > 0:
		s.Status = StatusUntrusted
		s.Reasons = append(s.Reasons, s.untrusted...)
	case s.ModifiedAfter:
		s.Status = StatusModified
		s.fail(ReasonModified, "the document was modified after signing")
	default:
		s.Status = StatusValid
	}
	s.Valid = s.Status == StatusValid
	s.Problems = nil
	for _, r := range s.Reasons {
		s.Problems = append(s.Problems, r.Text)
	}
	if !s.Valid {
		s.devCert, s.devTS = false, false
	}
	s.Development = developmentWords(s.devCert, s.devTS)
}

func (r *Report) finish() {
	var devCert, devTS bool
	for _, s := range r.Signatures {
		switch s.Kind {
		case KindDocumentTimestamp:
			r.DocumentTimestampCount++
			if s.Valid {
				r.ValidDocumentTimestampCount++
			}
		default:
			r.SignatureCount++
			if s.Valid {
				r.ValidSignatureCount++
			}
		}
		devCert, devTS = devCert || s.devCert, devTS || s.devTS
	}
	r.Valid = r.SignatureCount > 0 && r.ValidSignatureCount == r.SignatureCount &&
		r.ValidDocumentTimestampCount == r.DocumentTimestampCount
	r.Development = r.Valid && (devCert || devTS)
	switch {
	case r.SignatureCount == 0:
		r.Verdict = "no signatures"
	case !r.Valid:
		r.Verdict = "not valid"
	case r.Development:
		r.Verdict = "valid (" + developmentWords(devCert, devTS) + ")"
	default:
		r.Verdict = "valid"
	}
	r.Summary = r.summary()
}

// developmentWords names what is development-grade.
func developmentWords(cert, ts bool) string {
	switch {
	case cert && ts:
		return "development certificate and timestamp"
	case cert:
		return "development certificate"
	case ts:
		return "development timestamp"
	}
	return ""
}

// summary says in one line what the document carries and what holds.
func (r *Report) summary() string {
	counts := plural(r.SignatureCount, "signature", "signatures")
	if r.DocumentTimestampCount > 0 {
		counts += ", " + plural(r.DocumentTimestampCount, "document timestamp", "document timestamps")
	}
	switch {
	case r.SignatureCount == 0 && r.DocumentTimestampCount == 0:
		return "the document has no signatures"
	case r.SignatureCount == 0:
		return "the document has no signatures, only " + plural(r.DocumentTimestampCount, "document timestamp", "document timestamps")
	case r.Valid && r.SignatureCount == 1 && r.DocumentTimestampCount == 0:
		return "1 signature: valid"
	case r.Valid:
		return counts + ": all valid"
	}
	var bad []string
	if n := r.SignatureCount - r.ValidSignatureCount; n > 0 {
		bad = append(bad, fmt.Sprintf("%d of %d %s not valid", n, r.SignatureCount, map[bool]string{true: "signature is", false: "signatures are"}[r.SignatureCount == 1]))
	}
	if n := r.DocumentTimestampCount - r.ValidDocumentTimestampCount; n > 0 {
		bad = append(bad, fmt.Sprintf("%d of %d %s not valid", n, r.DocumentTimestampCount, map[bool]string{true: "document timestamp is", false: "document timestamps are"}[r.DocumentTimestampCount == 1]))
	}
	return counts + ": " + strings.Join(bad, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

// WriteText renders the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Verdict: %s — %s\n", strings.ToUpper(r.Verdict), r.Summary)
	if r.Development {
		b.WriteString("Development: this document rests on Chamber's development PKI, which promises nothing; it is not evidence for court.\n")
	}
	fmt.Fprintf(&b, "Document: %d bytes, PDF %s, %d revision(s)", r.Size, r.Version, r.Revisions)
	if r.SHA256 != "" {
		fmt.Fprintf(&b, ", SHA-256 %s", r.SHA256)
	}
	b.WriteString("\n")
	sig, dts := 0, 0
	for _, s := range r.Signatures {
		n := 0
		if s.Kind == KindDocumentTimestamp {
			dts++
			n = dts
		} else {
			sig++
			n = sig
		}
		writeEntry(&b, s, n, r.Revisions)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeEntry(b *strings.Builder, s SignatureReport, n, revisions int) {
	fmt.Fprintf(b, "\n%s #%d (field %q): %s\n", strings.ToUpper(s.Kind[:1])+s.Kind[1:], n, s.Field, strings.ToUpper(string(s.Status)))
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "  %-22s %s\n", k+":", v)
		}
	}
	if s.Kind == KindDocumentTimestamp {
		line("Authority", s.Signer)
	} else {
		line("Signer", s.SignerName)
		line("Certificate", s.Signer)
	}
	line("Serial", s.Serial)
	line("Issuer", s.Issuer)
	line("Reason", s.Reason)
	line("Location", s.Location)
	line("Contact", s.Contact)
	if s.ClaimedTime != nil {
		line("Claimed signing time", s.ClaimedTime.UTC().Format(time.RFC3339)+" (signer's clock)")
	}
	if t := s.Timestamp; t != nil {
		switch {
		case t.Valid && t.Development:
			line("Timestamp", t.Time.UTC().Format(time.RFC3339)+" by "+t.Authority+" (DEVELOPMENT authority)")
		case t.Valid:
			line("Timestamp", t.Time.UTC().Format(time.RFC3339)+" by "+t.Authority)
		default:
			line("Timestamp", "NOT accepted: "+t.Problem)
		}
	} else if s.Kind == KindSignature {
		line("Timestamp", "none")
	}
	line("Integrity", yesNo(s.Intact, "signed bytes unchanged", "NOT intact"))
	line("Coverage", yesNo(s.CoversRevision, fmt.Sprintf("whole revision %d of %d (all but its signature value)", s.Revision+1, revisions), "does NOT cover a whole revision"))
	if s.Trusted {
		line("Chain", strings.Join(s.Chain, " ← "))
	} else if s.ChainProblem != "" {
		line("Chain", "NOT trusted: "+s.ChainProblem)
	}
	line("Revocation", s.Revocation)
	if s.Kind == KindSignature {
		line("Type", s.Certification)
	}
	line("Development", s.Development)
	switch {
	case s.ModifiedAfter:
		line("Later changes", "MODIFIED AFTER SIGNING")
		for _, c := range s.Changes {
			fmt.Fprintf(b, "  %-22s - %s\n", "", c)
		}
	case s.LaterRevisions > 0:
		line("Later changes", fmt.Sprintf("%d later revision(s), only signatures, validation data and timestamps", s.LaterRevisions))
	default:
		line("Later changes", "none")
	}
	for _, r := range s.Reasons {
		line("Problem", r.Text+" ["+r.Code+"]")
	}
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
