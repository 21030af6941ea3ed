package documents

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// PrincipalIssuer issues a per-act signing key for a principal who has no
// certificate of their own. A qualified signature from a national ID card
// would be another pki.Signer handed to Sign instead.
type PrincipalIssuer interface {
	IssuePrincipal(ctx context.Context, name string, sessionID uuid.UUID, ttl time.Duration) (pki.Identity, error)
}

// Signers gives a presiding official the signing identity that is theirs
// alone (signers.Service). pin is what the official typed to confirm the
// signature with their token; it is checked by the token and never
// logged or journalled. The identity's ID goes into the journal.
type Signers interface {
	For(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, Identity, error)
}

// Identity is what documents learn of an official's signing identity.
type Identity struct {
	ID uuid.UUID
	// PINTyped is true when the key opens only with a PIN the person typed
	// for this signature (a token whose PIN Chamber does not store): the
	// PIN confirms the signature. Otherwise Chamber holds what signs — a
	// key sealed under its KEK, or a token with a stored PIN — and the
	// confirmation policy decides what confirms it.
	PINTyped bool
}

// SignersFunc adapts a function to Signers.
type SignersFunc func(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, Identity, error)

// For calls f.
func (f SignersFunc) For(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, Identity, error) {
	return f(ctx, staffID, pin)
}

// ConfirmationPolicy says what confirms a presiding official's signature
// with an identity Chamber holds (--signing-confirmation).
type ConfirmationPolicy string

// Confirmation policies.
const (
	// ConfirmNone: the authenticated request alone (development, where
	// staff have no provider to authenticate with again). The zero value.
	ConfirmNone ConfirmationPolicy = "none"
	// ConfirmSignIn: a console sign-in whose authentication at the
	// provider is at most Signing.ReauthMaxAge old; never an API token.
	ConfirmSignIn ConfirmationPolicy = "sign-in"
)

// How a signature was confirmed (SignatureRecord.Confirmation).
const (
	ConfirmedBySignIn = "sign-in" // a recent authentication at the provider
	ConfirmedByPIN    = "pin"     // the token's PIN, typed by the signer
	ConfirmedByNone   = "none"    // the request alone (policy none)
)

// Wire codes of a signature refused for want of confirmation.
const (
	// CodeReauthRequired: the console sign-in is older than the policy's
	// maximum age; the signer authenticates at the provider again
	// (POST /api/v1/auth/reauthenticate) and signs again.
	CodeReauthRequired = "reauthentication_required"
	// CodeConfirmationRequired: the request came with an API token, which
	// confirms no one: an official signs from the console.
	CodeConfirmationRequired = "confirmation_required"
)

// Credential is how the signature request was authenticated, as the HTTP
// floor saw it: the facts the confirmation policy weighs. The zero value
// (neither a console sign-in nor an API token) confirms nothing.
type Credential struct {
	// Console is true when a console sign-in (browser session)
	// authenticated the request; AuthTime is when its person last
	// authenticated at the provider (zero: never, e.g. the development
	// sign-in).
	Console  bool
	AuthTime time.Time
	// APIToken is true when a staff member's API token did.
	APIToken bool
}

// CodeNoSigningIdentity is the wire code of a presiding official who has
// no signing identity of their own (signers.CodeNoIdentity).
const CodeNoSigningIdentity = "no_signing_identity"

// Signing is what signatures need. The institution's seal is not here on
// purpose: a document signed by a judge or notary carries their own
// signature, never the seal in its place (bundles are sealed elsewhere).
type Signing struct {
	// Signers holds the presiding officials' personal identities.
	Signers Signers
	// Principals issues per-act keys for principals.
	Principals PrincipalIssuer
	// Check verifies a certificate (validity, revocation) before each
	// signature and returns its serial number for the journal.
	Check func(ctx context.Context, cert *x509.Certificate, chain []*x509.Certificate) (pki.CertificateStatus, error)
	// TSA stamps every signature and the document timestamp.
	TSA pades.Timestamper
	// HTTPClient fetches CRLs and OCSP responses for the /DSS.
	HTTPClient *http.Client
	// Certificates are added to every /DSS (e.g. Chamber's own root).
	Certificates []*x509.Certificate
	// Confirmation is the policy for officials' identities Chamber holds
	// ("" is ConfirmNone); ReauthMaxAge how recent a sign-in must be
	// under ConfirmSignIn (0: DefaultReauthMaxAge).
	Confirmation ConfirmationPolicy
	ReauthMaxAge time.Duration
}

