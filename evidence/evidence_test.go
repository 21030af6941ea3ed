package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"

	"github.com/chamber-court/chamber/fault"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"sessions/5f0c9a1e-6c1b-4d3e-9a57-0e0c8f1d2b3a/documents/0e0c8f1d/v1.pdf", true},
		{"a", true},
		{"a/b/c", true},
		{"name with spaces/émigré.pdf", true},
		{"v1..pdf", true},
		{"a/b.", true},
		{"x" + strings.Repeat("y", MaxSegmentLen-1), true},
		{"", false},
		{"/", false},
		{"/abs", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"../a", false},
		{"a/..", false},
		{"a/../b", false},
		{"a/./b", false},
		{".hidden", false},
		{"a/.meta", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\u0080b", false},
		{"a\u009fb", false},
		{"a\\b", false},
		{"bad\xffutf8", false},
		{strings.Repeat("y", MaxSegmentLen+1), false},
		{strings.Repeat("abcdefgh/", 120) + "x", false},
	} {
		err := ValidateKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("ValidateKey(%q) = %v; want nil", tc.key, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v; want ErrInvalidKey", tc.key, err)
		}
	}
}

// FuzzValidateKey checks that every key ValidateKey accepts is safe to use as
// a path below a directory and as an S3 object name.
func FuzzValidateKey(f *testing.F) {
	for _, k := range []string{
		"sessions/5f0c9a1e-6c1b-4d3e-9a57-0e0c8f1d2b3a/documents/0e0c8f1d/v1.pdf",
		"sessions/x/recordings/room-1/part-0001.webm", "a/../b", "/etc/passwd", "a\\..\\b",
		"..", ".a", "a//b", "émigré", "\x00", "a/b\u0085",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		if len(key) == 0 || len(key) > MaxKeyLen || !utf8.ValidString(key) {
			t.Fatalf("accepted %q: bad length or encoding", key)
		}
		if path.Clean(key) != key || path.IsAbs(key) || strings.HasPrefix(key, "../") || key == ".." {
			t.Fatalf("accepted %q: not a clean relative path", key)
		}
		root := "/srv/evidence"
		if full := filepath.Join(root, filepath.FromSlash(key)); !strings.HasPrefix(full, root+"/") {
			t.Fatalf("accepted %q: escapes the root as %s", key, full)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' || len(seg) > MaxSegmentLen {
				t.Fatalf("accepted %q: segment %q", key, seg)
			}
		}
		for _, r := range key {
			if r < 0x20 || r == 0x7f || r == '\\' {
				t.Fatalf("accepted %q: character %U", key, r)
			}
		}
		if strings.HasPrefix(key, recordPrefix) {
			t.Fatalf("accepted %q inside the record prefix", key)
		}
	})
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "sessions/5f", "a/b/"} {
		if err := validatePrefix(p); err != nil {
			t.Errorf("validatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "/a", "a//", "../", ".x", "a/.", "a\x00"} {
		if err := validatePrefix(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("validatePrefix(%q) = %v; want ErrInvalidKey", p, err)
		}
	}
}

func TestRoundRetention(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct{ in, want time.Time }{
		{time.Time{}, time.Time{}},
		{base, base},
		{base.Add(time.Nanosecond), base.Add(time.Second)},
		{base.Add(999 * time.Millisecond), base.Add(time.Second)},
		{base.In(time.FixedZone("x", 3600)), base},
	} {
		if got := roundRetention(tc.in); !got.Equal(tc.want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("roundRetention(%v) = %v; want %v UTC", tc.in, got, tc.want)
		}
	}
}

func TestCheckNewRetention(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		current, until time.Time
		ok             bool
	}{
		{time.Time{}, now.Add(time.Hour), true},
		{now.Add(time.Hour), now.Add(time.Hour), true},
		{now.Add(time.Hour), now.Add(2 * time.Hour), true},
		{now.Add(2 * time.Hour), now.Add(time.Hour), false},
		{time.Time{}, now, false},
		{time.Time{}, now.Add(-time.Second), false},
		{time.Time{}, time.Time{}, false},
	} {
		err := checkNewRetention(tc.current, tc.until, now)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidRetention)) {
			t.Errorf("checkNewRetention(%v, %v) = %v", tc.current, tc.until, err)
		}
	}
}

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		offset, length, size, want int64
		ok                         bool
	}{
		{0, -1, 10, 10, true},
		{0, 0, 10, 0, true},
		{3, 4, 10, 4, true},
		{3, 100, 10, 7, true},
		{10, -1, 10, 0, true},
		{0, -1, 0, 0, true},
		{11, -1, 10, 0, false},
		{-1, 1, 10, 0, false},
	} {
		n, err := checkRange(tc.offset, tc.length, tc.size)
		if tc.ok != (err == nil) || n != tc.want {
			t.Errorf("checkRange(%d, %d, %d) = %d, %v; want %d, ok %v", tc.offset, tc.length, tc.size, n, err, tc.want, tc.ok)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		insecure bool
		host     string
		secure   bool
		ok       bool
	}{
		{"127.0.0.1:9000", true, "127.0.0.1:9000", false, true},
		{"s3.example.org", false, "s3.example.org", true, true},
		{"http://127.0.0.1:9000", false, "127.0.0.1:9000", false, true},
		{"https://s3.example.org/", false, "s3.example.org", true, true},
		{"https://s3.example.org", true, "", false, false},
		{"ftp://x", false, "", false, false},
		{"http://x/bucket", false, "", false, false},
		{"", false, "", false, false},
	} {
		host, secure, err := parseEndpoint(tc.endpoint, tc.insecure)
		if tc.ok != (err == nil) || host != tc.host || secure != tc.secure {
			t.Errorf("parseEndpoint(%q, %v) = %q, %v, %v", tc.endpoint, tc.insecure, host, secure, err)
		}
	}
}

