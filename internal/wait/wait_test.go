package wait

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	tests := []struct {
		name   string
		trueAt int32 // the call at which cond first holds; 0: never
		within time.Duration
		want   bool
	}{
		{"at once", 1, time.Second, true},
		{"after a few ticks", 4, 5 * time.Second, true},
		{"never", 0, 50 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			cond := func() bool { n := calls.Add(1); return tt.trueAt != 0 && n >= tt.trueAt }
			if got := WithinEvery(tt.within, time.Millisecond, cond); got != tt.want {
				t.Fatalf("WithinEvery = %v after %d calls, want %v", got, calls.Load(), tt.want)
			}
			if tt.want && calls.Load() != tt.trueAt {
				t.Errorf("cond called %d times, want %d (polling must stop once it holds)", calls.Load(), tt.trueAt)
			}
		})
	}
}

func TestPollEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Poll(ctx, time.Hour, func() bool { return false }) {
		t.Fatal("Poll held for a condition that never holds")
	}
}

func TestNever(t *testing.T) {
	if !Never(30*time.Millisecond, func() bool { return false }) {
		t.Error("Never = false for a condition that never holds")
	}
	var calls atomic.Int32
	if Never(time.Minute, func() bool { return calls.Add(1) >= 3 }) {
		t.Error("Never = true for a condition that came to hold")
	}
}
