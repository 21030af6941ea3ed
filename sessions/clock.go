package sessions

import "time"

// Clock is the session layer's time source. The outbox and the reminders
// wait on it, so a test can move time forward a day without waiting a day.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable one-shot timer. It is an alias of an unnamed
// interface so that a clock outside this package (internal/fakeclock)
// can satisfy Clock without importing it.
type Timer = interface {
	C() <-chan time.Time
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }
