package sfu

import "time"

// Clock is the time as the allocator and the sender reports read it:
// monotonic nanoseconds, in the time base of clock(). The packet path
// stamps packets with clock() directly (no interface call per packet), so
// a Clock other than the default is only for tests in which no media flows:
// they move it instead of sleeping or rewinding private fields.
type Clock interface {
	Now() int64
}

// monotonic is the default Clock.
type monotonic struct{}

func (monotonic) Now() int64 { return clock() }

var clockBase = time.Now()

// clock returns monotonic nanoseconds since the process started.
func clock() int64 { return int64(time.Since(clockBase)) }

// clockTime converts a clock() reading to a time.Time without reading the
// clock again.
func clockTime(now int64) time.Time { return clockBase.Add(time.Duration(now)) }
