// Package evidence is Chamber's write-once evidence store.
//
// Everything a hearing or a notarial act produces — uploaded documents,
// signed versions, recordings, bundles — is kept as an object under a
// slash-separated key such as sessions/<uuid>/documents/<uuid>/v1.pdf. A key
// is written once and never changed: a second Put fails with ErrExists. An
// object becomes visible only when it is complete, its SHA-256 is computed
// while it streams in, and retention and legal holds stop it from being
// deleted.
//
// Two implementations share one contract (see the evidencetest package): Local
// keeps objects in a directory, S3 keeps them in an S3 bucket with Object Lock
// (MinIO in development and tests). docs/evidence.md describes both.
package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Both stores wrap them with %w, so callers test with errors.Is.
var (
	// ErrExists reports a Put to a key that already holds an object.
	ErrExists = errors.New("evidence: object already exists")
	// ErrNotFound reports a key that holds no (complete) object.
	ErrNotFound = errors.New("evidence: object not found")
	// ErrRetained reports a Delete refused because retention or a legal
	// hold still applies.
	ErrRetained = errors.New("evidence: object is under retention or legal hold")
	// ErrInvalidKey reports a key or prefix that breaks the key rules
	// (see ValidateKey).
	ErrInvalidKey = errors.New("evidence: invalid key")
	// ErrInvalidRetention reports a retention date that would shorten an
	// existing retention, or that is not in the future.
	ErrInvalidRetention = errors.New("evidence: invalid retention")
	// ErrInvalidRange reports a Get whose offset lies outside the object.
	ErrInvalidRange = errors.New("evidence: invalid range")
	// ErrCorrupt reports an object whose stored bytes no longer match what
	// the store recorded when it was written (size or checksum).
	ErrCorrupt = errors.New("evidence: object does not match its record")
)

// Object describes a stored object.
type Object struct {
	Key         string
	Size        int64
	SHA256      string // lower-case hex of the whole object
	ContentType string
	Created     time.Time // UTC, microseconds
	RetainUntil time.Time // zero when no retention; whole seconds, UTC
	LegalHold   bool
}

// PutOptions are the optional parts of a Put.
type PutOptions struct {
	// ContentType is stored with the object; empty means
	// application/octet-stream.
	ContentType string
	// RetainUntil, when set, puts the object under retention as part of the
	// write itself, so it is never visible without it. It is rounded up to a
	// whole second and must lie in the future.
	RetainUntil time.Time
}

// Reader is an open object: random access for http.ServeContent (byte
// ranges) and PDF parsing.
type Reader interface {
	io.ReadSeekCloser
	io.ReaderAt
}

// Store is the evidence store. Implementations are safe for concurrent use.
type Store interface {
	// Put stores the bytes of r under key, streaming them, and returns the
	// stored object. It fails with ErrExists when key is taken; when it
	// fails for any reason (r fails, ctx ends, the backend fails) nothing
	// becomes visible under key.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Object, error)
	// Open opens the object for random access. Close the Reader.
	Open(ctx context.Context, key string) (Reader, Object, error)
	// Get returns length bytes from offset; length < 0 reads to the end.
	// A range running past the end is cut at the end; an offset past the
	// end is ErrInvalidRange.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes the object.
	Stat(ctx context.Context, key string) (Object, error)
	// List describes every object whose key starts with prefix, sorted by
	// key. The empty prefix lists everything.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Retain sets or extends the object's retention. Shortening it, or a
	// date that is not in the future, is ErrInvalidRetention.
	Retain(ctx context.Context, key string, until time.Time) error
	// LegalHold places or lifts a legal hold.
	LegalHold(ctx context.Context, key string, on bool) error
	// Delete removes the object; ErrRetained while retention or a legal
	// hold applies.
	Delete(ctx context.Context, key string) error
	// Ping reports whether the store answers, within a short time.
	Ping(ctx context.Context) error
	// Probe writes a small object where no key can reach it and removes
	// it again: it fails when the store answers but cannot store (a full
	// disk is fault.InsufficientStorage). Readiness runs it periodically.
	Probe(ctx context.Context) error
}

// Key limits. A segment stays well under the 255-byte file name limit of
// common file systems because the local store adds a prefix and suffix for
// its temporary and record files; a key stays under S3's 1024 bytes because
// the S3 store adds a prefix and a version for its SHA-256 records.
const (
	MaxKeyLen     = 900
	MaxSegmentLen = 200
)

// ValidateKey reports whether key is acceptable: 1 to MaxKeyLen bytes of
// UTF-8, slash-separated segments that are non-empty, at most MaxSegmentLen
// bytes, do not start with '.' (which rules out "." and ".." and keeps names
// free for the stores' own files), and contain no control characters or
// backslashes. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validateSegment(seg); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidKey, key, err)
		}
	}
	return nil
}

func validateSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty segment (leading, trailing or double slash)")
	case len(seg) > MaxSegmentLen:
		return fmt.Errorf("segment longer than %d bytes", MaxSegmentLen)
	case seg[0] == '.':
		return errors.New("segment starts with '.'")
	}
	for _, r := range seg {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\\' {
			return fmt.Errorf("forbidden character %U", r)
		}
	}
	return nil
}

// validatePrefix accepts "" or a key with an optional trailing slash, so that
// a prefix may stop in the middle of a segment ("sessions/ab") or at a
// boundary ("sessions/").
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

// roundRetention rounds t up to a whole second in UTC: S3 keeps retention
// dates to the second, and rounding down would shorten the protection asked
// for.
func roundRetention(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	t = t.UTC()
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

// checkNewRetention validates a retention date (already rounded) against the
// current one and the clock.
func checkNewRetention(current, until, now time.Time) error {
	if until.IsZero() {
		return fmt.Errorf("%w: zero date", ErrInvalidRetention)
	}
	if !until.After(now) {
		return fmt.Errorf("%w: %s is not in the future", ErrInvalidRetention, until.Format(time.RFC3339))
	}
	if until.Before(current) {
		return fmt.Errorf("%w: %s would shorten the retention until %s", ErrInvalidRetention,
			until.Format(time.RFC3339), current.Format(time.RFC3339))
	}
	return nil
}

// checkRange validates offset and length against size and returns the
// number of bytes to read.
func checkRange(offset, length, size int64) (int64, error) {
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: offset %d, size %d", ErrInvalidRange, offset, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}

const defaultContentType = "application/octet-stream"

func contentType(s string) string {
	if s == "" {
		return defaultContentType
	}
	return s
}

// now is the store clock: UTC, truncated to the microsecond like every time
// Chamber stores.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Verify reads the whole object back and checks its size and SHA-256 against
// what the store recorded; a mismatch is ErrCorrupt.
func Verify(ctx context.Context, s Store, key string) (Object, error) {
	r, obj, err := s.Open(ctx, key)
	if err != nil {
		return Object{}, err
	}
	defer r.Close()
	h := newHasher()
	n, err := io.Copy(h, r)
	if err != nil {
		return obj, fmt.Errorf("evidence: verify %s: %w", key, err)
	}
	if sum := h.hex(); n != obj.Size || sum != obj.SHA256 {
		return obj, fmt.Errorf("%w: %s: read %d bytes with SHA-256 %s, recorded %d bytes with %s",
			ErrCorrupt, key, n, sum, obj.Size, obj.SHA256)
	}
	return obj, nil
}

// probeSize is what a write probe writes: more than a directory entry, so
// that a file system with inodes but no free blocks fails it.
const probeSize = 64 << 10

func probeData() []byte { return make([]byte, probeSize) }
