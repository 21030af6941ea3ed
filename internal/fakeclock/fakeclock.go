// Package fakeclock is a clock that moves only when a test says so. It
// satisfies sessions.Clock: a loop waiting on a timer wakes when Advance
// passes its deadline, and BlockUntil tells the test when the loop has
// finished its work and waits again.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a manually advanced clock, safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever timers change
}

type timer struct {
	clock *Clock
	at    time.Time
	ch    chan time.Time
}

// New returns a clock reading t.
func New(t time.Time) *Clock { return &Clock{now: t, changed: make(chan struct{})} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock has been advanced by
// d (at once if d <= 0).
func (c *Clock) NewTimer(d time.Duration) interface {
	C() <-chan time.Time
	Stop() bool
} {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{clock: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.signal()
	return t
}

func (t *timer) C() <-chan time.Time { return t.ch }

// Stop removes the timer; it reports whether the timer was still waiting.
func (t *timer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.timers {
		if w == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			c.signal()
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d and fires every timer whose time
// has come.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
	c.signal()
}

// BlockUntil waits until at least n timers are waiting, or until within
// has passed (then it reports false).
func (c *Clock) BlockUntil(n int, within time.Duration) bool {
	timeout := time.After(within)
	for {
		c.mu.Lock()
		if len(c.timers) >= n {
			c.mu.Unlock()
			return true
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			return false
		}
	}
}

func (c *Clock) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}
