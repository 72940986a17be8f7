// Package proc identifies processes across restarts of the agent: a PID alone can be
// reused by the kernel, so a process is known by its PID and its start time, and every
// signal or wait first checks that both still match.
package proc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pollInterval is how often the portable WaitExit looks whether a process is gone.
const pollInterval = 50 * time.Millisecond

// ErrNotRunning means no process with that PID and start time exists.
var ErrNotRunning = errors.New("process not running")

// Alive reports whether pid runs (and is not a zombie) with start time start. A zero
// start means unknown (a system where it cannot be read): then only the PID is checked.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, zombie, err := info(pid)
	if err != nil || zombie {
		return false
	}
	return start == 0 || st == 0 || st == start
}

// StartTime returns pid's start time in the system's own unit (clock ticks since boot on
// Linux, microseconds since the epoch on Darwin), or 0 when the system does not say.
func StartTime(pid int) (uint64, error) {
	st, _, err := info(pid)
	return st, err
}

// Signal sends sig to pid, when pid still is the process that started at start.
func Signal(pid int, start uint64, sig syscall.Signal) error {
	if !Alive(pid, start) {
		return ErrNotRunning
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	return nil
}

// SignalGroup sends sig to the process group led by pid, when the leader still is the
// process that started at start. Once the leader is gone the group is left alone: its
// ID could by then belong to someone else.
func SignalGroup(pid int, start uint64, sig syscall.Signal) error {
	if !Alive(pid, start) {
		return ErrNotRunning
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal process group %d: %w", pid, err)
	}
	return nil
}

// WaitExit blocks until the process pid (started at start) has exited, or ctx ends. It
// works for processes that are not our children, such as a supervisor re-adopted after
// an agent restart.
func WaitExit(ctx context.Context, pid int, start uint64) error {
	if done, err := waitExitFast(ctx, pid, start); done {
		return err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for Alive(pid, start) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// stat is what QNet reads from a Linux /proc/<pid>/stat line.
type stat struct {
	state byte   // field 3: R, S, D, Z, …
	ppid  int    // field 4
	start uint64 // field 22: start time in clock ticks since boot
}

// parseStat reads a Linux /proc/<pid>/stat line. The command name (field 2) is in
// parentheses and may hold spaces and parentheses, so parsing starts after the last ')'.
func parseStat(data []byte) (stat, error) {
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return stat{}, fmt.Errorf("proc stat: no ')' closing the command name in %q", truncate(s))
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return stat{}, fmt.Errorf("proc stat: want at least 22 fields in %q", truncate(s))
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return stat{}, fmt.Errorf("proc stat: parent pid %q: %w", fields[1], err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("proc stat: start time %q: %w", fields[19], err)
	}
	return stat{state: fields[0][0], ppid: ppid, start: start}, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
