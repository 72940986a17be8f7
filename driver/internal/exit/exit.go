// Package exit is how the drivers describe a depot's end and share it once learnt: the
// wording of exit statuses (so that every driver reports a signal, a code, an OOM kill
// or a requested stop alike) and the Latch every handle keeps its exit in.
package exit

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/driver"
)

// Signaled returns the status of a workload killed by sig: code 128 plus the signal
// number, as shells report it.
func Signaled(sig syscall.Signal) driver.ExitStatus {
	e := driver.ExitStatus{Code: 128 + int(sig), Signal: unix.SignalName(sig)}
	if e.Signal == "" {
		e.Signal = fmt.Sprintf("signal %d", int(sig))
	}
	e.Reason = "killed by " + e.Signal
	return e
}

// Code returns the status of a workload that exited with code.
func Code(code int) driver.ExitStatus {
	return driver.ExitStatus{Code: code, Reason: fmt.Sprintf("exited with code %d", code)}
}

// Cause says in e's reason what ended the workload, when known: the kernel's OOM killer
// (oom), within the depot's memory limit when it had one (memLimit > 0) or because the
// node ran out of memory; else a stop the agent asked for (stopped).
func Cause(e driver.ExitStatus, oom bool, memLimit int64, stopped bool) driver.ExitStatus {
	switch {
	case oom && memLimit > 0:
		e.OOMKilled = true
		e.Reason = fmt.Sprintf("oom killed: memory limit of %d bytes reached (%s)", memLimit, e.Reason)
	case oom:
		e.OOMKilled = true
		e.Reason = fmt.Sprintf("oom killed: the node ran out of memory (%s)", e.Reason)
	case stopped:
		e.Reason = "stopped (" + e.Reason + ")"
	}
	return e
}

// Latch holds a depot's exit once it is learnt. The first Set wins: a handle learns its
// depot's end from one place (the supervisor's end, or a record found on disk), but
// more than one may race to tell it, and every waiter must see the same status. The
// zero Latch is ready to use; it must not be copied.
type Latch struct {
	init   sync.Once // makes done
	set    sync.Once
	done   chan struct{}
	status driver.ExitStatus // written before done closes
}

func (l *Latch) ch() chan struct{} {
	l.init.Do(func() { l.done = make(chan struct{}) })
	return l.done
}

// Set records e as the exit unless one was recorded before, and wakes every waiter.
func (l *Latch) Set(e driver.ExitStatus) {
	l.set.Do(func() {
		l.status = e
		close(l.ch())
	})
}

// Done returns a channel that is closed once the exit is set.
func (l *Latch) Done() <-chan struct{} { return l.ch() }

// Exited reports whether the exit is set.
func (l *Latch) Exited() bool {
	_, ok := l.Status()
	return ok
}

// Status returns the exit, and whether it is set yet.
func (l *Latch) Status() (driver.ExitStatus, bool) {
	select {
	case <-l.ch():
		return l.status, true
	default:
		return driver.ExitStatus{}, false
	}
}

// Wait blocks until the exit is set or ctx ends; id names the depot in the error.
func (l *Latch) Wait(ctx context.Context, id string) (driver.ExitStatus, error) {
	select {
	case <-l.ch():
		return l.status, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, fmt.Errorf("wait for depot %q: %w", id, ctx.Err())
	}
}

// WaitGrace waits for the exit as a Stop does after asking the workload to end: it
// returns the exit and true once set, false when grace passed first (time to kill), or
// the error of ctx when ctx ended first.
func (l *Latch) WaitGrace(ctx context.Context, grace time.Duration) (driver.ExitStatus, bool, error) {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-l.ch():
		return l.status, true, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, false, ctx.Err()
	case <-timer.C:
		return driver.ExitStatus{}, false, nil
	}
}
