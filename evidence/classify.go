package evidence

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/chamber-court/chamber/fault"
)

// classify gives a store error the kind a caller can act on: a store that
// is down, frozen or unreachable is fault.Unavailable (503, retry), a store
// that is full is fault.InsufficientStorage (507). The store's own
// sentinels (ErrExists, ErrNotFound, …), errors that already carry a kind
// (a reader's fault.TooLarge) and a caller that went away are returned
// unchanged. Every Store method passes its error through here.
func classify(err error) error {
	var re readError
	if err == nil || fault.KindOf(err) != fault.Internal || errors.As(err, &re) {
		return err
	}
	switch {
	case storeFull(err):
		return fault.Wrap(fault.InsufficientStorage, err, "the evidence store has no room left")
	case storeDown(err):
		return fault.Wrap(fault.Unavailable, err, "the evidence store is unavailable; retry")
	}
	return err
}

// storeFull reports a full disk or quota, or an S3 server that says so
// (MinIO: XMinioStorageFull, 507).
func storeFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	r := s3Error(err)
	msg := strings.ToLower(r.Message)
	return r.Code == "XMinioStorageFull" || r.Code == "StorageFull" || r.StatusCode == http.StatusInsufficientStorage ||
		strings.Contains(msg, "no space left") || strings.Contains(msg, "storage full")
}

// s3Error finds the server's error response in err's chain (minio-go's
// ToErrorResponse looks only at err itself).
func s3Error(err error) minio.ErrorResponse {
	var r minio.ErrorResponse
	errors.As(err, &r)
	return r
}

// storeDown reports a store that did not answer in time, could not be
// reached, dropped the connection, or failed on its side (5xx).
func storeDown(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO), errors.As(err, &netErr):
		return true
	}
	r := s3Error(err)
	switch r.Code {
	// Every body the store sends is a buffer of known length, so a server
	// claiming a short body lost it on its side (MinIO says so at times
	// when its disk fills, before it settles on XMinioStorageFull).
	case "IncompleteBody",
		"XMinioServerNotInitialized", "XMinioReadQuorum", "XMinioWriteQuorum", "SlowDown", "SlowDownWrite", "SlowDownRead",
		"ServiceUnavailable", "RequestTimeout", "InternalError":
		return true
	}
	return r.StatusCode >= 500 && r.StatusCode != http.StatusNotImplemented
}

// readError marks an error of the reader a Put was given: a client's
// broken upload is not an outage of the store, so classify leaves it be.
type readError struct{ err error }

func (e readError) Error() string { return "reading: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }
