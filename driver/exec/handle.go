package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/statefile"
)

// handle is one depot of this driver. Its exit is learnt once, by the goroutine that
// watches the shim (finish), and then shared by every Wait.
type handle struct {
	*depots.Depot
	d     *Driver
	state bundle.State
}

func newHandle(d *Driver, s driver.Spec, dir string, st bundle.State) *handle {
	return &handle{Depot: depots.NewDepot(s, dir), d: d, state: st}
}

func (h *handle) PID() int                   { return h.state.PID }
func (h *handle) StartedAt() time.Time       { return h.state.StartedAt }
func (h *handle) Limits() driver.LimitReport { return h.state.Limits }

// finish runs once the shim is gone: it takes the exit the shim recorded or, when there
// is none, kills whatever of the depot still runs and records it as lost, so that the
// next Recover agrees.
func (h *handle) finish() {
	var ex bundle.Exit
	if err := statefile.Read(filepath.Join(h.Dir(), bundle.ExitFile), &ex); err == nil {
		h.Set(ex.ExitStatus)
		return
	}
	reason := "lost: supervisor died"
	if h.state.PID == 0 {
		reason = "lost: supervisor died before starting the workload"
	} else if proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGKILL) == nil {
		reason = "lost: supervisor died; the orphaned workload was killed"
	}
	if h.state.Cgroup {
		h.d.sweepGroup(h.ID())
	}
	ex = bundle.Exit{
		ExitStatus: driver.ExitStatus{Code: -1, Reason: reason, StartedAt: h.state.StartedAt, FinishedAt: time.Now()},
		PID:        h.state.PID, PIDStart: h.state.PIDStart,
	}
	if err := statefile.Write(filepath.Join(h.Dir(), bundle.ExitFile), ex); err != nil {
		h.d.Log.Warn("cannot record lost depot", "depot", h.ID(), "err", err)
	}
	h.d.Log.Warn("depot lost", "depot", h.ID(), "reason", reason)
	h.Set(ex.ExitStatus)
}

// Signal sends sig to the workload's main process.
func (h *handle) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal depot %q: %v is not a system signal", h.ID(), sig)
	}
	if h.Exited() {
		return fmt.Errorf("signal depot %q: %w", h.ID(), os.ErrProcessDone)
	}
	if err := proc.Signal(h.state.PID, h.state.PIDStart, s); err != nil {
		if errors.Is(err, proc.ErrNotRunning) {
			return fmt.Errorf("signal depot %q: %w", h.ID(), os.ErrProcessDone)
		}
		return fmt.Errorf("signal depot %q: %w", h.ID(), err)
	}
	return nil
}

// Stop sends SIGTERM to the workload's process group and, if the depot has not ended
// after grace, SIGKILL to the group and to every process in the depot's cgroup. It
// returns the exit status once the shim has recorded it.
func (h *handle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	if st, ok := h.Status(); ok {
		return st, nil
	}
	// The marker lets the shim tell a requested stop from a crash in the exit reason.
	statefile.Touch(filepath.Join(h.Dir(), bundle.StopFile))
	if err := proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGTERM); err != nil && !errors.Is(err, proc.ErrNotRunning) {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
	}
	if st, ended, err := h.WaitGrace(ctx, grace); err != nil {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
	} else if ended {
		return st, nil
	}
	if err := proc.SignalGroup(h.state.PID, h.state.PIDStart, syscall.SIGKILL); err != nil && !errors.Is(err, proc.ErrNotRunning) {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
	}
	if h.state.Cgroup {
		if g, err := h.d.Hier.Open(h.ID()); err == nil {
			if err := g.Kill(ctx); err != nil {
				h.d.Log.Warn("cgroup not emptied", "depot", h.ID(), "err", err)
			}
		}
	}
	return h.Wait(ctx)
}
