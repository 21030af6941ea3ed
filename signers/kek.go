package signers

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KEK is the key-encryption key that seals what Chamber keeps of a signing
// identity in the database: a CA-issued private key (PKCS#8) and a token
// PIN the operator chose to store. A copy of the database without the KEK
// yields neither.
type KEK struct{ aead cipher.AEAD }

// sealPrefix names the format of a sealed value: AES-256-GCM, a random
// 96-bit nonce, base64 of nonce‖ciphertext.
const sealPrefix = "v1:"

// ErrSealed reports a sealed value that does not open with this KEK: the
// wrong key, or a value that was changed.
var ErrSealed = errors.New("signers: sealed value does not open with this key-encryption key (wrong key or tampered)")

// NewKEK makes a KEK of 32 bytes.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("signers: key-encryption key is %d bytes; want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KEK{aead: aead}, nil
}

// Seal encrypts plain, bound to aad (the identity's ID and what the value
// is), so a sealed value moved to another row or column does not open.
func (k *KEK) Seal(plain, aad []byte) string {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return sealPrefix + base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, aad))
}

// Open decrypts a value Seal made with the same aad.
func (k *KEK) Open(sealed string, aad []byte) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, ErrSealed
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, ErrSealed
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, b[:n], b[n:], aad)
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// LoadKEK reads a KEK file: 32 random bytes, base64. The file must not be
// readable by group or others.
func LoadKEK(path string) (*KEK, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signers: key-encryption key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signers: key-encryption key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signers: key-encryption key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("signers: key-encryption key %s: not base64: %w", path, err)
	}
	return NewKEK(key)
}

// LoadOrCreateKEK loads the KEK at path, creating it (mode 0600) when it
// does not exist yet: the development default, kept in the data directory.
func LoadOrCreateKEK(path string) (kek *KEK, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		kek, err := LoadKEK(path)
		return kek, false, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("signers: %w", err)
	}
	// O_EXCL: two processes starting at once never overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		kek, err := LoadKEK(path)
		return kek, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("signers: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("signers: write key-encryption key: %w", err)
	}
	kek, err = NewKEK(key)
	return kek, true, err
}
