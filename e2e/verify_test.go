package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/pki"
)

// The public verify page tells signatures from document timestamps: for
// two signers, each followed by a document timestamp, it says "2
// signatures, 2 document timestamps", names each signer from the
// certificate, and says the development keys promise nothing. The PDF is
// signed here with the server's own development PKI, so the server trusts
// it.
func TestVerifyPage(t *testing.T) {
	s := server(t)
	authority, err := pki.LoadOrCreateDev(filepath.Join(s.DataDir, "pki"), s.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"Anna Maria Eriksson", "Jüri Õunapuu"} {
		id, err := authority.IssuePrincipal(ctx, name, uuid.New(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var signed, stamped bytes.Buffer
		if _, err := pades.Sign(ctx, bytes.NewReader(doc), int64(len(doc)), &signed, pades.SignOptions{Signer: id.AsSigner(),
			Kind: pades.Approval, Permissions: pades.FormFillingAndSigning, Timestamper: authority.TSA()}); err != nil {
			t.Fatal(err)
		}
		if _, err := pades.AddLTV(ctx, bytes.NewReader(signed.Bytes()), int64(signed.Len()), &stamped, pades.LTVOptions{Timestamper: authority.TSA()}); err != nil {
			t.Fatal(err)
		}
		doc = stamped.Bytes()
	}
	file := filepath.Join(t.TempDir(), "twice-signed.pdf")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHAMBER_E2E_VERIFY_PDF", file)
	scenario(t, "verify.test.mjs", "chromium")
}
