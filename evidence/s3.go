package evidence

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chamber-court/chamber/fault"
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is host:port, or a URL whose scheme chooses http or https.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	// Region defaults to us-east-1.
	Region string
	// Insecure selects plain HTTP.
	Insecure bool
	// PartSize is the size of each part of a multipart upload; one Put
	// holds partsInFlight+1 parts in memory (those uploading and the one
	// being read). Objects smaller than it go up in one PUT.
	// Default DefaultPartSize; at least MinPartSize.
	PartSize int64
	// OpTimeout bounds every request that moves no object data (stat,
	// list, retention, legal hold, delete, starting and completing an
	// upload), the wait for the server's answer to any request, and any
	// pause in sending an object's bytes: a server that is frozen or out
	// of reach fails the operation as fault.Unavailable within about this
	// long instead of holding it for minutes. Default DefaultOpTimeout.
	OpTimeout time.Duration
	// Retries is how many times one request is tried in all when it fails
	// for a reason worth retrying (minio-go's MaxRetries; 1 means no
	// retry). Default DefaultRetries.
	Retries int
	// Logger may be nil.
	Logger *slog.Logger
}

// Defaults for S3Config. Ten tries with minio-go's back-off made a dead
// server take 10–12 s to fail an upload; two tries fail it in well under
// a second while still riding over a single dropped connection.
const (
	DefaultOpTimeout = 10 * time.Second
	DefaultRetries   = 2
)

// Part sizes. S3 refuses parts under 5 MiB (except the last) and allows at
// most 10,000 parts, so the default 8 MiB parts carry objects up to 78 GiB; a
// Put holds partsInFlight+1 parts in memory.
const (
	DefaultPartSize = 8 << 20
	// partsInFlight is how many parts of one Put upload at once.
	partsInFlight = 2
	MinPartSize   = 5 << 20
	MaxPartSize   = 5 << 30
	maxParts      = 10000
)

// S3 is an evidence store in an S3 bucket with Object Lock, reached through
// minio-go.
//
// Every write is conditional (If-None-Match: *), so a key is written once and
// of racing writers exactly one wins; an object is visible only once its
// single PUT or its CompleteMultipartUpload succeeds, and a failed multipart
// upload is aborted. Each PUT and each part carries x-amz-checksum-sha256,
// which the server verifies before accepting the bytes. An object smaller than
// the part size goes up in one PUT, so the server keeps its whole-object
// SHA-256; a larger one is a multipart upload, whose server checksum is a
// checksum of part checksums, so the whole-object SHA-256 computed while
// streaming is written after it to a small write-once record object,
// .chamber/sha256/<key>/.<version id>. Retention is COMPLIANCE mode and,
// like legal holds, applies to the object version.
type S3 struct {
	client    *minio.Client
	core      minio.Core
	upload    minio.Core // for requests that carry object data: no retries
	bucket    string
	partSize  int64
	opTimeout time.Duration
	log       *slog.Logger
	bufs      sync.Pool // *[]byte of partSize
}

var _ Store = (*S3)(nil)

// pingTimeout bounds Ping, which /readyz calls.
const pingTimeout = 2 * time.Second

// The store's own objects live under ".chamber/": keys never start with
// '.', so they cannot clash with an object, and List skips them.
// recordPrefix holds the SHA-256 records of multipart objects,
// probePrefix the short-lived objects of the write probe.
const (
	internalPrefix = ".chamber/"
	recordPrefix   = internalPrefix + "sha256/"
	probePrefix    = internalPrefix + "probe/"
)

