// Package signers keeps the personal signing identities of officials: each
// judge and notary signs with a key of their own — on a PKCS#11 token (an
// HSM, a smart card, a cloud HSM) or issued by Chamber's certificate
// authority and kept sealed under a key-encryption key — never with the
// institution's seal.
//
// A staff member has at most one current identity. Enrolling again
// supersedes it (the old one stays, for the history of what it signed);
// revoking it revokes its certificate at the CA when the CA issued it.
package signers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// Kind is where an identity's private key lives.
type Kind string

// The kinds of identity.
const (
	PKCS11 Kind = "pkcs11" // on a token, reached through a PKCS#11 module
	Issued Kind = "issued" // issued by Chamber's CA, sealed in the database
)

// Authority is the certificate authority that issues and revokes personal
// certificates (pki.Authority).
type Authority interface {
	IssueStaff(ctx context.Context, name string, staffID uuid.UUID, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, []*x509.Certificate, error)
	Issued(cert *x509.Certificate) bool
	Revoke(ctx context.Context, serial *big.Int, reason int) error
}

// Config is what the service needs.
type Config struct {
	DB      *database.DB
	Journal *journal.Journal
	Logger  *slog.Logger
	// KEK seals issued keys and stored PINs.
	KEK *KEK
	// CA issues personal certificates (for Issued identities and tokens
	// without a certificate of their own) and revokes them.
	CA Authority
	// Modules are the PKCS#11 modules the server may load; an identity
	// naming another is refused. The database never chooses which shared
	// library runs in the server.
	Modules []string
	// AutoIssue gives an official who never had an identity a CA-issued
	// one at their first signature: the zero-config development default.
	AutoIssue bool
	// CertTTL is the lifetime of issued certificates (default a year).
	CertTTL time.Duration
}

// Service is the register of signing identities.
type Service struct {
	cfg    Config
	log    *slog.Logger
	tokens *tokens
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CertTTL == 0 {
		cfg.CertTTL = 366 * 24 * time.Hour
	}
	return &Service{cfg: cfg, log: cfg.Logger, tokens: newTokens()}
}

// Token names a key on a PKCS#11 token.
type Token struct {
	Module     string `json:"module"`
	TokenLabel string `json:"token_label,omitempty"`
	Slot       *int   `json:"slot,omitempty"`
	KeyLabel   string `json:"key_label,omitempty"`
	KeyID      string `json:"key_id,omitempty"` // hex CKA_ID
}

func (t Token) validate() error {
	switch {
	case t.Module == "":
		return fault.Invalidf("module", "the PKCS#11 module path is required")
	case (t.TokenLabel == "") == (t.Slot == nil):
		return fault.Invalidf("token", "give the token label or the slot, one of them")
	case t.KeyLabel == "" && t.KeyID == "":
		return fault.Invalidf("key", "give the key label or the key ID")
	}
	if _, err := hex.DecodeString(t.KeyID); err != nil {
		return fault.Invalidf("key_id", "not hex")
	}
	return nil
}

// Identity is one signing identity, as listed.
type Identity struct {
	ID           uuid.UUID  `json:"id"`
	StaffID      uuid.UUID  `json:"staff_id"`
	Kind         Kind       `json:"kind"`
	CertSHA256   string     `json:"certificate_sha256"`
	Serial       string     `json:"serial"`
	Subject      string     `json:"subject"`
	NotAfter     time.Time  `json:"not_after"`
	Token        *Token     `json:"token,omitempty"`
	PINStored    bool       `json:"pin_stored"`
	CreatedBy    string     `json:"created_by"`
	CreatedAt    time.Time  `json:"created_at"`
	SupersededAt *time.Time `json:"superseded_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`

	chain     []*x509.Certificate // the certificate first
	pinSealed string
	keySealed string
}

// PINTyped reports whether the identity's key opens only with a PIN its
// holder types for each signature (a token whose PIN is not stored): that
// PIN is the signature's confirmation. Every other identity is held by
// Chamber, and a recent sign-in confirms its signatures.
func (id Identity) PINTyped() bool { return id.Kind == PKCS11 && !id.PINStored }

// Current reports whether the identity is the one its holder signs with.
func (id Identity) Current() bool { return id.SupersededAt == nil && id.RevokedAt == nil }

