package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Stopped reports whether every thread of process pid is stopped by a
// signal (state T in /proc/PID/task/TID/stat). A signal's effect is
// asynchronous, so a test that stops a server must wait for this before
// it counts on the server not answering.
func Stopped(pid int) (bool, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false, fmt.Errorf("threads of pid %d: %v (none found)", pid, err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			// A thread that exited since the listing is not running either.
			continue
		}
		state, ok := threadState(b)
		if !ok {
			return false, fmt.Errorf("%s: no state in %q", path, b)
		}
		if state != 'T' {
			return false, nil
		}
	}
	return true, nil
}

// threadState is the state letter of a /proc stat line. It follows the
// command name, which is in parentheses and may itself hold ") ".
func threadState(stat []byte) (byte, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, false
	}
	return stat[i+2], true
}
