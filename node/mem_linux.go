package node

import "golang.org/x/sys/unix"

// totalMemory is the machine's RAM in bytes.
func totalMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 1 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}
