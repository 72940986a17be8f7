//go:build !linux && !darwin

package proc

import (
	"context"
	"errors"
	"syscall"
)

// info knows only whether the PID exists: the start time is not read on this system, so
// PID reuse goes unnoticed here (FreeBSD's kinfo_proc is not exposed by x/sys/unix).
func info(pid int) (start uint64, zombie bool, err error) {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false, ErrNotRunning
	}
	return 0, false, nil
}

// waitExitFast is not implemented here; WaitExit polls.
func waitExitFast(context.Context, int, uint64) (bool, error) { return false, nil }
