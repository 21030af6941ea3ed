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
	// Roots are the trust anchors: Chamber's CA and --trust, never the
	// system's web roots.
	Roots *x509.CertPool
	// RejectDevelopment refuses timestamps of a development TSA (a
	// production trust setup); otherwise they are reported as such.
	RejectDevelopment bool
	// MaxSize bounds an uploaded PDF (the upload limit).
	MaxSize int64
	// TempDir holds the PDF while it is examined.
	TempDir string
	// MaxConcurrent bounds the verifications in progress at once
	// (default 4): each may take up to 64 MiB of heap.
	MaxConcurrent int
}

// defaultVerifyConcurrency is MaxConcurrent's default.
const defaultVerifyConcurrency = 4

// uploadTimeout bounds how long a PDF to verify may take to arrive: 200 MiB
// at about 1 MB/s.
const uploadTimeout = 5 * time.Minute

func (a *API) verifyRoutes(cfg VerifyConfig) {
	a.route("POST /api/v1/verify", Op{Summary: "Verify every signature and document timestamp of a PDF (public, rate-limited, bounded memory); the report counts signatures and document timestamps apart and says who signed, when, timestamped by whom, whether the document changed since, and why an entry is not valid (code and text)",
		Tags: []string{"verification"}, RawBody: []string{"application/pdf"}, Response: pades.Report{},
		Errors: []int{400, 413, 422, 429, 503}}, a.h(a.handleVerify(cfg)))
}

func (a *API) handleVerify(cfg VerifyConfig) handler {
	n := cfg.MaxConcurrent
	if n <= 0 {
		n = defaultVerifyConcurrency
	}
	slots := make(chan struct{}, n)
	return func(w http.ResponseWriter, r *http.Request) error {
		addr := a.clients.Of(r)
		if blocked, wait := a.verifications.Blocked(addr); blocked {
			return tooMany(wait, "verifications")
		}
		a.verifications.Failed(addr) // every verification spends from the budget
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			return &fault.Error{Kind: fault.Unavailable, Code: "busy", RetryAfter: time.Second,
				Message: "the server is verifying as many documents as it may at once; retry in a second"}
		}
		// A slot is held from the upload on (the temporary file counts
		// too), so an upload that never ends must not hold it for ever.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadTimeout))
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
		rep, err := pades.Verify(r.Context(), f, n, pades.VerifyOptions{Roots: cfg.Roots, RejectDevelopment: cfg.RejectDevelopment, Logger: a.log, Now: time.Now})
		if err != nil {
			// fail maps an encrypted or malformed PDF, and one beyond the
			// verifier's limits (a *pades.LimitError inside a
			// *pades.MalformedError), to 422.
			return err
		}
		WriteJSON(w, http.StatusOK, rep)
		return nil
	}
}
