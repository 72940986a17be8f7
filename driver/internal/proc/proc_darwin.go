//go:build darwin

package proc

import (
	"context"

	"golang.org/x/sys/unix"
)

func info(pid int) (start uint64, zombie bool, err error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) {
		return 0, false, ErrNotRunning
	}
	tv := kp.Proc.P_starttime
	const szomb = 5 // SZOMB in <sys/proc.h>
	return uint64(tv.Sec)*1e6 + uint64(tv.Usec), kp.Proc.P_stat == szomb, nil
}

// waitExitFast is not implemented on Darwin (kqueue's EVFILT_PROC could be); WaitExit
// polls.
func waitExitFast(context.Context, int, uint64) (bool, error) { return false, nil }
