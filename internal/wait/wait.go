// Package wait is how tests wait for something they cannot be told about:
// a condition polled on a ticker until a deadline.
//
// A test that can be told — a channel, an event from the server, a
// journal entry delivered — should wait on that instead. What is left is
// state another process owns (a file in MinIO's directory, a counter in
// the database, a metric): this package polls it, never sleeps a guessed
// time, and fails with what it waited for.
package wait

import (
	"context"
	"testing"
	"time"
)

// Every is the default poll interval.
const Every = 20 * time.Millisecond

// Poll calls cond every interval until it returns true (true) or ctx ends
// (false). cond runs at once, then on a ticker.
func Poll(ctx context.Context, every time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
		}
	}
}

// Within polls cond every Every for at most d and reports whether it held.
func Within(d time.Duration, cond func() bool) bool {
	return WithinEvery(d, Every, cond)
}

// WithinEvery is Within with another poll interval.
func WithinEvery(d, every time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Poll(ctx, every, cond)
}

// For polls cond every Every until it holds, and fails the test when d
// passes first, naming what it waited for.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("waited %s for %s", d, what)
	}
}

// Never polls cond every Every for d and reports whether it stayed
// false: a bounded negative check ("nothing arrives within d").
func Never(d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for {
		if cond() {
			return false
		}
		select {
		case <-ctx.Done():
			return !cond()
		case <-tick.C:
		}
	}
}

// Throughout calls check every Every for d: a bounded window in which
// check asserts something stays true (it fails the test itself).
func Throughout(d time.Duration, check func()) {
	Never(d, func() bool { check(); return false })
}
