package signers

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/pki"
)

// Wire codes of the refusals a signer can act on (the console reads them).
const (
	// CodeNoIdentity: the official has no current signing identity —
	// never enrolled, or theirs was revoked. An administrator enrols one.
	CodeNoIdentity = "no_signing_identity"
	// CodePINRequired: the identity's token PIN is not stored, and the
	// signature request carries none.
	CodePINRequired = "pin_required"
	// CodeWrongPIN: the token refused the PIN.
	CodeWrongPIN = "wrong_pin"
	// CodePINLocked: the token locked the PIN (too many wrong ones).
	CodePINLocked = "pin_locked"
)

// maxPIN bounds the PIN a request may carry.
const maxPIN = 128

// For returns the signer of a staff member's current identity, ready to
// sign once. pin is the token PIN the person typed, for a token identity
// whose PIN is not stored; it is checked with the token before For
// returns, and never logged or journalled. A staff member without an
// identity gets a CA-issued one only with AutoIssue, and only if they
// never had one: a revoked identity is not silently replaced.
func (s *Service) For(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, Identity, error) {
	st, err := s.staff(ctx, staffID)
	if err != nil {
		return nil, Identity{}, err
	}
	if st.Revoked {
		return nil, Identity{}, fault.New(fault.Forbidden, "the staff member is revoked")
	}
	id, found, ever, err := s.current(ctx, staffID)
	if err != nil {
		return nil, Identity{}, err
	}
	if !found {
		if !s.cfg.AutoIssue || ever {
			return nil, Identity{}, noIdentity(ever)
		}
		if id, err = s.firstNeed(ctx, staffID); err != nil {
			return nil, Identity{}, err
		}
	}
	switch id.Kind {
	case Issued:
		signer, err := s.issuedSigner(id)
		return signer, id, err
	case PKCS11:
		signer, err := s.tokenSigner(ctx, id, pin)
		return signer, id, err
	}
	return nil, Identity{}, errors.New("signers: unknown identity kind " + string(id.Kind))
}

// firstNeed issues a development identity to an official who never had
// one. Two first signatures at once both try; the database lets one
// identity be current, and the loser takes the winner's.
func (s *Service) firstNeed(ctx context.Context, staffID uuid.UUID) (Identity, error) {
	id, err := s.enroll(ctx, "system", Enrolment{StaffID: staffID, Issue: true}, true)
	if err != nil {
		if cur, found, ever, cerr := s.current(ctx, staffID); cerr == nil && found {
			return cur, nil
		} else if cerr == nil && ever {
			return Identity{}, noIdentity(true)
		}
		return Identity{}, err
	}
	s.log.Warn("issued a development signing identity on first need", "staff", staffID, "identity", id.ID, "subject", id.Subject)
	return id, nil
}

func noIdentity(revoked bool) error {
	msg := "you have no signing identity; an administrator enrols one (chamber signer enroll)"
	if revoked {
		msg = "your signing identity was revoked; an administrator enrols a new one (chamber signer enroll)"
	}
	return &fault.Error{Kind: fault.Conflict, Code: CodeNoIdentity, Message: msg}
}

func (s *Service) issuedSigner(id Identity) (pki.Signer, error) {
	if s.cfg.KEK == nil {
		return nil, errors.New("signers: no key-encryption key to open issued keys")
	}
	der, err := s.cfg.KEK.Open(id.keySealed, aad(id.ID, "key"))
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	k, ok := key.(crypto.Signer)
	if !ok || !publicKeysEqual(id.Certificate().PublicKey, k.Public()) {
		return nil, errors.New("signers: the sealed key is not the certificate's")
	}
	return pki.Identity{Certificate: id.chain[0], Chain: id.chain[1:], Key: k}.AsSigner(), nil
}

func (s *Service) tokenSigner(ctx context.Context, id Identity, pin string) (pki.Signer, error) {
	t := *id.Token
	if err := s.allowed(t.Module); err != nil {
		return nil, err
	}
	if id.PINStored {
		if s.cfg.KEK == nil {
			return nil, errors.New("signers: no key-encryption key to open stored PINs")
		}
		p, err := s.cfg.KEK.Open(id.pinSealed, aad(id.ID, "pin"))
		if err != nil {
			return nil, err
		}
		pin = string(p)
	}
	if pin == "" || len(pin) > maxPIN {
		return nil, &fault.Error{Kind: fault.Invalid, Code: CodePINRequired, Message: "pin: the PIN of your signing token is required",
			Fields: map[string]string{"pin": "the PIN of your signing token is required"}}
	}
	// Log in once now, so a wrong PIN or a missing key is reported
	// before any signing work begins.
	err := s.tokens.with(ctx, t, pin, func(k tokenKey) error {
		if !publicKeysEqual(id.Certificate().PublicKey, k.Public()) {
			return errors.New("signers: the key on the token is not the enrolled certificate's")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &tokenSigner{tokens: s.tokens, token: t, pin: pin, chain: id.chain}, nil
}

// tokenSigner signs on the token, logging in for each signature.
type tokenSigner struct {
	tokens *tokens
	token  Token
	pin    string
	chain  []*x509.Certificate
}

func (t *tokenSigner) Certificate() *x509.Certificate { return t.chain[0] }
func (t *tokenSigner) Chain() []*x509.Certificate     { return t.chain[1:] }
func (t *tokenSigner) SignDigest(ctx context.Context, digest []byte, opts crypto.SignerOpts) (sig []byte, err error) {
	err = t.tokens.with(ctx, t.token, t.pin, func(k tokenKey) error {
		if !publicKeysEqual(t.chain[0].PublicKey, k.Public()) {
			return errors.New("signers: the key on the token changed since the PIN was checked")
		}
		sig, err = k.Sign(digest, opts)
		return err
	})
	return sig, err
}
