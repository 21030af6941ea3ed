// Package signerstest gives tests of other packages the real signing
// identities service, configured as in zero-config development.
package signerstest

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/signers"
)

// AutoIssue is a signers.Service that issues each official a CA-issued
// identity at their first signature, as `chamber serve` does with the
// development PKI, adapted to documents.Signers.
func AutoIssue(t testing.TB, db *database.DB, jnl *journal.Journal, ca *pki.Authority) documents.Signers {
	t.Helper()
	kek, _, err := signers.LoadOrCreateKEK(t.TempDir() + "/signer.kek")
	if err != nil {
		t.Fatal(err)
	}
	return ForDocuments(signers.New(signers.Config{DB: db, Journal: jnl, KEK: kek, CA: ca, AutoIssue: true}))
}

// ForDocuments adapts svc to documents.Signers.
func ForDocuments(svc *signers.Service) documents.Signers {
	return documents.SignersFunc(func(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, documents.Identity, error) {
		s, id, err := svc.For(ctx, staffID, pin)
		return s, documents.Identity{ID: id.ID, PINTyped: id.PINTyped()}, err
	})
}
