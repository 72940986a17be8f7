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

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/driver"
)

// handle is one OCI depot. Its end is learnt once (finish), when the shim that ran
// runc has ended, and shared by every Wait.
type handle struct {
	d    *Driver
	spec driver.Spec
	dir  string
	rec  *record
	// eh is the shim's depot, whose workload is runc (or the port helper running
	// runc); nil for a depot found without one.
	eh driver.Handle

	finishOnce sync.Once
	once       sync.Once
	done       chan struct{}
	exit       driver.ExitStatus // set before done closes
}

var _ driver.Handle = (*handle)(nil)

func newHandle(d *Driver, s driver.Spec, dir string, rec *record, eh driver.Handle) *handle {
	return &handle{d: d, spec: s, dir: dir, rec: rec, eh: eh, done: make(chan struct{})}
}

func (h *handle) ID() string                 { return h.spec.ID }
func (h *handle) PID() int                   { return h.rec.PID }
func (h *handle) Spec() driver.Spec          { return h.spec }
func (h *handle) StartedAt() time.Time       { return h.rec.StartedAt }
func (h *handle) Limits() driver.LimitReport { return h.rec.Limits }

func (h *handle) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *handle) setExit(e driver.ExitStatus) {
	h.once.Do(func() {
		h.exit = e
		close(h.done)
	})
}

// finish runs once the shim has ended with st: it learns how the container ended
// (OOM kills from its cgroup, which runc kept), releases what the depot held on the
// node, records the exit for a later agent and wakes the waiters.
func (h *handle) finish(st driver.ExitStatus) {
	h.finishOnce.Do(func() {
		oom := false
		if g, err := h.d.hier.Open(h.spec.ID); err == nil {
			n, _ := g.OOMKills()
			oom = n > 0
		}
		ex := containerExit(st, oom, h.spec.Memory, exists(filepath.Join(h.dir, stopFile)))
		ex.StartedAt = h.rec.StartedAt
		if ex.FinishedAt.IsZero() {
			ex.FinishedAt = time.Now()
		}
		if ex.Lost() {
			h.d.killContainer(h.spec.ID, h.rec)
			h.d.log.Warn("depot lost", "depot", h.spec.ID, "reason", ex.Reason)
		}
		h.d.teardown(h.spec.ID, h.rec)
		if err := writeJSON(filepath.Join(h.dir, exitFile), ex); err != nil {
			h.d.log.Warn("cannot record the depot's exit", "depot", h.spec.ID, "err", err)
		}
		h.setExit(ex)
	})
}

// containerExit turns how runc ended (as the shim saw it) into how the container
// ended. runc exits with the container's code, or 128+n when a signal n killed the
// container's first process; runc itself killed by a signal (or a shim that died)
// leaves the container's end unknown.
func containerExit(st driver.ExitStatus, oom bool, memLimit int64, stopped bool) driver.ExitStatus {
	e := driver.ExitStatus{FinishedAt: st.FinishedAt}
	switch {
	case st.Lost():
		e.Code, e.Reason = -1, st.Reason
	case st.Signal != "":
		e.Code, e.Reason = -1, "lost: the container's runtime was "+st.Reason+"; the container was killed"
	case st.Code > 128 && st.Code <= 128+64:
		sig := syscall.Signal(st.Code - 128)
		e.Code, e.Signal = st.Code, unix.SignalName(sig)
		if e.Signal == "" {
			e.Signal = fmt.Sprintf("signal %d", int(sig))
		}
		e.Reason = "killed by " + e.Signal
	default:
		e.Code, e.Reason = st.Code, fmt.Sprintf("exited with code %d", st.Code)
	}
	switch {
	case e.Lost():
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

// Wait blocks until the depot has ended (and the driver has cleaned up after it) or
// ctx ends.
func (h *handle) Wait(ctx context.Context) (driver.ExitStatus, error) {
	select {
	case <-h.done:
		return h.exit, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, fmt.Errorf("wait for depot %q: %w", h.spec.ID, ctx.Err())
	}
}

// Signal sends sig to the container's first process. As the first process of its PID
// namespace, it receives only the signals it handles (SIGKILL always).
func (h *handle) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal depot %q: %v is not a system signal", h.spec.ID, sig)
	}
	if h.exited() || !alive(h.rec.PID, h.rec.PIDStart) {
		return fmt.Errorf("signal depot %q: %w", h.spec.ID, os.ErrProcessDone)
	}
	if err := syscall.Kill(h.rec.PID, s); err != nil {
		return fmt.Errorf("signal depot %q: %w", h.spec.ID, err)
	}
	return nil
}

// Stop sends the image's stop signal (SIGTERM unless the image names another) to the
// container's first process and, if the container has not ended after grace, kills it
// (and with it every process of the container), then waits for the end.
func (h *handle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	if h.exited() {
		return h.exit, nil
	}
	// The marker lets finish tell a requested stop from a crash, even for a later agent.
	if f, err := os.OpenFile(filepath.Join(h.dir, stopFile), os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	if grace > 0 && alive(h.rec.PID, h.rec.PIDStart) {
		syscall.Kill(h.rec.PID, signalNumber(h.rec.StopSignal))
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-h.done:
			return h.exit, nil
		case <-ctx.Done():
			return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.spec.ID, ctx.Err())
		case <-timer.C:
		}
	}
	h.d.killContainer(h.spec.ID, h.rec)
	return h.Wait(ctx)
}
