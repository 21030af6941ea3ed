package main

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// cpuMeter measures the share of the machine's CPU this process used
// between two calls, for the node's heartbeat (placement by headroom).
type cpuMeter struct {
	mu        sync.Mutex
	lastCPU   time.Duration
	lastClock time.Time
}

func (m *cpuMeter) share() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	prevCPU, prevClock := m.lastCPU, m.lastClock
	m.lastCPU, m.lastClock = used, now
	if prevClock.IsZero() {
		return 0
	}
	wall := now.Sub(prevClock) * time.Duration(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	return min(1, float64(used-prevCPU)/float64(wall))
}
