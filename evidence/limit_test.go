package evidence

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLimitReader(t *testing.T) {
	errBig := errors.New("too big")
	tests := []struct {
		in   string
		n    int64
		fail bool
	}{
		{"", 0, false},
		{"abc", 3, false},
		{"abcd", 3, true},
		{"abc", 10, false},
		{strings.Repeat("x", 100000), 99999, true},
		{strings.Repeat("x", 100000), 100000, false},
	}
	for _, tt := range tests {
		for _, name := range []string{"plain", "one byte at a time"} {
			var r io.Reader = strings.NewReader(tt.in)
			if name != "plain" {
				r = iotest.OneByteReader(r)
			}
			got, err := io.ReadAll(LimitReader(r, tt.n, errBig))
			if tt.fail != errors.Is(err, errBig) {
				t.Errorf("%s: %d bytes with limit %d: err %v", name, len(tt.in), tt.n, err)
			}
			if !tt.fail && string(got) != tt.in {
				t.Errorf("%s: read %d bytes of %d", name, len(got), len(tt.in))
			}
		}
	}
}