// NewS3 connects to the bucket, creating it with Object Lock when missing.
// An existing bucket without Object Lock is refused: retention could not be
// enforced there.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	endpoint, secure, err := parseEndpoint(cfg.Endpoint, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	if cfg.Bucket == "" {
		return nil, errors.New("evidence: S3 bucket not set")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("evidence: S3 access key and secret key must both be set")
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize || partSize > MaxPartSize {
		return nil, fmt.Errorf("evidence: S3 part size %d outside [%d, %d]", partSize, MinPartSize, MaxPartSize)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	opTimeout := cfg.OpTimeout
	if opTimeout <= 0 {
		opTimeout = DefaultOpTimeout
	}
	retries := cfg.Retries
	if retries <= 0 {
		retries = DefaultRetries
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("evidence: S3 transport: %w", err)
	}
	// minio-go's defaults wait 30 s to connect and a minute for an answer.
	transport.DialContext = (&net.Dialer{Timeout: min(opTimeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = opTimeout
	transport.ResponseHeaderTimeout = opTimeout
	opts := minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     secure,
		Region:     region,
		Transport:  transport,
		MaxRetries: retries,
	}
	client, err := minio.New(endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("evidence: S3 client: %w", err)
	}
	// Requests that carry an object's bytes are not retried by minio-go:
	// rewinding a body the transport may still be reading sent MinIO a
	// short body (400 IncompleteBody) instead of the first, true answer
	// (disk full, say). A failed Put fails; its caller retries the Put.
	opts.MaxRetries = 1
	uploader, err := minio.New(endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("evidence: S3 client: %w", err)
	}
	s := &S3{
		client:    client,
		core:      minio.Core{Client: client},
		upload:    minio.Core{Client: uploader},
		bucket:    cfg.Bucket,
		partSize:  partSize,
		opTimeout: opTimeout,
		log:       log.With("store", "s3", "bucket", cfg.Bucket),
	}
	s.bufs.New = func() any { b := make([]byte, partSize); return &b }
	if err := s.ensureBucket(ctx, region); err != nil {
		return nil, err
	}
	return s, nil
}

func parseEndpoint(endpoint string, insecure bool) (host string, secure bool, err error) {
	if endpoint == "" {
		return "", false, errors.New("evidence: S3 endpoint not set")
	}
	if !strings.Contains(endpoint, "://") {
		return endpoint, !insecure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("evidence: S3 endpoint: %w", err)
	}
	if u.Path != "" && u.Path != "/" {
		return "", false, fmt.Errorf("evidence: S3 endpoint %q: a path is not supported", endpoint)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		if insecure {
			return "", false, fmt.Errorf("evidence: S3 endpoint %q is https but plain HTTP was asked for", endpoint)
		}
		return u.Host, true, nil
	default:
		return "", false, fmt.Errorf("evidence: S3 endpoint %q: scheme must be http or https", endpoint)
	}
}

func (s *S3) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("evidence: S3 bucket %s: %w", s.bucket, err)
	}
	if !ok {
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region, ObjectLocking: true})
		if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
			return fmt.Errorf("evidence: create S3 bucket %s: %w", s.bucket, err)
		}
		if err == nil {
			s.log.Info("created evidence bucket with Object Lock")
		}
	}
	lock, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil || lock != "Enabled" {
		return fmt.Errorf("evidence: S3 bucket %s has no Object Lock (%v); evidence needs a bucket created with Object Lock", s.bucket, err)
	}
	return nil
}

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// Client returns the underlying minio-go client, for tools and tests that
// need to look behind the store.
func (s *S3) Client() *minio.Client { return s.client }

