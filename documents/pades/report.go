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
	StatusUntrusted Status = "untrusted" // intact, but the certificate does not chain to the trust store
	StatusRevoked   Status = "revoked"   // the certificate was revoked before the signing time
	StatusInvalid   Status = "invalid"   // the signed bytes, the signature or its timestamp are bad
)

// Report is the result of Verify. Its JSON form is what POST /api/v1/verify
// returns; WriteText is what `chamber verify` prints.
type Report struct {
	// Valid is true when the document has at least one signature and
	// every signature is valid.
	Valid      bool              `json:"valid"`
	Summary    string            `json:"summary"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256,omitempty"`
	Version    string            `json:"pdf_version"`
	Revisions  int               `json:"revisions"`
	Signatures []SignatureReport `json:"signatures"`
}

// SignatureReport describes one signature or document timestamp.
type SignatureReport struct {
	Field     string `json:"field"`
	Kind      string `json:"kind"` // "signature" or "document timestamp"
	SubFilter string `json:"sub_filter"`
	Status    Status `json:"status"`
	Valid     bool   `json:"valid"`
	// Problems say why the signature is not valid, in words.
	Problems []string `json:"problems,omitempty"`

	Signer     string `json:"signer,omitempty"` // certificate subject
	SignerName string `json:"signer_name,omitempty"`
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
	Trusted        bool     `json:"trusted"` // the chain reaches the trust store
	Chain          []string `json:"chain,omitempty"`
	ChainProblem   string   `json:"chain_problem,omitempty"`
	Revocation     string   `json:"revocation,omitempty"`
	Revoked        bool     `json:"revoked"`
	Certification  string   `json:"certification"` // "approval" or the DocMDP level
	ModifiedAfter  bool     `json:"modified_after_signing"`
	Changes        []string `json:"changes,omitempty"` // what later revisions changed that they may not

	untrustedTimestamp bool
}

// TimestampReport describes an RFC 3161 timestamp.
type TimestampReport struct {
	Valid     bool      `json:"valid"`
	Time      time.Time `json:"time,omitzero"`
	Authority string    `json:"authority,omitempty"`
	Problem   string    `json:"problem,omitempty"`
}

func (s *SignatureReport) problem(p string) { s.Problems = append(s.Problems, p) }

// settle derives the verdict from the findings.
func (s *SignatureReport) settle() {
	switch {
	case len(s.Problems) > 0 || !s.Intact || !s.CoversRevision:
		s.Status = StatusInvalid
		if len(s.Problems) == 0 {
			s.problem("the signature could not be checked")
		}
	case s.Revoked:
		s.Status = StatusRevoked
		s.problem("the certificate was revoked: " + s.Revocation)
	case !s.Trusted:
		s.Status = StatusUntrusted
		s.problem("the certificate does not chain to a trusted root: " + s.ChainProblem)
	case s.untrustedTimestamp:
		s.Status = StatusUntrusted
		s.problem("the timestamp authority is not trusted: " + s.Timestamp.Problem)
	case s.ModifiedAfter:
		s.Status = StatusModified
		s.problem("the document was modified after signing")
	default:
		s.Status = StatusValid
	}
	s.Valid = s.Status == StatusValid
}

func (r *Report) finish() {
	valid := 0
	for _, s := range r.Signatures {
		if s.Valid {
			valid++
		}
	}
	r.Valid = len(r.Signatures) > 0 && valid == len(r.Signatures)
	switch {
	case len(r.Signatures) == 0:
		r.Summary = "the document has no signatures"
	case r.Valid:
		r.Summary = fmt.Sprintf("all %d signatures are valid", len(r.Signatures))
		if len(r.Signatures) == 1 {
			r.Summary = "the signature is valid"
		}
	default:
		r.Summary = fmt.Sprintf("%d of %d signatures are not valid", len(r.Signatures)-valid, len(r.Signatures))
	}
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

// WriteText renders the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "NOT VALID"
	if r.Valid {
		verdict = "VALID"
	}
	fmt.Fprintf(&b, "Verdict: %s — %s\n", verdict, r.Summary)
	fmt.Fprintf(&b, "Document: %d bytes, PDF %s, %d revision(s)", r.Size, r.Version, r.Revisions)
	if r.SHA256 != "" {
		fmt.Fprintf(&b, ", SHA-256 %s", r.SHA256)
	}
	b.WriteString("\n")
	for i, s := range r.Signatures {
		fmt.Fprintf(&b, "\n%s #%d (field %q): %s\n", strings.ToUpper(s.Kind[:1])+s.Kind[1:], i+1, s.Field, strings.ToUpper(string(s.Status)))
		line := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "  %-22s %s\n", k+":", v)
			}
		}
		line("Signer", s.Signer)
		line("Serial", s.Serial)
		line("Issuer", s.Issuer)
		line("Reason", s.Reason)
		line("Location", s.Location)
		line("Contact", s.Contact)
		if s.ClaimedTime != nil {
			line("Claimed signing time", s.ClaimedTime.UTC().Format(time.RFC3339)+" (signer's clock)")
		}
		if t := s.Timestamp; t != nil {
			if t.Valid {
				line("Timestamp", t.Time.UTC().Format(time.RFC3339)+" by "+t.Authority)
			} else {
				line("Timestamp", "INVALID: "+t.Problem)
			}
		} else if s.Kind == "signature" {
			line("Timestamp", "none")
		}
		line("Integrity", yesNo(s.Intact, "signed bytes unchanged", "NOT intact"))
		line("Coverage", yesNo(s.CoversRevision, fmt.Sprintf("whole revision %d of %d (all but its signature value)", s.Revision+1, r.Revisions), "does NOT cover a whole revision"))
		if s.Trusted {
			line("Chain", strings.Join(s.Chain, " ← "))
		} else {
			line("Chain", "NOT trusted: "+s.ChainProblem)
		}
		line("Revocation", s.Revocation)
		line("Type", s.Certification)
		switch {
		case s.ModifiedAfter:
			line("Later changes", "MODIFIED AFTER SIGNING")
			for _, c := range s.Changes {
				fmt.Fprintf(&b, "  %-22s - %s\n", "", c)
			}
		case s.LaterRevisions > 0:
			line("Later changes", fmt.Sprintf("%d later revision(s), only signatures, validation data and timestamps", s.LaterRevisions))
		default:
			line("Later changes", "none")
		}
		for _, p := range s.Problems {
			line("Problem", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
