package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/exec/internal/proc"
)

// handle is one depot of this driver. Its exit is learnt once, by the goroutine that
// watches the shim (finish), and then shared by every Wait.
type handle struct {
	d     *Driver
	spec  driver.Spec
	dir   string
	state bundle.State

	once sync.Once
	done chan struct{}
	exit driver.ExitStatus // set before done closes
}

var _ driver.Handle = (*handle)(nil)

func newHandle(d *Driver, s driver.Spec, dir string, st bundle.State) *handle {
	return &handle{d: d, spec: s, dir: dir, state: st, done: make(chan struct{})}
}

func (h *handle) ID() string                 { return h.spec.ID }
func (h *handle) PID() int                   { return h.state.PID }
func (h *handle) Spec() driver.Spec          { return h.spec }
func (h *handle) StartedAt() time.Time       { return h.state.StartedAt }
func (h *handle) Limits() driver.LimitReport { return h.state.Limits }

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

// finish runs once the shim is gone: it takes the exit the shim recorded or, when there
// is none, kills whatever of the depot still runs and records it as lost, so that the
// next Recover agrees.
func (h *handle) finish() {
	var ex bundle.Exit
	if err := bundle.ReadJSON(filepath.Join(h.dir, bundle.ExitFile), &ex); err == nil {
		h.setExit(ex.ExitStatus)
		return
	}
	reason := "lost: supervisor died"
	if h.state.PID == 0 {
		reason = "lost: supervisor died before starting the workload"
	} else if proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGKILL) == nil {
		reason = "lost: supervisor died; the orphaned workload was killed"
	}
	if h.state.Cgroup {
		h.d.sweepGroup(h.spec.ID)
	}
	ex = bundle.Exit{
		ExitStatus: driver.ExitStatus{Code: -1, Reason: reason, StartedAt: h.state.StartedAt, FinishedAt: time.Now()},
		PID:        h.state.PID, PIDStart: h.state.PIDStart,
	}
	if err := bundle.WriteJSON(filepath.Join(h.dir, bundle.ExitFile), ex); err != nil {
		h.d.log.Warn("cannot record lost depot", "depot", h.spec.ID, "err", err)
	}
	h.d.log.Warn("depot lost", "depot", h.spec.ID, "reason", reason)
	h.setExit(ex.ExitStatus)
}

// Wait blocks until the depot has ended or ctx ends.
func (h *handle) Wait(ctx context.Context) (driver.ExitStatus, error) {
	select {
	case <-h.done:
		return h.exit, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, fmt.Errorf("wait for depot %q: %w", h.spec.ID, ctx.Err())
	}
}

// Signal sends sig to the workload's main process.
func (h *handle) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal depot %q: %v is not a system signal", h.spec.ID, sig)
	}
	if h.exited() {
		return fmt.Errorf("signal depot %q: %w", h.spec.ID, os.ErrProcessDone)
	}
	if err := proc.Signal(h.state.PID, h.state.PIDStart, s); err != nil {
		if errors.Is(err, proc.ErrNotRunning) {
			return fmt.Errorf("signal depot %q: %w", h.spec.ID, os.ErrProcessDone)
		}
		return fmt.Errorf("signal depot %q: %w", h.spec.ID, err)
	}
	return nil
}

// Stop sends SIGTERM to the workload's process group and, if the depot has not ended
// after grace, SIGKILL to the group and to every process in the depot's cgroup. It
// returns the exit status once the shim has recorded it.
func (h *handle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	if h.exited() {
		return h.exit, nil
	}
	// The marker lets the shim tell a requested stop from a crash in the exit reason.
	if f, err := os.OpenFile(filepath.Join(h.dir, bundle.StopFile), os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	if err := proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGTERM); err != nil && !errors.Is(err, proc.ErrNotRunning) {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.spec.ID, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-h.done:
		return h.exit, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.spec.ID, ctx.Err())
	case <-timer.C:
	}
	if err := proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGKILL); err != nil && !errors.Is(err, proc.ErrNotRunning) {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.spec.ID, err)
	}
	if h.state.Cgroup {
		if g, err := h.d.hier.Open(h.spec.ID); err == nil {
			if err := g.Kill(ctx); err != nil {
				h.d.log.Warn("cgroup not emptied", "depot", h.spec.ID, "err", err)
			}
		}
	}
	return h.Wait(ctx)
}
