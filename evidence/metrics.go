package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/chamber-court/chamber/fault"
)

// Operation names used as the op label.
const (
	opPut       = "put"
	opGet       = "get"
	opStat      = "stat"
	opList      = "list"
	opRetain    = "retain"
	opLegalHold = "legal_hold"
	opDelete    = "delete"
)

var (
	storeOps = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_store_operations_total",
		Help: "Evidence store operations by operation (put, get, stat, list, retain, legal_hold, delete) and result.",
	}, []string{"op", "result"})
	storeBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_store_bytes_total",
		Help: "Bytes stored by successful puts (op=put) and read back from the store (op=get).",
	}, []string{"op"})
)

func init() {
	// Create the common series up front so that /metrics shows them (at 0)
	// before the first operation.
	for _, op := range []string{opPut, opGet, opStat, opList, opRetain, opLegalHold, opDelete} {
		storeOps.WithLabelValues(op, "ok")
		storeOps.WithLabelValues(op, "error")
	}
	storeBytes.WithLabelValues(opPut)
	storeBytes.WithLabelValues(opGet)
}

// observe gives an operation's error its kind (classify) and counts the
// operation with its outcome. Every Store method defers it on its named
// error result.
func observe(op string, err *error) {
	*err = classify(*err)
	storeOps.WithLabelValues(op, result(*err)).Inc()
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrRetained):
		return "retained"
	case errors.Is(err, ErrInvalidKey):
		return "invalid_key"
	case errors.Is(err, ErrInvalidRetention):
		return "invalid_retention"
	case errors.Is(err, ErrInvalidRange):
		return "invalid_range"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, fault.InsufficientStorage):
		return "insufficient_storage"
	case errors.Is(err, fault.Unavailable):
		return "unavailable"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}

// hasher is a SHA-256 that also counts what it was fed.
type hasher struct {
	h hash.Hash
	n int64
}

func newHasher() *hasher { return &hasher{h: sha256.New()} }

func (h *hasher) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

func (h *hasher) hex() string { return hex.EncodeToString(h.h.Sum(nil)) }

// countingReader feeds the bytes callers read from an object into
// chamber_store_bytes_total{op="get"}. Reads of one Reader may come from
// several goroutines (ReadAt), hence the atomic add in the counter; the
// struct itself holds no state.
type countingReader struct {
	r interface {
		io.ReadSeekCloser
		io.ReaderAt
	}
	closed atomic.Bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	storeBytes.WithLabelValues(opGet).Add(float64(n))
	return n, err
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	storeBytes.WithLabelValues(opGet).Add(float64(n))
	return n, err
}

func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	return c.r.Seek(offset, whence)
}

// Close closes the underlying object once; later calls return nil, so a
// deferred Close after an explicit one is harmless.
func (c *countingReader) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.r.Close()
}

// countingReadCloser is countingReader for Get.
type countingReadCloser struct {
	io.Reader
	io.Closer
}

func (c countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	storeBytes.WithLabelValues(opGet).Add(float64(n))
	return n, err
}
