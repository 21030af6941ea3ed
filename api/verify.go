package api

import (
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/fault"
)

// VerifyConfig configures the public verification endpoint.
type VerifyConfig struct {
	// Roots are the trust anchors: system roots, Chamber's CA, --trust.
	Roots *x509.CertPool
	// MaxSize bounds an uploaded PDF (the upload limit).
	MaxSize int64
	// TempDir holds the PDF while it is examined.
	TempDir string
}

func (a *API) verifyRoutes(cfg VerifyConfig) {
	a.route("POST /api/v1/verify", Op{Summary: "Verify every signature of a PDF (public, rate-limited); the report says who signed, when, timestamped by whom, and whether the document changed since",
		Tags: []string{"verification"}, RawBody: []string{"application/pdf"}, Response: pades.Report{},
		Errors: []int{400, 413, 422, 429}}, a.h(a.handleVerify(cfg)))
}

func (a *API) handleVerify(cfg VerifyConfig) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		addr := a.clients.Of(r)
		if blocked, wait := a.verifications.Blocked(addr); blocked {
			return tooMany(wait, "verifications")
		}
		a.verifications.Failed(addr) // every verification spends from the budget
		if r.ContentLength > cfg.MaxSize {
			return fault.New(fault.TooLarge, "the PDF is %d bytes; the limit is %d", r.ContentLength, cfg.MaxSize)
		}
		// The verifier reads at random; the PDF goes to a temporary file,
		// never whole into memory.
		f, err := os.CreateTemp(cfg.TempDir, "chamber-verify-*.pdf")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, cfg.MaxSize))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fault.New(fault.TooLarge, "the PDF exceeds the limit of %d bytes", cfg.MaxSize)
		case err != nil:
			return BadRequest("bad_body", "reading the PDF: %v", err)
		case n == 0:
			return BadRequest("empty", "send the PDF as the request body")
		}
		rep, err := pades.Verify(r.Context(), f, n, pades.VerifyOptions{Roots: cfg.Roots, Log: a.log, Now: time.Now})
		if err != nil {
			return err // fail maps an encrypted or malformed PDF to 422
		}
		WriteJSON(w, http.StatusOK, rep)
		return nil
	}
}
