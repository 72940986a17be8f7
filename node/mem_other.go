//go:build !linux && !darwin && !freebsd

package node

// totalMemory is a guess where the OS cannot be asked.
func totalMemory() int64 { return 1 << 30 }
