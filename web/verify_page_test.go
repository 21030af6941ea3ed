package web_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/pki"
)

// The public verify page tells signatures from document timestamps: for
// two signers, each followed by a document timestamp, it says "2
// signatures, 2 document timestamps" and names each signer from the
// certificate.
func TestVerifyPageCounts(t *testing.T) {
	s := server(t)
	b := newBrowser(t)
	defer b.cancel()
	// The server's own development PKI, so the server trusts the result.
	authority, err := pki.LoadOrCreateDev(filepath.Join(s.dataDir, "pki"), s.url, nil)
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

	tab := b.tab(t)
	do(t, tab, 30*time.Second, chromedp.Navigate(s.url+"/verify"), chromedp.WaitVisible(chromedp.CSS("#verify-drop")),
		chromedp.SetUploadFiles(chromedp.CSS("#verify-file"), []string{file}))
	waitJS(t, tab, 60*time.Second, `!!document.querySelector('#verdict')`)
	if v := eval[string](t, tab, `document.querySelector('#verdict').dataset.valid`); v != "true" {
		t.Fatalf("not valid: %s", pageState(tab))
	}
	if c := eval[string](t, tab, `document.querySelector('#verify-counts').innerText`); c != "2 signatures, 2 document timestamps" {
		t.Errorf("counts %q", c)
	}
	titles := eval[[]string](t, tab, `[...document.querySelectorAll('.sig-card[data-kind="signature"] h3')].map(h => h.innerText)`)
	if len(titles) != 2 || !strings.Contains(titles[0], "Anna Maria Eriksson") || !strings.Contains(titles[1], "Jüri Õunapuu") {
		t.Errorf("signature cards %q", titles)
	}
	if n := eval[int](t, tab, `document.querySelectorAll('.sig-card[data-kind="document timestamp"]').length`); n != 2 {
		t.Errorf("%d document timestamp cards", n)
	}
	if d := eval[string](t, tab, `document.querySelector('#verdict').dataset.development`); d != "true" {
		t.Errorf("the development keys are not mentioned: %s", pageState(tab))
	}
	b.screenshot(t, tab, "verify-counts")
}