// s3Record is the write-once record of a multipart object's whole SHA-256.
type s3Record struct {
	Version   int       `json:"v"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
	VersionID string    `json:"version_id"`
	// Checksum is the x-amz-checksum-sha256 the server reported for the
	// object (for multipart objects "<base64>-<parts>"); Stat compares it
	// with the server's, which ties the record to the bytes.
	Checksum string `json:"checksum_sha256"`
	// Recomputed is set when the record was rebuilt by reading the object
	// back, because the Put that stored it did not live to write it.
	Recomputed bool `json:"recomputed,omitempty"`
}

func recordKey(key, versionID string) string {
	return recordPrefix + key + "/." + versionID
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (obj Object, err error) {
	defer func() {
		observe(opPut, &err)
		if err == nil {
			storeBytes.WithLabelValues(opPut).Add(float64(obj.Size))
		}
	}()
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	retain := roundRetention(opts.RetainUntil)
	if !retain.IsZero() {
		if err := checkNewRetention(time.Time{}, retain, time.Now()); err != nil {
			return Object{}, err
		}
	}
	// Fail fast when the key is taken rather than after streaming what may
	// be gigabytes; the conditional write below is what actually decides.
	if err := s.checkFree(ctx, key); err != nil {
		return Object{}, err
	}

	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	ct := contentType(opts.ContentType)
	created := now()

	n, rerr := readFull(ctx, r, *bp)
	if rerr != nil && rerr != io.EOF {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, rerr)
	}
	var versionID, checksum, sha string
	var size int64
	if rerr == io.EOF {
		data := (*bp)[:n]
		sum := sha256.Sum256(data)
		sha, size = hex.EncodeToString(sum[:]), int64(n)
		versionID, checksum, err = s.putSingle(ctx, key, data, sum, ct, created, retain)
	} else {
		versionID, checksum, sha, size, err = s.putMultipart(ctx, key, r, *bp, n, ct, created, retain)
	}
	if err != nil {
		return Object{}, err
	}
	obj = Object{
		Key:         key,
		Size:        size,
		SHA256:      sha,
		ContentType: ct,
		Created:     created,
		RetainUntil: retain,
	}
	if isComposite(checksum) {
		// The object is stored and cannot be taken back; record its SHA-256
		// even if the caller has gone.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opTimeout)
		defer cancel()
		rec := s3Record{Version: 1, SHA256: obj.SHA256, Size: obj.Size, Created: created, VersionID: versionID, Checksum: checksum}
		if _, err := s.writeRecord(rctx, key, rec); err != nil {
			s.log.Error("evidence object stored but its SHA-256 record was not; Stat will recompute it",
				"key", key, "version", versionID, "err", err)
			return Object{}, fmt.Errorf("evidence: put %s: stored, but recording its SHA-256 failed (Stat will recompute it): %w", key, err)
		}
	}
	return obj, nil
}

// readFull fills buf from r unless r ends (io.EOF, possibly with n > 0),
// fails, or ctx ends.
func readFull(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, io.EOF
		}
		if err != nil {
			return n, readError{err}
		}
	}
	return n, ctx.Err()
}

// lockOptions sets the object's content type and, when asked, its
// COMPLIANCE retention as part of the write.
func lockOptions(ct string, created, retain time.Time) minio.PutObjectOptions {
	o := minio.PutObjectOptions{
		ContentType:  ct,
		UserMetadata: map[string]string{createdMeta: created.Format(time.RFC3339Nano)},
	}
	if !retain.IsZero() {
		o.Mode = minio.Compliance
		o.RetainUntilDate = retain
	}
	return o
}

func checksumOf(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// putSingle stores a small object with one conditional PUT carrying its
// SHA-256, which the server checks and keeps as the object's checksum.
func (s *S3) putSingle(ctx context.Context, key string, data []byte, sha [sha256.Size]byte, ct string, created, retain time.Time) (versionID, checksum string, err error) {
	sum := base64.StdEncoding.EncodeToString(sha[:])
	o := lockOptions(ct, created, retain)
	o.UserMetadata["x-amz-checksum-sha256"] = sum
	o.DisableContentSha256 = true // the checksum header, which is signed, covers the body
	o.SetMatchETagExcept("*")
	var info minio.UploadInfo
	err = s.guarded(ctx, data, func(ctx context.Context, body io.Reader) (err error) {
		info, err = s.upload.PutObject(ctx, s.bucket, key, body, int64(len(data)), "", "", o)
		return err
	})
	if err != nil {
		if isPrecondition(err) {
			return "", "", fmt.Errorf("%w: %s", ErrExists, key)
		}
		return "", "", fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if info.ChecksumSHA256 != "" && info.ChecksumSHA256 != sum {
		// Cannot happen with a server that checks what it is sent; if it
		// does, say so loudly rather than record a wrong hash.
		return "", "", fmt.Errorf("%w: %s: server reports checksum %s, sent %s", ErrCorrupt, key, info.ChecksumSHA256, sum)
	}
	return info.VersionID, sum, nil
}

// putMultipart uploads the object in parts of len(buf), the first n bytes of
// which are already in buf, and completes the upload only if the key is
// still free. It returns the version, the server's composite checksum, and
// the whole object's SHA-256 and size. Any failure aborts the upload, so
// nothing remains.
//
// Part buffers rotate: while partsInFlight parts upload, the next is read
// and hashed into another buffer, so the client's hashing overlaps the
// network and the server's work. That bounds memory at partsInFlight+1
// parts per Put.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, buf []byte, n int, ct string, created, retain time.Time) (versionID, checksum, sha string, size int64, err error) {
	fail := func(err error) (string, string, string, int64, error) { return "", "", "", 0, err }
	uploadID, err := s.startMultipart(ctx, key, ct, created, retain)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			s.abortMultipart(ctx, key, uploadID)
		}
	}()
	bufs, release := s.partBuffers(buf)
	defer release()
	m := s.newMultipart(ctx, key, uploadID)
	// On failure, stop the parts in flight and wait for them (they use
	// the buffers) before the buffers go back and the upload is aborted.
	defer m.stop()
	if err := m.sendAll(ctx, r, bufs, n); err != nil {
		return fail(err)
	}
	if err := m.wait(); err != nil {
		return fail(err)
	}
	// Last chance to give up: after completion the object exists.
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("evidence: put %s: %w", key, err))
	}
	versionID, checksum, err = m.complete(ctx)
	if err != nil {
		return fail(err)
	}
	return versionID, checksum, hex.EncodeToString(m.whole.Sum(nil)), m.size, nil
}

// startMultipart starts a multipart upload of key, with its retention.
func (s *S3) startMultipart(ctx context.Context, key, ct string, created, retain time.Time) (string, error) {
	o := lockOptions(ct, created, retain)
	o.UserMetadata["x-amz-checksum-algorithm"] = "SHA256"
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	uploadID, err := s.core.NewMultipartUpload(octx, s.bucket, key, o)
	if err != nil {
		return "", fmt.Errorf("evidence: put %s: start upload: %w", key, err)
	}
	return uploadID, nil
}

// abortMultipart aborts a failed upload, with a fresh timeout: the
// caller's context may be what ended it.
func (s *S3) abortMultipart(ctx context.Context, key, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opTimeout)
	defer cancel()
	if aerr := s.core.AbortMultipartUpload(actx, s.bucket, key, uploadID); aerr != nil {
		s.log.Error("aborting a failed upload failed; its parts stay hidden until the server expires them",
			"key", key, "upload", uploadID, "err", aerr)
	}
}

// partBuffers returns buf and partsInFlight spare buffers from the pool,
// and the function that gives the spares back.
//
// partsInFlight parts upload at once while the next is read and hashed
// into one more buffer: memory is bounded at partsInFlight+1 parts per
// Put, and the buffer a part was read into is not reused before that part
// has uploaded (the oldest upload is waited for before a new one starts).
func (s *S3) partBuffers(buf []byte) (bufs [][]byte, release func()) {
	bufs = [][]byte{buf}
	var spares []*[]byte
	for range partsInFlight {
		spare := s.bufs.Get().(*[]byte)
		spares = append(spares, spare)
		bufs = append(bufs, *spare)
	}
	return bufs, func() {
		for _, spare := range spares {
			s.bufs.Put(spare)
		}
	}
}

// multipart is one multipart upload under way: its parts in flight and
// uploaded, and the hashes of what was sent.
type multipart struct {
	s             *S3
	key, uploadID string
	partsCtx      context.Context // the parts' own, cancelled by stop
	cancelParts   context.CancelFunc
	inflight      []chan uploadedPart // oldest first
	parts         []minio.CompletePart
	whole         hash.Hash // the whole object's SHA-256
	partSums      hash.Hash // the SHA-256 of the parts' checksums, S3's composite checksum
	size          int64
}

// uploadedPart is how one part's upload ended.
type uploadedPart struct {
	part minio.CompletePart
	err  error
}

func (s *S3) newMultipart(ctx context.Context, key, uploadID string) *multipart {
	pctx, cancel := context.WithCancel(ctx)
	return &multipart{s: s, key: key, uploadID: uploadID, partsCtx: pctx, cancelParts: cancel,
		whole: sha256.New(), partSums: sha256.New()}
}

// sendAll sends the n bytes already in bufs[0] as part 1, then reads and
// sends the rest of r part by part, rotating through bufs.
func (m *multipart) sendAll(ctx context.Context, r io.Reader, bufs [][]byte, n int) error {
	cur, eof := 0, false
	for num := 1; ; num++ {
		if num > maxParts {
			return fmt.Errorf("evidence: put %s: larger than %d parts of %d bytes", m.key, maxParts, len(bufs[0]))
		}
		if err := m.send(num, bufs[cur][:n]); err != nil {
			return err
		}
		if eof {
			return nil
		}
		cur = (cur + 1) % len(bufs)
		var rerr error
		n, rerr = readFull(ctx, r, bufs[cur])
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("evidence: put %s: %w", m.key, rerr)
		}
		eof = rerr == io.EOF
		if n == 0 {
			return nil // the previous part ended exactly at the end
		}
	}
}

// send hashes part num and starts its upload, once fewer than
// partsInFlight parts are in flight.
func (m *multipart) send(num int, data []byte) error {
	sum := hashPart(m.whole, data)
	m.size += int64(len(data))
	m.partSums.Write(sum[:])
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	if len(m.inflight) == partsInFlight {
		if err := m.waitOldest(); err != nil {
			return err
		}
	}
	ch := make(chan uploadedPart, 1)
	m.inflight = append(m.inflight, ch)
	go func() {
		var part minio.ObjectPart
		err := m.s.guarded(m.partsCtx, data, func(ctx context.Context, body io.Reader) (err error) {
			part, err = m.s.upload.PutObjectPart(ctx, m.s.bucket, m.key, m.uploadID, num, body, int64(len(data)),
				minio.PutObjectPartOptions{
					CustomHeader:         http.Header{"X-Amz-Checksum-Sha256": {b64}},
					DisableContentSha256: true, // the checksum header, which is signed, covers the body
				})
			return err
		})
		ch <- uploadedPart{minio.CompletePart{PartNumber: num, ETag: part.ETag, ChecksumSHA256: b64}, err}
	}()
	return nil
}

// waitOldest waits for the oldest part in flight.
func (m *multipart) waitOldest() error {
	u := <-m.inflight[0]
	m.inflight = m.inflight[1:]
	if u.err != nil {
		return fmt.Errorf("evidence: put %s: part %d: %w", m.key, len(m.parts)+1, u.err)
	}
	m.parts = append(m.parts, u.part)
	return nil
}

// wait waits for every part in flight.
func (m *multipart) wait() error {
	for len(m.inflight) > 0 {
		if err := m.waitOldest(); err != nil {
			return err
		}
	}
	return nil
}

// stop cancels the parts still in flight and waits for them.
func (m *multipart) stop() {
	m.cancelParts()
	for _, ch := range m.inflight {
		<-ch
	}
}

// complete assembles the uploaded parts into the object, only if the key
// is still free, and checks the server's composite checksum.
func (m *multipart) complete(ctx context.Context) (versionID, checksum string, err error) {
	co := minio.PutObjectOptions{}
	co.SetMatchETagExcept("*")
	// Assembling many parts takes the server a while: twice the budget.
	cctx, cancel := context.WithTimeout(ctx, 2*m.s.opTimeout)
	defer cancel()
	info, err := m.s.core.CompleteMultipartUpload(cctx, m.s.bucket, m.key, m.uploadID, m.parts, co)
	if err != nil {
		if isPrecondition(err) {
			return "", "", fmt.Errorf("%w: %s", ErrExists, m.key)
		}
		return "", "", fmt.Errorf("evidence: put %s: complete upload: %w", m.key, err)
	}
	want := base64.StdEncoding.EncodeToString(m.partSums.Sum(nil)) + "-" + strconv.Itoa(len(m.parts))
	if info.ChecksumSHA256 != "" && info.ChecksumSHA256 != want {
		return "", "", fmt.Errorf("%w: %s: server reports checksum %s, expected %s", ErrCorrupt, m.key, info.ChecksumSHA256, want)
	}
	return info.VersionID, want, nil
}

// hashPart returns the SHA-256 of data and feeds data to whole, the two on
// separate cores.
func hashPart(whole hash.Hash, data []byte) [sha256.Size]byte {
	done := make(chan struct{})
	go func() {
		whole.Write(data)
		close(done)
	}()
	sum := sha256.Sum256(data)
	<-done
	return sum
}

// isComposite reports whether an S3 checksum is a checksum of part checksums
// ("<base64>-<parts>") rather than of the whole object.
func isComposite(checksum string) bool { return strings.Contains(checksum, "-") }

// writeRecord stores rec write-once. When a record is already there (a
// reader rebuilt it first) it is returned if it agrees.
func (s *S3) writeRecord(ctx context.Context, key string, rec s3Record) (s3Record, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return s3Record{}, err
	}
	rk := recordKey(key, rec.VersionID)
	o := minio.PutObjectOptions{
		ContentType:          "application/json",
		UserMetadata:         map[string]string{"x-amz-checksum-sha256": checksumOf(b)},
		DisableContentSha256: true,
	}
	o.SetMatchETagExcept("*")
	_, err = s.core.PutObject(ctx, s.bucket, rk, bytes.NewReader(b), int64(len(b)), "", "", o)
	if err == nil {
		return rec, nil
	}
	if !isPrecondition(err) {
		return s3Record{}, err
	}
	have, err := s.readRecord(ctx, key, rec.VersionID)
	if err != nil {
		return s3Record{}, err
	}
	if have.SHA256 != rec.SHA256 || have.Size != rec.Size {
		return s3Record{}, fmt.Errorf("%w: %s: two different SHA-256 records for version %s", ErrCorrupt, key, rec.VersionID)
	}
	return have, nil
}

func (s *S3) readRecord(ctx context.Context, key, versionID string) (s3Record, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	body, _, _, err := s.core.GetObject(ctx, s.bucket, recordKey(key, versionID), minio.GetObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return s3Record{}, fmt.Errorf("%w: SHA-256 record of %s", ErrNotFound, key)
		}
		return s3Record{}, fmt.Errorf("evidence: %s: SHA-256 record: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxRecordBytes+1))
	if err != nil {
		return s3Record{}, fmt.Errorf("evidence: %s: SHA-256 record: %w", key, err)
	}
	var rec s3Record
	if len(b) > maxRecordBytes {
		return s3Record{}, fmt.Errorf("%w: %s: SHA-256 record too large", ErrCorrupt, key)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return s3Record{}, fmt.Errorf("%w: %s: SHA-256 record: %v", ErrCorrupt, key, err)
	}
	if rec.Version != 1 || !validSHA256Hex(rec.SHA256) || rec.VersionID != versionID {
		return s3Record{}, fmt.Errorf("%w: %s: malformed SHA-256 record", ErrCorrupt, key)
	}
	return rec, nil
}

// recompute rebuilds the record of a multipart object whose Put did not live
// to write it, by reading the object back.
func (s *S3) recompute(ctx context.Context, key string, info minio.ObjectInfo) (s3Record, error) {
	s.log.Warn("evidence SHA-256 record missing; reading the object back to rebuild it", "key", key, "version", info.VersionID)
	body, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{VersionID: info.VersionID})
	if err != nil {
		return s3Record{}, fmt.Errorf("evidence: %s: rebuild SHA-256: %w", key, err)
	}
	defer body.Close()
	h := newHasher()
	if _, err := io.Copy(h, body); err != nil {
		return s3Record{}, fmt.Errorf("evidence: %s: rebuild SHA-256: %w", key, err)
	}
	if h.n != info.Size {
		return s3Record{}, fmt.Errorf("%w: %s: read %d bytes, server says %d", ErrCorrupt, key, h.n, info.Size)
	}
	rec := s3Record{
		Version:    1,
		SHA256:     h.hex(),
		Size:       h.n,
		Created:    createdTime(info),
		VersionID:  info.VersionID,
		Checksum:   info.ChecksumSHA256,
		Recomputed: true,
	}
	return s.writeRecord(ctx, key, rec)
}

// head returns the server's view of the current version of key.
func (s *S3) head(ctx context.Context, key string) (minio.ObjectInfo, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		if isNotFound(err) {
			return minio.ObjectInfo{}, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return minio.ObjectInfo{}, fmt.Errorf("evidence: %s: %w", key, err)
	}
	if info.IsDeleteMarker {
		return minio.ObjectInfo{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return info, nil
}

// describe combines the server's view of an object with its SHA-256: the
// server's own full-object checksum for single-PUT objects, the record for
// multipart ones.
func (s *S3) describe(ctx context.Context, key string, info minio.ObjectInfo) (Object, error) {
	obj := Object{
		Key:         key,
		Size:        info.Size,
		ContentType: info.ContentType,
		Created:     info.LastModified.UTC(),
		LegalHold:   info.Metadata.Get("X-Amz-Object-Lock-Legal-Hold") == string(minio.LegalHoldEnabled),
	}
	if d := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); d != "" {
		t, err := time.Parse(time.RFC3339Nano, d)
		if err != nil {
			return Object{}, fmt.Errorf("evidence: %s: retention date %q: %w", key, d, err)
		}
		obj.RetainUntil = t.UTC()
	}
	switch c := info.ChecksumSHA256; {
	case c == "":
		return Object{}, fmt.Errorf("%w: %s: the server keeps no SHA-256 checksum for it (not written by this store?)", ErrCorrupt, key)
	case !isComposite(c):
		sum, err := base64.StdEncoding.DecodeString(c)
		if err != nil || len(sum) != sha256.Size {
			return Object{}, fmt.Errorf("%w: %s: checksum %q", ErrCorrupt, key, c)
		}
		obj.SHA256 = hex.EncodeToString(sum)
		obj.Created = createdTime(info)
		return obj, nil
	}
	rec, err := s.readRecord(ctx, key, info.VersionID)
	if errors.Is(err, ErrNotFound) {
		rec, err = s.recompute(ctx, key, info)
	}
	if err != nil {
		return Object{}, err
	}
	if rec.Size != info.Size || (rec.Checksum != "" && rec.Checksum != info.ChecksumSHA256) {
		return Object{}, fmt.Errorf("%w: %s: server reports %d bytes, checksum %s; record says %d bytes, %s",
			ErrCorrupt, key, info.Size, info.ChecksumSHA256, rec.Size, rec.Checksum)
	}
	obj.SHA256 = rec.SHA256
	obj.Created = rec.Created
	return obj, nil
}

// createdMeta is the user metadata (x-amz-meta-chamber-created) holding the
// creation time at microsecond precision; Last-Modified has only seconds.
const createdMeta = "Chamber-Created"

func createdTime(info minio.ObjectInfo) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, info.UserMetadata[createdMeta]); err == nil {
		return t.UTC()
	}
	return info.LastModified.UTC()
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (obj Object, err error) {
	defer observe(opStat, &err)
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return Object{}, err
	}
	return s.describe(ctx, key, info)
}

// Open implements Store. It reads the version that Stat described, so a
// later version (which this store never writes) cannot slip in.
func (s *S3) Open(ctx context.Context, key string) (_ Reader, obj Object, err error) {
	defer observe(opGet, &err)
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return nil, Object{}, err
	}
	obj, err = s.describe(ctx, key, info)
	if err != nil {
		return nil, Object{}, err
	}
	o, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{VersionID: info.VersionID})
	if err != nil {
		return nil, Object{}, fmt.Errorf("evidence: open %s: %w", key, err)
	}
	return &countingReader{r: o}, obj, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string, offset, length int64) (_ io.ReadCloser, err error) {
	defer observe(opGet, &err)
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := checkRange(offset, length, info.Size)
	if err != nil {
		return nil, fmt.Errorf("evidence: get %s: %w", key, err)
	}
	if n == 0 {
		// S3 cannot express an empty range.
		return io.NopCloser(strings.NewReader("")), nil
	}
	o := minio.GetObjectOptions{VersionID: info.VersionID}
	if offset != 0 || n != info.Size {
		if err := o.SetRange(offset, offset+n-1); err != nil {
			return nil, fmt.Errorf("evidence: get %s: %w", key, err)
		}
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, key, o)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("evidence: get %s: %w", key, err)
	}
	return countingReadCloser{Reader: body, Closer: body}, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) (objs []Object, err error) {
	defer observe(opList, &err)
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	for info := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, fmt.Errorf("evidence: list %q: %w", prefix, info.Err)
		}
		if strings.HasPrefix(info.Key, internalPrefix) {
			continue
		}
		if ValidateKey(info.Key) != nil {
			s.log.Warn("ignoring an object whose key this store would not write", "key", info.Key)
			continue
		}
		keys = append(keys, info.Key)
	}
	slices.Sort(keys)
	objs = make([]Object, 0, len(keys))
	for _, key := range keys {
		info, err := s.head(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("evidence: list %q: %w", prefix, err)
		}
		obj, err := s.describe(ctx, key, info)
		if err != nil {
			return nil, fmt.Errorf("evidence: list %q: %w", prefix, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// Retain implements Store.
func (s *S3) Retain(ctx context.Context, key string, until time.Time) (err error) {
	defer observe(opRetain, &err)
	if err := ValidateKey(key); err != nil {
		return err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return err
	}
	obj, err := s.describe(ctx, key, info)
	if err != nil {
		return err
	}
	until = roundRetention(until)
	if err := checkNewRetention(obj.RetainUntil, until, time.Now()); err != nil {
		return fmt.Errorf("evidence: retain %s: %w", key, err)
	}
	if until.Equal(obj.RetainUntil) {
		return nil
	}
	mode := minio.Compliance
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err = s.client.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{
		Mode:            &mode,
		RetainUntilDate: &until,
		VersionID:       info.VersionID,
	})
	if err != nil {
		return fmt.Errorf("evidence: retain %s: %w", key, err)
	}
	return nil
}

// LegalHold implements Store.
func (s *S3) LegalHold(ctx context.Context, key string, on bool) (err error) {
	defer observe(opLegalHold, &err)
	if err := ValidateKey(key); err != nil {
		return err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err = s.client.PutObjectLegalHold(ctx, s.bucket, key, minio.PutObjectLegalHoldOptions{
		VersionID: info.VersionID,
		Status:    &status,
	})
	if err != nil {
		return fmt.Errorf("evidence: legal hold %s: %w", key, err)
	}
	return nil
}

// Delete implements Store. It removes the object version itself (not just
// hiding it behind a delete marker); the server refuses while retention or a
// legal hold applies.
func (s *S3) Delete(ctx context.Context, key string) (err error) {
	defer observe(opDelete, &err)
	if err := ValidateKey(key); err != nil {
		return err
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err = s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: info.VersionID})
	if err != nil {
		// The server is the authority; ask it why.
		if now, herr := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{VersionID: info.VersionID}); herr == nil {
			hold := now.Metadata.Get("X-Amz-Object-Lock-Legal-Hold") == string(minio.LegalHoldEnabled)
			until, _ := time.Parse(time.RFC3339Nano, now.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
			if hold || time.Now().Before(until) {
				return fmt.Errorf("%w: %s: %w", ErrRetained, key, err)
			}
		}
		return fmt.Errorf("evidence: delete %s: %w", key, err)
	}
	if isComposite(info.ChecksumSHA256) {
		s.removeRecord(ctx, key, info.VersionID)
	}
	return nil
}

// removeRecord deletes the SHA-256 record of a deleted version. A leftover
// record is harmless (it names a version that no longer exists), so failure
// is only logged.
func (s *S3) removeRecord(ctx context.Context, key, versionID string) {
	rk := recordKey(key, versionID)
	ri, err := s.client.StatObject(ctx, s.bucket, rk, minio.StatObjectOptions{})
	if err == nil {
		err = s.client.RemoveObject(ctx, s.bucket, rk, minio.RemoveObjectOptions{VersionID: ri.VersionID})
	}
	if err != nil && !isNotFound(err) {
		s.log.Warn("could not remove the SHA-256 record of a deleted object", "key", key, "err", err)
	}
}

// Ping implements Store: the bucket must answer within pingTimeout.
func (s *S3) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return classify(fmt.Errorf("evidence: S3 %s: %w", s.client.EndpointURL().Host, err))
	}
	if !ok {
		return fmt.Errorf("evidence: S3 bucket %s is gone", s.bucket)
	}
	return nil
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case minio.NoSuchKey, "NoSuchVersion":
		return true
	case minio.NoSuchBucket:
		return false
	}
	return r.StatusCode == http.StatusNotFound
}

func isPrecondition(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "PreconditionFailed" || r.StatusCode == http.StatusPreconditionFailed
}

// Probe implements Store: a small object is written to the bucket (with
// its checksum, as every Put) and its version deleted again. A server that
// answers but cannot store — full, read-only, lost its write quorum —
// fails here while Ping still succeeds.
func (s *S3) Probe(ctx context.Context) (err error) {
	defer func() { err = classify(err) }()
	key := probePrefix + rand.Text()
	data := probeData()
	o := minio.PutObjectOptions{
		UserMetadata:         map[string]string{"x-amz-checksum-sha256": checksumOf(data)},
		DisableContentSha256: true,
	}
	var info minio.UploadInfo
	err = s.guarded(ctx, data, func(ctx context.Context, body io.Reader) (err error) {
		info, err = s.upload.PutObject(ctx, s.bucket, key, body, int64(len(data)), "", "", o)
		return err
	})
	if err != nil {
		return fmt.Errorf("evidence: S3 write probe: %w", err)
	}
	ctx, cancel := s.opCtx(context.WithoutCancel(ctx))
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
		s.log.Warn("could not remove the write probe's object", "key", key, "err", err)
	}
	return nil
}

// checkFree reports ErrExists when key holds an object.
func (s *S3) checkFree(ctx context.Context, key string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrExists, key)
	case isNotFound(err):
		return nil
	}
	return fmt.Errorf("evidence: put %s: %w", key, err)
}

// opCtx bounds one request that moves no object data.
func (s *S3) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

// errStalled is why a data request was cancelled: nobody read its body
// for the operation timeout.
var errStalled = errors.New("evidence: the S3 server stopped taking data")

// guarded runs one request that sends data, cancelling it when the body
// has not been read for the operation timeout — a frozen server, or a
// network gone dark — which also bounds the wait for the answer after the
// last byte. A stalled request is fault.Unavailable.
func (s *S3) guarded(ctx context.Context, data []byte, do func(ctx context.Context, body io.Reader) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body := &guardedBody{r: bytes.NewReader(data), timeout: s.opTimeout}
	body.timer = time.AfterFunc(s.opTimeout, func() { cancel(errStalled) })
	defer body.timer.Stop()
	err := do(ctx, body)
	body.close()
	if err != nil && errors.Is(context.Cause(ctx), errStalled) {
		return fault.Wrap(fault.Unavailable, fmt.Errorf("%w: %w", errStalled, err), "the evidence store stopped answering; retry")
	}
	return err
}

// guardedBody is a request body whose every Read pushes its stall timer
// back. It is seekable, so minio-go may still retry the request, and it
// deliberately has no WriteTo, so the HTTP client reads it in small
// chunks and the timer sees the progress.
//
// The HTTP client may go on reading a request's body after the answer has
// come back (a server that refuses early); close makes such late reads
// fail rather than read a buffer the Put has already reused.
type guardedBody struct {
	timer   *time.Timer
	timeout time.Duration

	mu     sync.Mutex
	r      *bytes.Reader
	closed bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errBodyClosed
	}
	g.timer.Reset(g.timeout)
	return g.r.Read(p)
}

func (g *guardedBody) Seek(offset int64, whence int) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errBodyClosed
	}
	return g.r.Seek(offset, whence)
}

func (g *guardedBody) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

var errBodyClosed = errors.New("evidence: request body read after its request ended")