// Enrolment is what `chamber signer enroll` supplies.
type Enrolment struct {
	StaffID uuid.UUID
	// Issue: the CA issues a key and certificate, sealed in the database.
	Issue bool
	// Token: a key on a PKCS#11 token, with its PIN (needed to find the
	// key; stored sealed only with StorePIN).
	Token    *Token
	PIN      string
	StorePIN bool
	// Certificate is the key's certificate chain (the certificate first)
	// when it is not on the token; with Certify the CA certifies the
	// token's key instead.
	Certificate []*x509.Certificate
	Certify     bool
}

// Staff is what the service reads of a staff member.
type Staff struct {
	ID      uuid.UUID
	Name    string
	Revoked bool
}

func (s *Service) staff(ctx context.Context, id uuid.UUID) (Staff, error) {
	var (
		name    string
		revoked sql.NullInt64
	)
	err := s.cfg.DB.QueryRowContext(ctx, `SELECT name, revoked_at FROM staff WHERE id = $1`, id.String()).Scan(&name, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Staff{}, fmt.Errorf("staff %s: %w", id, fault.NotFound)
	}
	if err != nil {
		return Staff{}, fmt.Errorf("signers: staff: %w", database.Classify(err))
	}
	return Staff{ID: id, Name: name, Revoked: revoked.Valid}, nil
}

// Enroll gives a staff member a new signing identity, superseding their
// current one.
func (s *Service) Enroll(ctx context.Context, actor string, e Enrolment) (Identity, error) {
	return s.enroll(ctx, actor, e, false)
}

// errHadOne refuses a first-need identity to someone who has had one.
var errHadOne = errors.New("signers: the staff member already has or had an identity")

// enroll is Enroll; first enrols only a staff member who never had an
// identity.
func (s *Service) enroll(ctx context.Context, actor string, e Enrolment, first bool) (Identity, error) {
	st, err := s.staff(ctx, e.StaffID)
	if err != nil {
		return Identity{}, err
	}
	if st.Revoked {
		return Identity{}, fault.New(fault.Conflict, "the staff member is revoked")
	}
	id := Identity{ID: uuid.New(), StaffID: st.ID, CreatedBy: actor, CreatedAt: database.Now()}
	switch {
	case e.Issue == (e.Token != nil):
		return Identity{}, fault.Invalidf("kind", "enrol either an issued key or a token key")
	case e.Issue:
		err = s.issue(ctx, st, &id)
	default:
		err = s.enrolToken(ctx, st, e, &id)
	}
	if err != nil {
		return Identity{}, err
	}
	return id, s.insert(ctx, actor, id, first)
}

