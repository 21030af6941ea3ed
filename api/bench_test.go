package api_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/internal/testenv"
)

// BenchmarkUploadToMinIO compares a document upload through the REST API
// into the MinIO evidence store (HTTP, sniffing, the size limit, SHA-256,
// per-part checksums, the journal) with a raw minio-go PutObject of the
// same bytes to the same server, in the same run.
//
//	go test -run '^$' -bench BenchmarkUploadToMinIO -benchtime 3x -count 5 ./api/
func BenchmarkUploadToMinIO(b *testing.B) {
	const size = 100 << 20
	m := testenv.MinIO(b)
	body := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte('a' + rng.IntN(26)) // plain text: sniffed and accepted
	}
	body[size/2] = '\n'
	bucket := "bench-upload-" + randomSuffix()
	store, err := evidence.NewS3(context.Background(), evidence.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Insecure: true, Bucket: bucket, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("api", func(b *testing.B) {
		h := newHarnessWithStore(b, databasetest.Open(b, database.SQLite), store, 2*size)
		clerk := h.staffToken(access.Clerk)
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			s := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Bench"})
			body[0] = byte('a' + i%26) // new bytes each time: no de-duplication
			req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/sessions/"+s.ID.String()+"/documents?name=big.txt", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+clerk)
			req.Header.Set("Content-Type", "text/plain")
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 201 {
				b.Fatalf("upload: %d", resp.StatusCode)
			}
		}
	})
	b.Run("minio-go-PutObject", func(b *testing.B) {
		client, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: false})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			_, err := client.PutObject(context.Background(), bucket, "raw/"+strings.Repeat("x", i%5)+randomSuffix(), bytes.NewReader(body), size,
				minio.PutObjectOptions{ContentType: "text/plain"})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
