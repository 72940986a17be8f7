//go:build linux

package proc

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func info(pid int) (start uint64, zombie bool, err error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, false, err
	}
	return st.start, st.state == 'Z' || st.state == 'X', nil
}

func readStat(pid int) (stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, ErrNotRunning
	}
	return parseStat(data)
}

// Children returns the PIDs of the live (not zombie) children of ppid. It scans /proc,
// since /proc/<pid>/task/<tid>/children needs a kernel option not every kernel has.
func Children(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err == nil && st.ppid == ppid && st.state != 'Z' && st.state != 'X' {
			out = append(out, pid)
		}
	}
	return out
}

// waitExitFast waits through a pidfd (Linux 5.3+), which becomes readable when the
// process exits, through Go's poller: no polling and no thread parked. It reports
// done=false when pidfds are not available, so the caller polls instead.
func waitExitFast(ctx context.Context, pid int, start uint64) (done bool, err error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.EINVAL) { // before 5.10: no PIDFD_NONBLOCK
		fd, err = unix.PidfdOpen(pid, 0)
		if err == nil {
			err = unix.SetNonblock(fd, true)
			if err != nil {
				unix.Close(fd)
			}
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return true, nil
	}
	if err != nil {
		return false, nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	// The pidfd now pins this very process; if it is not the one that started at start,
	// the PID was reused and the one we wait for is gone.
	if !Alive(pid, start) {
		return true, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return false, nil // not in the poller: fall back to polling
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
	if err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		return false, nil
	}
	return true, nil
}
