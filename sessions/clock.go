package sessions

import "time"

// Clock is the session layer's time source. The outbox and the reminders
// wait on it, so a test can move time forward a day without waiting a day.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
