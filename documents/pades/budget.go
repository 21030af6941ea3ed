package pades

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/digitorus/pdf"
)

// LimitError reports a PDF that would take more than Chamber spends on one
// request: more bytes read, decompressed bytes or objects than its budget,
// or more objects than one parser may hold. It arrives wrapped in a
// *MalformedError, which the API answers with 422.
type LimitError struct {
	What  string // e.g. "decompressed bytes"
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("pades: the document needs more than %d %s, the limit for one request", e.Limit, e.What)
}

// Limits of one request's budget. readBudgetFactor bounds the bytes the
// parsers may read, as a multiple of the file size plus a constant: a
// crafted file that makes a parser reread itself endlessly runs out of
// budget instead of time.
const (
	readBudgetFactor = 24
	// inflateFactor bounds decompressed bytes the same way: object streams
	// and /DSS entries of a real file decompress to a few times its size.
	inflateFactor = 8
	// maxVerifyObjects bounds the cross-reference entries one parser holds
	// while verifying (32 bytes each; the verifier keeps two parsers).
	maxVerifyObjects = 250_000
	// maxBudgetObjects bounds the objects one request loads in all:
	// cross-reference entries of every parser it opens, /DSS entries,
	// objects in object streams.
	maxBudgetObjects = 4_000_000
)

type limits struct {
	reads, inflated, objects int64
	readerObjects            int64 // 0: no limit per parser
}

func requestLimits(size int64, verifying bool) limits {
	l := limits{
		reads:    readBudgetFactor*size + 64<<20,
		inflated: inflateFactor*size + 64<<20,
		objects:  maxBudgetObjects,
	}
	if verifying {
		l.readerObjects = maxVerifyObjects
	}
	return l
}

// budget is one request's allowance of reads, decompressed bytes and
// objects, shared by every parse the request makes: the parser on each
// revision, object streams, /DSS entries. It is the io.ReaderAt the
// parsers read through, so that a pathological file runs out of budget
// instead of time: the parser sees a read error (and usually panics, which
// guard catches). Crossing a limit is sticky; the request then ends with
// the *LimitError (see wrap).
type budget struct {
	ctx context.Context
	r   io.ReaderAt
	lim limits

	reads, inflated, objects int64
	err                      error
	objStms                  map[int64]bool // object streams found safe, by data offset
}

func newBudget(ctx context.Context, r io.ReaderAt, lim limits) *budget {
	return &budget{ctx: ctx, r: r, lim: lim, objStms: map[int64]bool{}}
}

func (b *budget) ReadAt(p []byte, off int64) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if err := b.spend(&b.reads, b.lim.reads, "bytes read", int64(len(p))); err != nil {
		return 0, err
	}
	return b.r.ReadAt(p, off)
}

func (b *budget) spend(used *int64, limit int64, what string, n int64) error {
	if b.err != nil {
		return b.err
	}
	*used += n
	if *used > limit {
		b.err = &LimitError{What: what, Limit: limit}
	}
	return b.err
}

func (b *budget) inflate(n int64) error {
	return b.spend(&b.inflated, b.lim.inflated, "decompressed bytes", n)
}

func (b *budget) object(n int64) error {
	return b.spend(&b.objects, b.lim.objects, "objects", n)
}

// wrap returns the budget's LimitError, wrapped for the API, in place of
// err when a limit was crossed (err is then usually the parser's reaction
// to a refused read); otherwise err.
func (b *budget) wrap(err error) error {
	if b.err == nil {
		return err
	}
	var me *MalformedError
	if errors.As(err, &me) && errors.Is(me.Err, b.err) {
		return err
	}
	return &MalformedError{Reason: "beyond what Chamber examines for one request", Err: b.err}
}

// errTooLarge reports a stream longer than its reader allows.
var errTooLarge = errors.New("stream too large")

// readStream returns the decoded data of stream v, charging the budget for
// every byte; a stream longer than max is errTooLarge, read no further.
func (b *budget) readStream(v pdf.Value, max int64) (data []byte, err error) {
	defer guard(&err, "reading a stream")
	var buf bytes.Buffer
	n, err := b.copyStream(&buf, v, max)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// copyStreamGuarded is copyStream under the panic guard.
func (b *budget) copyStreamGuarded(w io.Writer, v pdf.Value, max int64) (n int64, err error) {
	defer guard(&err, "reading a stream")
	return b.copyStream(w, v, max)
}

// copyStream copies at most max+1 decoded bytes of stream v to w.
func (b *budget) copyStream(w io.Writer, v pdf.Value, max int64) (int64, error) {
	if v.Kind() != pdf.Stream {
		return 0, errors.New("not a stream")
	}
	rc := v.Reader()
	defer rc.Close()
	return io.Copy(w, io.LimitReader(inflateCounter{rc, b}, max+1))
}

// inflateCounter charges the budget for what it reads.
type inflateCounter struct {
	r io.Reader
	b *budget
}

func (c inflateCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if e := c.b.inflate(int64(n)); e != nil {
		return n, e
	}
	return n, err
}
