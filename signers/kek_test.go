package signers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func newTestKEK(t *testing.T) *KEK {
	t.Helper()
	kek, created, err := LoadOrCreateKEK(filepath.Join(t.TempDir(), "signer.kek"))
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKEK: created %v, %v", created, err)
	}
	return kek
}

func TestSealedValues(t *testing.T) {
	kek, other := newTestKEK(t), newTestKEK(t)
	id := uuid.New()
	plain := []byte("PKCS#8 bytes")
	sealed := kek.Seal(plain, aad(id, "key"))
	if strings.Contains(sealed, "PKCS") {
		t.Fatal("the sealed value shows its plaintext")
	}
	if got, err := kek.Open(sealed, aad(id, "key")); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if kek.Seal(plain, aad(id, "key")) == sealed {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, sealPrefix))
	for name, tc := range map[string]struct {
		kek    *KEK
		sealed string
		aad    []byte
	}{
		"wrong KEK":              {other, sealed, aad(id, "key")},
		"another identity's row": {kek, sealed, aad(uuid.New(), "key")},
		"another column":         {kek, sealed, aad(id, "pin")},
		"tampered ciphertext":    {kek, sealPrefix + base64.StdEncoding.EncodeToString(flip(raw, len(raw)-20)), aad(id, "key")},
		"tampered nonce":         {kek, sealPrefix + base64.StdEncoding.EncodeToString(flip(raw, 0)), aad(id, "key")},
		"truncated":              {kek, sealPrefix + base64.StdEncoding.EncodeToString(raw[:20]), aad(id, "key")},
		"not base64":             {kek, sealPrefix + "%%%", aad(id, "key")},
		"unknown format":         {kek, "v9:" + strings.TrimPrefix(sealed, sealPrefix), aad(id, "key")},
		"empty":                  {kek, "", aad(id, "key")},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.kek.Open(tc.sealed, tc.aad)
			if !errors.Is(err, ErrSealed) || got != nil {
				t.Fatalf("Open = %q, %v; want ErrSealed", got, err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signer.kek")
	kek, created, err := LoadOrCreateKEK(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKEK: created %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateKEK(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateKEK: created %v, %v", created, err)
	}
	sealed := kek.Seal([]byte("x"), nil)
	if _, err := again.Open(sealed, nil); err != nil {
		t.Fatalf("the reloaded KEK is another key: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable KEK file was accepted: %v", err)
	}
	short := filepath.Join(dir, "short.kek")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString(make([]byte, 16))), 0o600)
	if _, err := LoadKEK(short); err == nil {
		t.Fatal("a 16-byte KEK was accepted")
	}
	if _, err := LoadKEK(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("LoadKEK of a missing file succeeded")
	}
}

// Sealed values come from the database; whatever is there, Open answers
// ErrSealed or the plaintext, and never panics.
func FuzzOpen(f *testing.F) {
	key := make([]byte, 32)
	kek, err := NewKEK(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kek.Seal([]byte("key"), []byte("aad")))
	f.Add(sealPrefix)
	f.Add(sealPrefix + "AAAA")
	f.Fuzz(func(t *testing.T, sealed string) {
		if _, err := kek.Open(sealed, []byte("aad")); err != nil && !errors.Is(err, ErrSealed) {
			t.Fatalf("Open: %v", err)
		}
	})
}
