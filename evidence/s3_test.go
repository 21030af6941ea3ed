package evidence_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/evidencetest"
	"github.com/chamber-court/chamber/internal/testenv"
)

var bucketSeq atomic.Int64

// bucketName returns a bucket name no earlier run used.
func bucketName() string {
	return fmt.Sprintf("chamber-t-%d-%d", time.Now().UnixNano(), bucketSeq.Add(1))
}

// newS3 opens a store on a fresh bucket of the MinIO server under test,
// optionally through another endpoint (a proxy).
func newS3(t testing.TB, partSize int64, endpoint string) (*evidence.S3, testenv.S3) {
	t.Helper()
	m := testenv.MinIO(t)
	if endpoint == "" {
		endpoint = m.Endpoint
	}
	s, err := evidence.NewS3(t.Context(), evidence.S3Config{
		Endpoint:  endpoint,
		Bucket:    bucketName(),
		AccessKey: m.AccessKey,
		SecretKey: m.SecretKey,
		Insecure:  true,
		PartSize:  partSize,
		Logger:    testenv.Logger(t),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s, m
}

func TestS3Contract(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	evidencetest.Run(t, evidencetest.Harness{Store: s, PartSize: evidence.MinPartSize})
}

// Retention and legal holds must bind the server itself: a raw delete of the
// object version, bypassing the store, fails.
func TestS3ServerRefusesDeletingProtectedVersions(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	ctx := t.Context()
	raw := s.Client()
	for _, tc := range []struct {
		name    string
		size    int
		protect func(key string) error
		release func(key string) error
	}{
		{"retention", 100, func(key string) error {
			return s.Retain(ctx, key, time.Now().Add(time.Hour))
		}, nil},
		{"retention-multipart", evidence.MinPartSize + 100, func(key string) error {
			return s.Retain(ctx, key, time.Now().Add(time.Hour))
		}, nil},
		{"legal-hold", 100, func(key string) error {
			return s.LegalHold(ctx, key, true)
		}, func(key string) error {
			return s.LegalHold(ctx, key, false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "protected/" + tc.name
			if _, err := s.Put(ctx, key, bytes.NewReader(make([]byte, tc.size)), evidence.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if err := tc.protect(key); err != nil {
				t.Fatalf("protect: %v", err)
			}
			info, err := raw.StatObject(ctx, s.Bucket(), key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if info.VersionID == "" {
				t.Fatal("object has no version ID: the bucket is not versioned")
			}
			err = raw.RemoveObject(ctx, s.Bucket(), key, minio.RemoveObjectOptions{VersionID: info.VersionID})
			if err == nil {
				t.Fatal("the server deleted a protected object version")
			}
			t.Logf("raw delete refused by the server: %v", err)
			// Bypassing governance mode does not help against COMPLIANCE.
			err = raw.RemoveObject(ctx, s.Bucket(), key, minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true})
			if err == nil {
				t.Fatal("the server deleted a protected object version with governance bypass")
			}
			if _, err := raw.StatObject(ctx, s.Bucket(), key, minio.StatObjectOptions{VersionID: info.VersionID}); err != nil {
				t.Fatalf("protected version gone: %v", err)
			}
			if tc.release != nil {
				if err := tc.release(key); err != nil {
					t.Fatal(err)
				}
				if err := raw.RemoveObject(ctx, s.Bucket(), key, minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
					t.Fatalf("raw delete after release: %v", err)
				}
			}
		})
	}

	t.Run("compliance-mode", func(t *testing.T) {
		key := "protected/mode"
		until := time.Now().Add(time.Hour)
		if _, err := s.Put(ctx, key, strings.NewReader("x"), evidence.PutOptions{RetainUntil: until}); err != nil {
			t.Fatal(err)
		}
		mode, got, err := raw.GetObjectRetention(ctx, s.Bucket(), key, "")
		if err != nil {
			t.Fatal(err)
		}
		if mode == nil || *mode != minio.Compliance || got == nil || got.Before(until) {
			t.Fatalf("retention %v until %v; want COMPLIANCE until %v", mode, got, until)
		}
		// COMPLIANCE retention cannot be shortened, even by the root user.
		shorter := until.Add(-30 * time.Minute)
		err = raw.PutObjectRetention(ctx, s.Bucket(), key, minio.PutObjectRetentionOptions{Mode: mode, RetainUntilDate: &shorter})
		if err == nil {
			t.Fatal("the server shortened COMPLIANCE retention")
		}
	})
}

// MinIO at the pinned version honours If-None-Match: * on PutObject and on
// CompleteMultipartUpload; the store's write-once guarantee rests on it.
func TestS3ServerHonoursIfNoneMatch(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	ctx := t.Context()
	core := minio.Core{Client: s.Client()}
	b := s.Bucket()

	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	if _, err := core.PutObject(ctx, b, "inm/single", strings.NewReader("a"), 1, "", "", opts); err != nil {
		t.Fatalf("first conditional PutObject: %v", err)
	}
	_, err := core.PutObject(ctx, b, "inm/single", strings.NewReader("b"), 1, "", "", opts)
	if code := minio.ToErrorResponse(err).StatusCode; code != 412 {
		t.Fatalf("second conditional PutObject: %v (status %d); want 412", err, code)
	}

	part := bytes.Repeat([]byte("p"), evidence.MinPartSize)
	upload := func() (string, []minio.CompletePart) {
		id, err := core.NewMultipartUpload(ctx, b, "inm/multi", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := core.PutObjectPart(ctx, b, "inm/multi", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return id, []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}
	}
	id1, parts1 := upload()
	id2, parts2 := upload()
	if _, err := core.CompleteMultipartUpload(ctx, b, "inm/multi", id1, parts1, opts); err != nil {
		t.Fatalf("first conditional complete: %v", err)
	}
	_, err = core.CompleteMultipartUpload(ctx, b, "inm/multi", id2, parts2, opts)
	if code := minio.ToErrorResponse(err).StatusCode; code != 412 {
		t.Fatalf("second conditional complete: %v (status %d); want 412", err, code)
	}
	core.AbortMultipartUpload(ctx, b, "inm/multi", id2)
}

// The server checks the SHA-256 the store sends with each PUT and part: a
// wrong one is refused. And what the store records matches the server.
func TestS3Checksums(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	ctx := t.Context()
	raw := s.Client()
	core := minio.Core{Client: raw}

	wrong := sha256.Sum256([]byte("something else"))
	opts := minio.PutObjectOptions{
		UserMetadata:         map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(wrong[:])},
		DisableContentSha256: true,
	}
	if _, err := core.PutObject(ctx, s.Bucket(), "sum/wrong", strings.NewReader("payload"), 7, "", "", opts); err == nil {
		t.Fatal("the server accepted a body that does not match its x-amz-checksum-sha256")
	} else {
		t.Logf("wrong checksum refused: %v", err)
	}

	small := []byte("small object")
	obj, err := s.Put(ctx, "sum/small", bytes.NewReader(small), evidence.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := raw.StatObject(ctx, s.Bucket(), "sum/small", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(small)
	if info.ChecksumSHA256 != base64.StdEncoding.EncodeToString(want[:]) {
		t.Fatalf("server checksum of a single-PUT object %q; want the whole-object SHA-256 %x", info.ChecksumSHA256, want)
	}
	if obj.SHA256 != fmt.Sprintf("%x", want) {
		t.Fatalf("Put SHA256 %s", obj.SHA256)
	}

	big := make([]byte, 2*evidence.MinPartSize+7)
	rand.Read(big)
	obj, err = s.Put(ctx, "sum/big", bytes.NewReader(big), evidence.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err = raw.StatObject(ctx, s.Bucket(), "sum/big", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ChecksumSHA256, "-3") {
		t.Fatalf("server checksum of a 3-part object %q; want a composite of 3 parts", info.ChecksumSHA256)
	}
	rec := readRecordObject(t, s, "sum/big", info.VersionID)
	want = sha256.Sum256(big)
	if rec["sha256"] != fmt.Sprintf("%x", want) || rec["checksum_sha256"] != info.ChecksumSHA256 || obj.SHA256 != rec["sha256"] {
		t.Fatalf("record %v; want sha256 %x and the server's checksum %s", rec, want, info.ChecksumSHA256)
	}
}

func readRecordObject(t *testing.T, s *evidence.S3, key, version string) map[string]any {
	t.Helper()
	o, err := s.Client().GetObject(t.Context(), s.Bucket(), ".chamber/sha256/"+key+"/."+version, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var rec map[string]any
	if err := json.NewDecoder(o).Decode(&rec); err != nil {
		t.Fatalf("record of %s: %v", key, err)
	}
	return rec
}

// A multipart object whose record was lost (the Put died after completing
// the upload) gets it rebuilt by the next Stat.
func TestS3RebuildsLostRecord(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	ctx := t.Context()
	raw := s.Client()
	b := make([]byte, evidence.MinPartSize+99)
	rand.Read(b)
	obj, err := s.Put(ctx, "lost/record.bin", bytes.NewReader(b), evidence.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := raw.StatObject(ctx, s.Bucket(), "lost/record.bin", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rk := ".chamber/sha256/lost/record.bin/." + info.VersionID
	ri, err := raw.StatObject(ctx, s.Bucket(), rk, minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("record missing after Put: %v", err)
	}
	if err := raw.RemoveObject(ctx, s.Bucket(), rk, minio.RemoveObjectOptions{VersionID: ri.VersionID}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Stat(ctx, "lost/record.bin")
	if err != nil {
		t.Fatalf("Stat without record: %v", err)
	}
	if got != obj {
		t.Fatalf("Stat = %+v; want %+v", got, obj)
	}
	if rec := readRecordObject(t, s, "lost/record.bin", info.VersionID); rec["recomputed"] != true {
		t.Fatalf("rebuilt record %v lacks recomputed: true", rec)
	}
}

// A failed multipart Put leaves no upload behind.
func TestS3FailedPutLeavesNoUpload(t *testing.T) {
	s, _ := newS3(t, evidence.MinPartSize, "")
	ctx := t.Context()
	boom := errors.New("boom")
	r := &failingReader{data: make([]byte, 2*evidence.MinPartSize+5), err: boom}
	if _, err := s.Put(ctx, "failed/upload.bin", r, evidence.PutOptions{}); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	for u := range s.Client().ListIncompleteUploads(ctx, s.Bucket(), "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("upload left behind: %s %s", u.Key, u.UploadID)
	}
	objs, err := s.List(ctx, "")
	if err != nil || len(objs) != 0 {
		t.Fatalf("List = %v, %v; want nothing", objs, err)
	}
	// Not even a hidden version or delete marker.
	for v := range s.Client().ListObjects(ctx, s.Bucket(), minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		t.Errorf("version left behind: %+v", v)
	}
}

func TestNewS3RefusesBucketWithoutObjectLock(t *testing.T) {
	m := testenv.MinIO(t)
	raw, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := bucketName()
	if err := raw.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = evidence.NewS3(t.Context(), evidence.S3Config{
		Endpoint: m.Endpoint, Bucket: bucket, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Insecure: true,
	})
	if err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("NewS3 on a bucket without Object Lock: %v; want a refusal naming Object Lock", err)
	}
}

func TestNewS3BadConfig(t *testing.T) {
	m := testenv.MinIO(t)
	good := evidence.S3Config{Endpoint: m.Endpoint, Bucket: bucketName(), AccessKey: m.AccessKey, SecretKey: m.SecretKey, Insecure: true}
	for name, mod := range map[string]func(c *evidence.S3Config){
		"no endpoint":        func(c *evidence.S3Config) { c.Endpoint = "" },
		"no bucket":          func(c *evidence.S3Config) { c.Bucket = "" },
		"no secret":          func(c *evidence.S3Config) { c.SecretKey = "" },
		"small parts":        func(c *evidence.S3Config) { c.PartSize = 1 << 20 },
		"bad scheme":         func(c *evidence.S3Config) { c.Endpoint = "ftp://" + m.Endpoint },
		"wrong secret":       func(c *evidence.S3Config) { c.SecretKey = "wrong-secret-key" },
		"bad bucket name":    func(c *evidence.S3Config) { c.Bucket = "Not_A_Bucket" },
		"https and insecure": func(c *evidence.S3Config) { c.Endpoint = "https://" + m.Endpoint },
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			mod(&c)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if _, err := evidence.NewS3(ctx, c); err == nil {
				t.Fatal("NewS3 succeeded")
			} else {
				t.Log(err)
			}
		})
	}
	c := good
	c.Endpoint = "http://" + m.Endpoint
	c.Insecure = false
	if _, err := evidence.NewS3(t.Context(), c); err != nil {
		t.Fatalf("NewS3 with an http:// URL: %v", err)
	}
}

// proxy forwards TCP connections to a target until it is cut; then it
// accepts connections and never answers, like a host that has gone away.
type proxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.cut.Load() {
			continue // hold it open, say nothing
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(up)
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() { io.Copy(c, up); c.Close() })
	}
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) setCut(cut bool) {
	p.cut.Store(cut)
	if cut {
		p.closeAll()
	}
}

func TestS3PingReportsUnreachableServer(t *testing.T) {
	m := testenv.MinIO(t)
	p := newProxy(t, m.Endpoint)
	s, _ := newS3(t, 0, p.ln.Addr().String())
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping through the proxy: %v", err)
	}

	p.setCut(true)
	start := time.Now()
	err := s.Ping(t.Context())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Ping succeeded with the server unreachable")
	}
	t.Logf("Ping with the server unreachable: %v after %v", err, elapsed)
	// Ping must give up on its own rather than hang: a readiness probe
	// calls it without a deadline. The bound is loose on purpose.
	if elapsed > 15*time.Second {
		t.Fatalf("Ping took %v to report an unreachable server", elapsed)
	}

	p.setCut(false)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the server came back: %v", err)
	}

	// A closed port is reported too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := evidence.NewS3(ctx, evidence.S3Config{Endpoint: addr, Bucket: "b-closed", AccessKey: m.AccessKey, SecretKey: m.SecretKey, Insecure: true}); err == nil {
		t.Fatal("NewS3 on a closed port succeeded")
	}
}
