package evidence

import "io"

// LimitReader reads from r but fails with err as soon as more than n bytes
// arrive. Unlike io.LimitReader, which ends quietly, it makes a Put of an
// oversized upload fail, so nothing of it becomes visible.
func LimitReader(r io.Reader, n int64, err error) io.Reader {
	return &limitReader{r: r, n: n, err: err}
}

type limitReader struct {
	r   io.Reader
	n   int64 // bytes still allowed
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, l.err
	}
	// Ask for one byte beyond the limit, to tell "exactly n" from "more".
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, l.err
	}
	return n, err
}
