package recording

import "syscall"

// lowerPriority gives a child process the lowest CPU priority, for when
// there is no nice program to start it with. Threads it starts later
// inherit it.
func lowerPriority(pid int) { _ = syscall.Setpriority(syscall.PRIO_PROCESS, pid, 19) }
