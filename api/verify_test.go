package api_test

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
)

// TestVerifyBoundsConcurrency: the public verifier runs at most four
// verifications at once (each may take up to 64 MiB); the next is
// answered 503 with Retry-After until one ends.
func TestVerifyBoundsConcurrency(t *testing.T) {
	h := newHarness(t, databasetest.Open(t, database.SQLite))
	// Four uploads that never finish sending hold the four slots.
	var writers []*io.PipeWriter
	var wg sync.WaitGroup
	for range 4 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/verify", pr)
		req.Header.Set("Content-Type", "application/pdf")
		wg.Go(func() {
			if resp, err := h.srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
		})
		pw.Write([]byte("%PDF-1.7\n"))
	}
	defer func() {
		for _, pw := range writers {
			pw.Close()
		}
		wg.Wait()
	}()
	// A fifth, complete request gets a slot until all four hold theirs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/verify", bytes.NewReader([]byte("not a PDF")))
		req.Header.Set("Content-Type", "application/pdf")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			break
		}
		// 422: it got a slot (the four are not all in yet); 429: the
		// per-address rate limit, which the probes share with the four.
		if resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatal("a fifth verification was let in while four were running")
		}
	}
	// Once the uploads end, verifications are let in again.
	for _, pw := range writers {
		pw.Close()
	}
	wg.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; {
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/verify", bytes.NewReader([]byte("not a PDF")))
		req.Header.Set("Content-Type", "application/pdf")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnprocessableEntity {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after the uploads ended: %d", resp.StatusCode)
		}
	}
}
