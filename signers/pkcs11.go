//go:build cgo

package signers

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/chamber-court/chamber/fault"
)

// with opens the token t, logs in with pin, finds the key and runs f with
// it; the token is closed again before with returns.
func (ts *tokens) with(ctx context.Context, t Token, pin string, f func(tokenKey) error) error {
	release, err := ts.acquire(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	c, err := crypto11.Configure(&crypto11.Config{Path: t.Module, TokenLabel: t.TokenLabel, SlotNumber: t.Slot, Pin: pin, MaxSessions: 2})
	if err != nil {
		return tokenError(err)
	}
	defer c.Close()
	id, _ := hex.DecodeString(t.KeyID) // validated at enrolment
	var label []byte
	if t.KeyLabel != "" {
		label = []byte(t.KeyLabel)
	}
	if len(id) == 0 {
		id = nil
	}
	k, err := c.FindKeyPair(id, label)
	if err != nil {
		return tokenError(err)
	}
	if k == nil {
		return fault.New(fault.Conflict, "the signing key is not on the token (key label %q, ID %q)", t.KeyLabel, t.KeyID)
	}
	return f(p11Key{c: c, k: k, id: id, label: label})
}

type p11Key struct {
	c         *crypto11.Context
	k         crypto11.Signer
	id, label []byte
}

func (k p11Key) Public() crypto.PublicKey { return k.k.Public() }
func (k p11Key) Sign(digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.k.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, tokenError(err)
	}
	return sig, nil
}
func (k p11Key) Certificate() (*x509.Certificate, error) {
	cert, err := k.c.FindCertificate(k.id, k.label, nil)
	if err != nil {
		return nil, tokenError(err)
	}
	if cert == nil {
		return nil, fault.New(fault.Invalid, "the token holds no certificate for the key: give one with --cert, or --certify")
	}
	return cert, nil
}

// tokenError says what a person can do about a token's refusal: a wrong or
// locked PIN is theirs to correct, an absent token to insert.
func tokenError(err error) error {
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		switch rv {
		case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE:
			return &fault.Error{Kind: fault.Forbidden, Code: CodeWrongPIN, Message: "the PIN of the signing token is wrong", Err: err}
		case pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED:
			return &fault.Error{Kind: fault.Forbidden, Code: CodePINLocked, Message: "the signing token's PIN is locked or expired", Err: err}
		case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_SLOT_ID_INVALID:
			return fault.Wrap(fault.Unavailable, err, "the signing token is not present")
		}
	}
	if err != nil && err.Error() == "could not find PKCS#11 token" {
		return fault.Wrap(fault.Unavailable, err, "the signing token is not present")
	}
	return fmt.Errorf("signers: PKCS#11: %w", err)
}
