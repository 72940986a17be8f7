//go:build darwin || freebsd

package node

import "golang.org/x/sys/unix"

// totalMemory is the machine's RAM in bytes.
func totalMemory() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		n, err = unix.SysctlUint64("hw.physmem")
	}
	if err != nil {
		return 1 << 30
	}
	return int64(n)
}