func TestResultLabels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("x: %w", ErrExists), "exists"},
		{fmt.Errorf("x: %w", ErrNotFound), "not_found"},
		{fmt.Errorf("x: %w", ErrRetained), "retained"},
		{ErrInvalidKey, "invalid_key"},
		{ErrInvalidRetention, "invalid_retention"},
		{ErrInvalidRange, "invalid_range"},
		{ErrCorrupt, "corrupt"},
		{fmt.Errorf("put: %w", context.Canceled), "canceled"},
		{context.DeadlineExceeded, "canceled"},
		{errors.New("disk on fire"), "error"},
		{classify(fmt.Errorf("write: %w", syscall.ENOSPC)), "insufficient_storage"},
		{classify(fmt.Errorf("dial: %w", syscall.ECONNREFUSED)), "unavailable"},
	} {
		if got := result(tc.err); got != tc.want {
			t.Errorf("result(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"disk full", fmt.Errorf("put: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), fault.InsufficientStorage},
		{"quota", syscall.EDQUOT, fault.InsufficientStorage},
		{"minio full", fmt.Errorf("put: %w", minio.ErrorResponse{Code: "XMinioStorageFull", StatusCode: 507}), fault.InsufficientStorage},
		{"minio out of space", minio.ErrorResponse{Code: "InternalError", Message: "cause(no space left on device)", StatusCode: 500}, fault.InsufficientStorage},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), fault.Unavailable},
		{"deadline", fmt.Errorf("stat: %w", context.DeadlineExceeded), fault.Unavailable},
		{"server error", minio.ErrorResponse{Code: "XMinioServerNotInitialized", StatusCode: 503}, fault.Unavailable},
		{"bad gateway", fmt.Errorf("x: %w", minio.ErrorResponse{StatusCode: 502}), fault.Unavailable},
		{"read-only", syscall.EROFS, fault.Unavailable},
		// Not the store's fault, or not an outage.
		{"reader broke", readError{io.ErrUnexpectedEOF}, fault.Internal},
		{"reader too large", readError{fault.TooLarge}, fault.TooLarge},
		{"exists", fmt.Errorf("x: %w", ErrExists), fault.Internal},
		{"not found", ErrNotFound, fault.Internal},
		{"access denied", minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, fault.Internal},
		{"canceled", context.Canceled, fault.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			if k := fault.KindOf(got); k != tc.want {
				t.Fatalf("classify(%v) is %s; want %s", tc.err, k, tc.want)
			}
			if !errors.Is(got, tc.err) && !errors.Is(tc.err, got) {
				t.Fatalf("classify(%v) lost its cause", tc.err)
			}
		})
	}
}