func (s *Service) issue(ctx context.Context, st Staff, id *Identity) error {
	if s.cfg.KEK == nil || s.cfg.CA == nil {
		return errors.New("signers: issuing needs the CA and a key-encryption key")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cert, chain, err := s.cfg.CA.IssueStaff(ctx, st.Name, st.ID, key.Public(), s.cfg.CertTTL)
	if err != nil {
		return fault.Wrap(fault.Invalid, err, "cannot issue a certificate for %q", st.Name)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	id.Kind = Issued
	id.setChain(append([]*x509.Certificate{cert}, chain...))
	id.keySealed = s.cfg.KEK.Seal(der, aad(id.ID, "key"))
	return nil
}

func (s *Service) enrolToken(ctx context.Context, st Staff, e Enrolment, id *Identity) error {
	t := *e.Token
	if err := t.validate(); err != nil {
		return err
	}
	if err := s.allowed(t.Module); err != nil {
		return err
	}
	if e.StorePIN && s.cfg.KEK == nil {
		return errors.New("signers: storing a PIN needs a key-encryption key")
	}
	var chain []*x509.Certificate
	err := s.tokens.with(ctx, t, e.PIN, func(k tokenKey) error {
		switch {
		case len(e.Certificate) > 0:
			chain = e.Certificate
		case e.Certify:
			if s.cfg.CA == nil {
				return errors.New("signers: certifying a token key needs the CA")
			}
			cert, issuers, err := s.cfg.CA.IssueStaff(ctx, st.Name, st.ID, k.Public(), s.cfg.CertTTL)
			if err != nil {
				return fault.Wrap(fault.Invalid, err, "cannot issue a certificate for %q", st.Name)
			}
			chain = append([]*x509.Certificate{cert}, issuers...)
		default:
			cert, err := k.Certificate()
			if err != nil {
				return err
			}
			chain = []*x509.Certificate{cert}
		}
		if !publicKeysEqual(chain[0].PublicKey, k.Public()) {
			return fault.New(fault.Invalid, "the certificate is not the token key's")
		}
		return nil
	})
	if err != nil {
		return err
	}
	id.Kind, id.Token = PKCS11, &t
	id.setChain(chain)
	if e.StorePIN {
		id.pinSealed = s.cfg.KEK.Seal([]byte(e.PIN), aad(id.ID, "pin"))
		id.PINStored = true
	}
	return nil
}

func (s *Service) allowed(module string) error {
	if !slices.Contains(s.cfg.Modules, module) {
		return fault.New(fault.Conflict, "the PKCS#11 module %s is not one this server may load (--pkcs11-module)", module)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// aad binds a sealed value to its identity and its column.
func aad(id uuid.UUID, what string) []byte {
	return []byte("chamber signing identity " + id.String() + " " + what)
}

func (id *Identity) setChain(chain []*x509.Certificate) {
	id.chain = chain
	sum := sha256.Sum256(chain[0].Raw)
	id.CertSHA256 = hex.EncodeToString(sum[:])
	id.Serial = pki.SerialHex(chain[0])
	id.Subject = chain[0].Subject.String()
	id.NotAfter = chain[0].NotAfter.UTC()
}

// Certificate is the identity's certificate.
func (id Identity) Certificate() *x509.Certificate { return id.chain[0] }

func (s *Service) insert(ctx context.Context, actor string, id Identity, first bool) error {
	var tok Token
	var slot sql.NullInt64
	if id.Token != nil {
		tok = *id.Token
		if tok.Slot != nil {
			slot = sql.NullInt64{Int64: int64(*tok.Slot), Valid: true}
		}
	}
	return s.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		superseded, err := s.supersede(ctx, tx, id, first)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signing_identities (id, staff_id, kind, certificate, cert_sha256, serial, subject, not_after,
			module, token_label, slot, key_label, key_id, pin_sealed, key_sealed, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			id.ID.String(), id.StaffID.String(), string(id.Kind), string(pki.CertificatePEM(id.chain...)), id.CertSHA256, id.Serial, id.Subject,
			database.Micros(id.NotAfter), tok.Module, tok.TokenLabel, slot, tok.KeyLabel, tok.KeyID, id.pinSealed, id.keySealed,
			actor, database.Micros(id.CreatedAt)); err != nil {
			return fmt.Errorf("signers: enrol: %w", err)
		}
		_, err = s.cfg.Journal.AppendTx(ctx, tx, journal.Record{Actor: actor, Action: "signer.enrolled", Details: map[string]any{
			"identity_id": id.ID, "staff_id": id.StaffID, "kind": id.Kind, "certificate_sha256": id.CertSHA256,
			"serial": id.Serial, "subject": id.Subject, "not_after": id.NotAfter, "token": id.Token, "pin_stored": id.PINStored,
			"superseded": superseded,
		}})
		return err
	})
}

// supersede ends the staff member's current identity, for id to take its
// place, and says how many it ended. A first-need identity supersedes
// nothing: the staff member must never have had one, and two first needs
// at once both inserting meet the unique index on the current identity,
// which refuses one — whereas superseding would let the later one quietly
// replace an identity the earlier one already signed with.
func (s *Service) supersede(ctx context.Context, tx *sql.Tx, id Identity, first bool) (int64, error) {
	if first {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signing_identities WHERE staff_id = $1`, id.StaffID.String()).Scan(&n); err != nil {
			return 0, fmt.Errorf("signers: enrol: %w", err)
		}
		if n > 0 {
			return 0, errHadOne
		}
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE signing_identities SET superseded_at = $1
		WHERE staff_id = $2 AND superseded_at IS NULL AND revoked_at IS NULL`, database.Micros(id.CreatedAt), id.StaffID.String())
	if err != nil {
		return 0, fmt.Errorf("signers: supersede: %w", err)
	}
	return res.RowsAffected()
}

const columns = `id, staff_id, kind, certificate, cert_sha256, serial, subject, not_after, module, token_label, slot, key_label, key_id,
	pin_sealed, key_sealed, created_by, created_at, superseded_at, revoked_at`

func scan(row interface{ Scan(...any) error }) (Identity, error) {
	var (
		id                     Identity
		rid, sid, kind, pemStr string
		notAfter, created      int64
		slot                   sql.NullInt64
		superseded, revoked    sql.NullInt64
		tok                    Token
	)
	if err := row.Scan(&rid, &sid, &kind, &pemStr, &id.CertSHA256, &id.Serial, &id.Subject, &notAfter, &tok.Module, &tok.TokenLabel, &slot,
		&tok.KeyLabel, &tok.KeyID, &id.pinSealed, &id.keySealed, &id.CreatedBy, &created, &superseded, &revoked); err != nil {
		return Identity{}, err
	}
	id.ID, _ = uuid.Parse(rid)
	id.StaffID, _ = uuid.Parse(sid)
	id.Kind = Kind(kind)
	id.NotAfter, id.CreatedAt = database.Time(notAfter), database.Time(created)
	if superseded.Valid {
		t := database.Time(superseded.Int64)
		id.SupersededAt = &t
	}
	if revoked.Valid {
		t := database.Time(revoked.Int64)
		id.RevokedAt = &t
	}
	if id.Kind == PKCS11 {
		if slot.Valid {
			n := int(slot.Int64)
			tok.Slot = &n
		}
		id.Token = &tok
	}
	id.PINStored = id.pinSealed != ""
	chain, err := pki.ParseCertificatesPEM([]byte(pemStr))
	if err != nil {
		return Identity{}, fmt.Errorf("signers: identity %s: certificate: %w", rid, err)
	}
	id.chain = chain
	return id, nil
}

// List returns the identities of one staff member (uuid.Nil: everyone's),
// superseded and revoked ones included, oldest first.
func (s *Service) List(ctx context.Context, staffID uuid.UUID) ([]Identity, error) {
	q, args := `SELECT `+columns+` FROM signing_identities ORDER BY created_at, id`, []any{}
	if staffID != uuid.Nil {
		q, args = `SELECT `+columns+` FROM signing_identities WHERE staff_id = $1 ORDER BY created_at, id`, []any{staffID.String()}
	}
	rows, err := s.cfg.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("signers: list: %w", database.Classify(err))
	}
	defer rows.Close()
	out := []Identity{}
	for rows.Next() {
		id, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// current returns the staff member's current identity, and whether they
// ever had one (a revoked or superseded one counts).
func (s *Service) current(ctx context.Context, staffID uuid.UUID) (id Identity, found, ever bool, err error) {
	all, err := s.List(ctx, staffID)
	if err != nil {
		return Identity{}, false, false, err
	}
	for _, id := range all {
		if id.Current() {
			return id, true, true, nil
		}
	}
	return Identity{}, false, len(all) > 0, nil
}

// Revoke ends a staff member's current identity: it can no longer sign,
// and its certificate is revoked at the CA when the CA issued it (a
// token's certificate from another CA is revoked by that CA's operator).
// reason is an RFC 5280 reason code.
func (s *Service) Revoke(ctx context.Context, actor string, staffID uuid.UUID, reason int) (Identity, error) {
	id, found, _, err := s.current(ctx, staffID)
	if err != nil {
		return Identity{}, err
	}
	if !found {
		return Identity{}, fmt.Errorf("current signing identity of %s: %w", staffID, fault.NotFound)
	}
	atCA := s.cfg.CA != nil && s.cfg.CA.Issued(id.Certificate())
	// The CA first: a revocation the database then fails to record still
	// refuses the certificate; the other order could leave it usable.
	if atCA {
		if err := s.cfg.CA.Revoke(ctx, id.Certificate().SerialNumber, reason); err != nil {
			return Identity{}, err
		}
	}
	now := database.Now()
	err = s.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_identities SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`,
			database.Micros(now), id.ID.String()); err != nil {
			return fmt.Errorf("signers: revoke: %w", err)
		}
		_, err := s.cfg.Journal.AppendTx(ctx, tx, journal.Record{Actor: actor, Action: "signer.revoked", Details: map[string]any{
			"identity_id": id.ID, "staff_id": id.StaffID, "certificate_sha256": id.CertSHA256, "serial": id.Serial,
			"subject": id.Subject, "reason": reason, "revoked_at_ca": atCA,
		}})
		return err
	})
	if err != nil {
		return Identity{}, err
	}
	id.RevokedAt = &now
	return id, nil
}
