//go:build !linux

package recording

func lowerPriority(int) {}