// DefaultReauthMaxAge is how recent a sign-in must be to confirm a
// signature when Signing.ReauthMaxAge is not set.
const DefaultReauthMaxAge = 5 * time.Minute

// SignRequest is what the signer supplies.
type SignRequest struct {
	Reason   string            `json:"reason"`
	Location string            `json:"location"`
	Contact  string            `json:"contact,omitempty"`
	Visible  *pades.Appearance `json:"visible,omitempty"`
	// PIN confirms a presiding official's signature with their token when
	// its PIN is not stored server-side. Never logged, never journalled.
	PIN string `json:"pin,omitempty"`
	// Credential is set by the HTTP floor, never read from the body.
	Credential Credential `json:"-"`
}

// SignatureRecord is what a signature adds to the journal and the version.
type SignatureRecord struct {
	Version    int    `json:"version"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	Signer     string `json:"signer"`
	SignerRole string `json:"signer_role"`
	// SigningIdentity is the official's signing identity (empty for a
	// principal's per-act key).
	SigningIdentity string `json:"signing_identity,omitempty"`
	// Confirmation is how an official's signature was confirmed
	// (ConfirmedBySignIn, ConfirmedByPIN, ConfirmedByNone; empty for a
	// principal); ConfirmationAuthTime the authentication at the provider
	// that confirmed it.
	Confirmation         string    `json:"confirmation,omitempty"`
	ConfirmationAuthTime time.Time `json:"confirmation_auth_time,omitzero"`
	CertificateSHA256    string    `json:"certificate_sha256"`
	CertificateSerial    string    `json:"certificate_serial"`
	CertificateSubject   string    `json:"certificate_subject"`
	Revocation           string    `json:"revocation"`
	SigningTime          time.Time `json:"signing_time"`
	TimestampTime        time.Time `json:"timestamp_time"`
	TimestampAuthority   string    `json:"timestamp_authority"`
	DocumentTimestamp    time.Time `json:"document_timestamp"`
	DSSCertificates      int       `json:"dss_certificates"`
	DSSCRLs              int       `json:"dss_crls"`
	DSSOCSPs             int       `json:"dss_ocsps"`
}

// certificateRefused reports a signing certificate refused by the check.
func certificateRefused(err error) error {
	return &fault.Error{Kind: fault.Conflict, Code: "certificate_refused", Message: "signing certificate refused: " + err.Error(), Err: err}
}

// principalCertTTL bounds a principal's per-act certificate: long enough
// to sign during the act, short enough to be useless afterwards.
const principalCertTTL = 30 * 24 * time.Hour

// SignHook takes part in the transaction that records a signature, so
// that what the signature changes elsewhere — the notarial act's state and
// its signatories — commits with it or not at all. An error from either
// method refuses the signature: nothing of it is recorded.
type SignHook interface {
	// Lock runs first, before anything is written: it takes the locks
	// the hook needs and checks that the signature may be recorded.
	// Taking them before the journal's head keeps one lock order for
	// every transaction that touches the same rows.
	Lock(ctx context.Context, tx *sql.Tx, documentID uuid.UUID) error
	// Record runs last, after the signed version and its journal entry.
	Record(ctx context.Context, tx *sql.Tx, sig Signature) error
	// Committed runs after the transaction commits, for what must not
	// happen before it (telling the room what changed).
	Committed(ctx context.Context)
}

// Signature is what a hook learns of a signature being recorded.
type Signature struct {
	DocumentID uuid.UUID
	Record     SignatureRecord
}

// Sign adds a PAdES signature to the newest version of a PDF as a new
// version: the signature with its timestamp (B-T), then as a second
// incremental update the /DSS with the chains' revocation data and a
// document timestamp (B-LT, B-LTA). A presiding official signs with their
// own signing identity (Signing.Signers; none is a conflict, never the
// seal); a principal with a key issued for this act.
//
// The signed file is stored without retention under a key of its own
// attempt; one transaction then records the version, its catalog entry,
// its journal entry and whatever hook records (nil: nothing). Only then is
// retention applied. A signature whose transaction fails leaves nothing
// in the record, and the next attempt never meets its key.
func (s *Service) Sign(ctx context.Context, c Caller, sess Session, docID uuid.UUID, req SignRequest, hook SignHook) (Document, SignatureRecord, error) {
	if s.signing == nil {
		return Document{}, SignatureRecord{}, errors.New("documents: signing is not configured")
	}
	if err := access.Check(c.Role, access.Sign); err != nil {
		return Document{}, SignatureRecord{}, err
	}
	if len(req.Reason) > 500 || len(req.Location) > 200 || len(req.Contact) > 200 || len(req.PIN) > 128 {
		return Document{}, SignatureRecord{}, fault.Invalidf("reason", "reason, location, contact and PIN are at most 500, 200, 200 and 128 characters")
	}
	d, err := s.Get(ctx, docID)
	if err != nil {
		return Document{}, SignatureRecord{}, err
	}
	if d.SessionID != sess.ID {
		return Document{}, SignatureRecord{}, fmt.Errorf("document %s: %w", docID, fault.NotFound)
	}
	if d.ContentType != TypePDF {
		return Document{}, SignatureRecord{}, fault.New(fault.Conflict, "only PDF documents can be signed")
	}

	signer, identity, confirmed, err := s.signerFor(ctx, c, sess, req)
	if err != nil {
		return Document{}, SignatureRecord{}, err
	}
	status, err := s.signing.Check(ctx, signer.Certificate(), signer.Chain())
	if err != nil {
		return Document{}, SignatureRecord{}, certificateRefused(err)
	}

	src, cur, err := s.Open(ctx, d, 0)
	if err != nil {
		return Document{}, SignatureRecord{}, err
	}
	defer src.Close()

	next := cur.Version + 1
	for _, v := range d.Versions {
		next = max(next, v.Version+1)
	}
	key := signedKey(sess.ID, d.ID, next)
	obj, res, err := s.signInto(ctx, c, sess, src, cur, signer, req, key)
	if err != nil {
		return Document{}, SignatureRecord{}, err
	}
	keep := false
	defer func() {
		if !keep {
			s.discard(ctx, key)
		}
	}()

	certSum := sha256.Sum256(signer.Certificate().Raw)
	rec := SignatureRecord{
		Version: next, SHA256: obj.SHA256, Size: obj.Size, Signer: c.Name, SignerRole: string(c.Role),
		SigningIdentity: identity, Confirmation: confirmed.by, ConfirmationAuthTime: confirmed.authTime,
		CertificateSHA256: hex.EncodeToString(certSum[:]),
		CertificateSerial: status.Serial, CertificateSubject: status.Subject, Revocation: status.Revocation,
		SigningTime: res.sign.SigningTime, TimestampTime: res.sign.TimestampTime, TimestampAuthority: res.sign.TimestampAuthority,
	}
	if l := res.ltv; l != nil {
		rec.DocumentTimestamp, rec.DSSCertificates, rec.DSSCRLs, rec.DSSOCSPs = l.TimestampTime, l.Certificates, l.CRLs, l.OCSPs
	}
	err = s.recordSignature(ctx, c, sess, d, cur, rec, catalog.Of(catalog.Signed, obj), hook)
	if errors.Is(err, database.ErrCommitUncertain) {
		keep = true // committed, perhaps: the reconciler decides
		s.log.Error("signed version stored; whether it was recorded is unknown", "key", key, "sha256", obj.SHA256, "err", err)
	}
	if err != nil {
		return Document{}, SignatureRecord{}, err
	}
	keep = true
	s.catalog.Retain(ctx, key)
	s.changed(sess.ID, docID)
	if hook != nil {
		hook.Committed(ctx)
	}
	d, err = s.Get(ctx, docID)
	return d, rec, err
}

// signResult is what pades reports of a signature.
type signResult struct {
	sign *pades.SignResult
	ltv  *pades.LTVResult
}

// signInto signs src and streams the signed file into the store under key.
// pades writes the B-T intermediate to a temporary file and only the final
// B-LTA file to the pipe; a failure aborts the Put, so nothing half-signed
// is ever stored.
func (s *Service) signInto(ctx context.Context, c Caller, sess Session, src evidence.Reader, cur Version, signer pki.Signer, req SignRequest, key string) (evidence.Object, signResult, error) {
	act := "Session " + sess.ID.String()
	if sess.ActNumber != "" {
		act = "Act " + sess.ActNumber
	}
	type result struct {
		signResult
		err error
	}
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		sres, lres, err := pades.SignLTA(ctx, src, cur.Size, pw, pades.SignOptions{
			Signer: signer, Kind: pades.Approval, Permissions: pades.FormFillingAndSigning, Timestamper: s.signing.TSA,
			Name: c.Name, Reason: req.Reason, Location: req.Location, Contact: req.Contact,
			Role: roleTitle(c.Role), Act: act, Appearance: req.Visible,
		}, pades.LTVOptions{Timestamper: s.signing.TSA, HTTPClient: s.signing.HTTPClient, Certificates: s.signing.Certificates, Logger: s.log}, s.tempDir)
		pw.CloseWithError(err) // nil closes cleanly; an error aborts the Put
		done <- result{signResult{sres, lres}, err}
	}()
	obj, err := s.store.Put(ctx, key, pr, evidence.PutOptions{ContentType: TypePDF})
	pr.CloseWithError(errors.New("documents: the store stopped reading"))
	res := <-done
	if res.err != nil {
		// The signing error (a malformed PDF, a bad appearance, the TSA)
		// is the reason; the aborted Put only followed from it.
		if err == nil {
			s.discard(ctx, key)
		}
		return evidence.Object{}, signResult{}, res.err
	}
	if err != nil {
		return evidence.Object{}, signResult{}, fmt.Errorf("documents: store signed version: %w", err)
	}
	return obj, res.signResult, nil
}

// recordSignature writes the signed version, its catalog entry, its
// journal entry and the hook's changes in one transaction.
func (s *Service) recordSignature(ctx context.Context, c Caller, sess Session, d Document, from Version, rec SignatureRecord, obj catalog.Object, hook SignHook) error {
	details, _ := json.Marshal(rec)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if hook != nil {
			if err := hook.Lock(ctx, tx, d.ID); err != nil {
				return err
			}
		}
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM document_versions WHERE document_id = $1 AND version = $2`,
			d.ID.String(), rec.Version).Scan(&taken); err != nil {
			return fmt.Errorf("documents: record signed version: %w", err)
		}
		if taken > 0 {
			return fault.New(fault.Conflict, "the document was signed by someone else at the same moment; reload and sign again")
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO document_versions (document_id, version, object_key, size, sha256, kind, created_by, created_at, signer, signer_role, details)
			 VALUES ($1, $2, $3, $4, $5, 'signed', $6, $7, $8, $9, $10)`,
			d.ID.String(), rec.Version, obj.Key, obj.Size, obj.SHA256, c.Actor, database.Micros(s.now()), c.Name, string(c.Role), string(details)); err != nil {
			return fmt.Errorf("documents: record signed version: %w", err)
		}
		if err := catalog.Add(ctx, tx, sess.ID, s.retainUntil(), obj); err != nil {
			return err
		}
		details := map[string]any{"document_id": d.ID, "name": d.Name, "signed_version": rec, "signed_from_sha256": from.SHA256,
			"object_key": obj.Key, "objects": []catalog.Object{obj}}
		if rec.Confirmation != "" {
			details["confirmation"] = rec.Confirmation
		}
		if !rec.ConfirmationAuthTime.IsZero() {
			details["auth_time"] = rec.ConfirmationAuthTime
		}
		if _, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "document.signed", Details: details}); err != nil {
			return err
		}
		if hook == nil {
			return nil
		}
		return hook.Record(ctx, tx, Signature{DocumentID: d.ID, Record: rec})
	})
}

// confirmation is how a signature was confirmed, for its record.
type confirmation struct {
	by       string
	authTime time.Time
}

// signerFor is the key the caller signs with: a presiding official's own
// identity, once the confirmation policy accepts how the request confirms
// it, or a principal's key issued for this act. identity is the official's
// identity ID ("" for a principal).
func (s *Service) signerFor(ctx context.Context, c Caller, sess Session, req SignRequest) (signer pki.Signer, identity string, confirmed confirmation, err error) {
	if c.Role.Presides() {
		staffID, ok := staffOf(c)
		if !ok || s.signing.Signers == nil {
			return nil, "", confirmation{}, &fault.Error{Kind: fault.Conflict, Code: CodeNoSigningIdentity,
				Message: "only a staff member with a signing identity of their own can sign as " + string(c.Role)}
		}
		signer, id, err := s.signing.Signers.For(ctx, staffID, req.PIN)
		if err != nil {
			return nil, "", confirmation{}, err
		}
		// The key is unsealed (or the token's stored PIN opened) but
		// nothing is signed yet: a refusal here leaves no trace but the
		// refusal.
		if confirmed, err = s.confirm(id, req.Credential); err != nil {
			s.log.Warn("a signature was refused for want of confirmation", "staff", staffID, "identity", id.ID, "err", err)
			return nil, "", confirmation{}, err
		}
		return signer, id.ID.String(), confirmed, nil
	}
	if s.signing.Principals == nil {
		return nil, "", confirmation{}, errors.New("documents: no issuer for principals' keys")
	}
	id, err := s.signing.Principals.IssuePrincipal(ctx, c.Name, sess.ID, principalCertTTL)
	if err != nil {
		return nil, "", confirmation{}, fault.Invalidf("name", "cannot issue a signing certificate for %q: %v", c.Name, err)
	}
	return id.AsSigner(), "", confirmation{}, nil
}

// confirm applies the confirmation policy to an official's signature with
// identity id, requested over cred. A PIN the person typed confirms by
// itself; an identity Chamber holds needs, under ConfirmSignIn, a console
// sign-in whose authentication at the provider is recent enough.
func (s *Service) confirm(id Identity, cred Credential) (confirmation, error) {
	if id.PINTyped {
		return confirmation{by: ConfirmedByPIN}, nil
	}
	if s.signing.Confirmation != ConfirmSignIn {
		return confirmation{by: ConfirmedByNone}, nil
	}
	if !cred.Console {
		return confirmation{}, &fault.Error{Kind: fault.Forbidden, Code: CodeConfirmationRequired,
			Message: "forbidden: a signature with an identity Chamber holds is confirmed by a recent sign-in to the console; an API token confirms no one"}
	}
	maxAge := s.signing.ReauthMaxAge
	if maxAge <= 0 {
		maxAge = DefaultReauthMaxAge
	}
	if cred.AuthTime.IsZero() || s.now().Sub(cred.AuthTime) > maxAge {
		return confirmation{}, &fault.Error{Kind: fault.Forbidden, Code: CodeReauthRequired,
			Message: fmt.Sprintf("forbidden: confirm it is you — sign in again with the identity provider (your last sign-in there is older than %s), then sign", maxAge)}
	}
	return confirmation{by: ConfirmedBySignIn, authTime: cred.AuthTime.UTC()}, nil
}

// staffOf is the staff member a caller is, from their journal actor
// (sessions.Principal.Actor): an official taking part through a
// participant credential is not a staff member here, and signs with no
// one's identity.
func staffOf(c Caller) (uuid.UUID, bool) {
	rest, ok := strings.CutPrefix(c.Actor, "staff:")
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(rest)
	return id, err == nil
}

func roleTitle(r access.Role) string {
	switch r {
	case access.Notary:
		return "Notary"
	case access.Judge:
		return "Judge"
	case access.Principal:
		return "Principal"
	}
	return string(r)
}
