package api

import (
	"errors"
	"testing"

	"github.com/chamber-court/chamber/fault"
)

// TestPlaybackStreamsBounded: beyond maxPlaybackStreams file responses in
// flight, another is refused as unavailable with a Retry-After (503), and
// a finished response makes room again.
func TestPlaybackStreamsBounded(t *testing.T) {
	p := newPlayback()
	var releases []func()
	for range maxPlaybackStreams {
		release, err := p.acquire()
		if err != nil {
			t.Fatalf("response %d refused: %v", len(releases), err)
		}
		releases = append(releases, release)
	}
	_, err := p.acquire()
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 {
		t.Fatalf("beyond the bound: %v, want unavailable with Retry-After", err)
	}
	releases[0]()
	release, err := p.acquire()
	if err != nil {
		t.Fatalf("after one finished: %v", err)
	}
	release()
}
