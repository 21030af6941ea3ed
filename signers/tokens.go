package signers

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"sync"
)

// tokenKey is a key found on a token, usable while the token is open.
type tokenKey interface {
	Public() crypto.PublicKey
	Sign(digest []byte, opts crypto.SignerOpts) ([]byte, error)
	// Certificate is the certificate stored on the token beside the key.
	Certificate() (*x509.Certificate, error)
}

// tokens opens PKCS#11 tokens one use at a time. A token's login state is
// shared by every session an application has open on it: were a context
// logged in with the right PIN still open, a login with a wrong one would
// find the token "already logged in" and succeed. So each use opens the
// token, logs in with the PIN it was given, and closes it again before the
// next use of the same token may begin; the PIN is checked every time.
type tokens struct {
	mu    sync.Mutex
	locks map[string]chan struct{} // one per module and token
}

func newTokens() *tokens { return &tokens{locks: map[string]chan struct{}{}} }

// acquire waits for the token's turn, or for ctx.
func (ts *tokens) acquire(ctx context.Context, t Token) (release func(), err error) {
	key := t.Module + "\x00" + t.TokenLabel
	if t.Slot != nil {
		key = fmt.Sprintf("%s\x00slot %d", t.Module, *t.Slot)
	}
	ts.mu.Lock()
	ch, ok := ts.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		ts.locks[key] = ch
	}
	ts.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
