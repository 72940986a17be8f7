//go:build linux

package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/exit"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/statefile"
)

// handle is one OCI depot. Its end is learnt once (finish), when the shim that ran
// runc has ended, and shared by every Wait.
type handle struct {
	*depots.Depot
	d   *Driver
	rec *record
	// eh is the shim's depot, whose workload is runc (or the port helper running
	// runc); nil for a depot found without one.
	eh driver.Handle

	finishOnce sync.Once
}

func newHandle(d *Driver, s driver.Spec, dir string, rec *record, eh driver.Handle) *handle {
	return &handle{Depot: depots.NewDepot(s, dir), d: d, rec: rec, eh: eh}
}

func (h *handle) PID() int                   { return h.rec.PID }
func (h *handle) StartedAt() time.Time       { return h.rec.StartedAt }
func (h *handle) Limits() driver.LimitReport { return h.rec.Limits }

// finish runs once the shim has ended with st: it learns how the container ended
// (OOM kills from its cgroup, which runc kept), releases what the depot held on the
// node, records the exit for a later agent and wakes the waiters.
func (h *handle) finish(st driver.ExitStatus) {
	h.finishOnce.Do(func() {
		oom := false
		if g, err := h.d.hier.Open(h.ID()); err == nil {
			n, _ := g.OOMKills()
			oom = n > 0
		}
		ex := containerExit(st, oom, h.Spec().Memory, statefile.Exists(filepath.Join(h.Dir(), stopFile)))
		ex.StartedAt = h.rec.StartedAt
		if ex.FinishedAt.IsZero() {
			ex.FinishedAt = time.Now()
		}
		if ex.Lost() {
			h.d.killContainer(h.ID(), h.rec)
			h.d.log.Warn("depot lost", "depot", h.ID(), "reason", ex.Reason)
		}
		h.d.teardown(h.ID(), h.rec)
		if err := statefile.Write(filepath.Join(h.Dir(), exitFile), ex); err != nil {
			h.d.log.Warn("cannot record the depot's exit", "depot", h.ID(), "err", err)
		}
		h.Set(ex)
	})
}

// containerExit turns how runc ended (as the shim saw it) into how the container
// ended. runc exits with the container's code, or 128+n when a signal n killed the
// container's first process; runc itself killed by a signal (or a shim that died)
// leaves the container's end unknown.
func containerExit(st driver.ExitStatus, oom bool, memLimit int64, stopped bool) driver.ExitStatus {
	var e driver.ExitStatus
	switch {
	case st.Lost():
		e = driver.ExitStatus{Code: -1, Reason: st.Reason}
	case st.Signal != "":
		e = driver.ExitStatus{Code: -1, Reason: "lost: the container's runtime was " + st.Reason + "; the container was killed"}
	case st.Code > 128 && st.Code <= 128+64:
		e = exit.Cause(exit.Signaled(syscall.Signal(st.Code-128)), oom, memLimit, stopped)
	default:
		e = exit.Cause(exit.Code(st.Code), oom, memLimit, stopped)
	}
	e.FinishedAt = st.FinishedAt
	return e
}

// Signal sends sig to the container's first process. As the first process of its PID
// namespace, it receives only the signals it handles (SIGKILL always).
func (h *handle) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal depot %q: %v is not a system signal", h.ID(), sig)
	}
	if h.Exited() || !proc.Alive(h.rec.PID, h.rec.PIDStart) {
		return fmt.Errorf("signal depot %q: %w", h.ID(), os.ErrProcessDone)
	}
	if err := syscall.Kill(h.rec.PID, s); err != nil {
		return fmt.Errorf("signal depot %q: %w", h.ID(), err)
	}
	return nil
}

// Stop sends the image's stop signal (SIGTERM unless the image names another) to the
// container's first process and, if the container has not ended after grace, kills it
// (and with it every process of the container), then waits for the end.
func (h *handle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	if st, ok := h.Status(); ok {
		return st, nil
	}
	// The marker lets finish tell a requested stop from a crash, even for a later agent.
	statefile.Touch(filepath.Join(h.Dir(), stopFile))
	if grace > 0 && proc.Alive(h.rec.PID, h.rec.PIDStart) {
		syscall.Kill(h.rec.PID, signalNumber(h.rec.StopSignal))
		if st, ended, err := h.WaitGrace(ctx, grace); err != nil {
			return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
		} else if ended {
			return st, nil
		}
	}
	h.d.killContainer(h.ID(), h.rec)
	return h.Wait(ctx)
}
