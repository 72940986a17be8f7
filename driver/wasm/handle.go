package wasm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/exit"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// handle is one depot of this driver. It holds a connection to the depot's supervisor;
// the connection's end is the supervisor's, and so the depot's: the goroutine reading it
// (watch) then learns the exit once, and every Wait shares it.
type handle struct {
	*depots.Depot
	d *Driver

	mu       sync.Mutex
	state    proto.State
	conn     net.Conn           // nil once the depot ended (or before it was reached)
	last     *driver.ExitStatus // the exit the supervisor sent, if it did
	released bool               // the driver dropped this handle: its end says nothing
}

func newHandle(d *Driver, s driver.Spec, dir string, st proto.State) *handle {
	return &handle{Depot: depots.NewDepot(s, dir), d: d, state: st}
}

// PID returns the supervisor's process ID: the module runs inside it.
func (h *handle) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.PID
}

func (h *handle) StartedAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.StartedAt
}

func (h *handle) Limits() driver.LimitReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.Limits
}

func (h *handle) setState(st proto.State) {
	h.mu.Lock()
	h.state = st
	h.mu.Unlock()
}

// watch starts reading the supervisor's statuses until its connection ends, then
// finishes the depot. reaped, for a supervisor this agent started, closes once it was
// reaped.
func (h *handle) watch(c net.Conn, r *proto.Reader, reaped <-chan struct{}) {
	h.mu.Lock()
	h.conn = c
	h.mu.Unlock()
	go h.read(c, r, reaped)
}

func (h *handle) read(c net.Conn, r *proto.Reader, reaped <-chan struct{}) {
	for {
		var st proto.Status
		if err := r.Next(&st); err != nil {
			break
		}
		h.mu.Lock()
		h.state = st.State
		if st.Exit != nil {
			h.last = st.Exit
		}
		h.mu.Unlock()
	}
	c.Close()
	if reaped != nil {
		<-reaped
	}
	h.mu.Lock()
	h.conn = nil
	released := h.released
	last := h.last
	h.mu.Unlock()
	if released {
		return
	}
	h.finish(last)
}

// release drops the handle's connection without concluding anything from its end (the
// driver replaced the handle by another).
func (h *handle) release() {
	h.mu.Lock()
	h.released = true
	c := h.conn
	h.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// finish runs once the supervisor is gone: it takes the exit the supervisor sent or
// recorded, or, when there is none, records the depot as killed (when this driver
// killed it) or lost, so that the next Recover agrees.
func (h *handle) finish(last *driver.ExitStatus) {
	if last != nil {
		h.Set(*last)
		return
	}
	var ex driver.ExitStatus
	if err := statefile.Read(filepath.Join(h.Dir(), proto.ExitFile), &ex); err == nil {
		h.Set(ex)
		return
	}
	h.mu.Lock()
	st := h.state
	h.mu.Unlock()
	switch {
	case statefile.Exists(filepath.Join(h.Dir(), proto.KillFile)):
		ex = exit.Signaled(syscall.SIGKILL)
		if statefile.Exists(filepath.Join(h.Dir(), proto.StopFile)) {
			ex.Reason = "stopped (killed by SIGKILL: the supervisor did not end the module within the grace)"
		}
	case st.Phase == "" || st.Phase == proto.Starting:
		ex = driver.ExitStatus{Code: -1, Reason: "lost: supervisor died before starting the module"}
	default:
		ex = driver.ExitStatus{Code: -1, Reason: "lost: supervisor died"}
	}
	ex.StartedAt, ex.FinishedAt = st.StartedAt, time.Now()
	// A supervisor killed inside the depot's cgroup could not remove it.
	h.d.sweepGroup(h.ID())
	if err := statefile.Write(filepath.Join(h.Dir(), proto.ExitFile), ex); err != nil {
		h.d.Log.Warn("cannot record the depot's end", "depot", h.ID(), "err", err)
	}
	if ex.Lost() {
		h.d.Log.Warn("depot lost", "depot", h.ID(), "reason", ex.Reason)
	}
	h.Set(ex)
}

// send writes a command to the supervisor.
func (h *handle) send(c proto.Command) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return os.ErrProcessDone
	}
	h.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer h.conn.SetWriteDeadline(time.Time{})
	return proto.NewWriter(h.conn).Send(proto.Message{Command: &c})
}

// Signal passes sig on to the depot. WASI preview 1 has no signals: SIGTERM and SIGINT
// end the module (at its next call, loop iteration or wait), SIGKILL kills the
// supervisor with it; other signals cannot be delivered and are an error.
func (h *handle) Signal(sig os.Signal) error {
	if h.Exited() {
		return fmt.Errorf("signal depot %q: %w", h.ID(), os.ErrProcessDone)
	}
	var err error
	switch sig {
	case syscall.SIGTERM:
		err = h.send(proto.Command{Op: "signal", Signal: "SIGTERM"})
	case syscall.SIGINT:
		err = h.send(proto.Command{Op: "signal", Signal: "SIGINT"})
	case syscall.SIGKILL:
		err = h.kill()
	default:
		return fmt.Errorf("signal depot %q: %v cannot be delivered: a WASI module has no signal handlers (SIGTERM and SIGINT end the module, SIGKILL kills its supervisor)", h.ID(), sig)
	}
	if errors.Is(err, os.ErrProcessDone) || (err != nil && h.Exited()) {
		return fmt.Errorf("signal depot %q: %w", h.ID(), os.ErrProcessDone)
	}
	if err != nil {
		return fmt.Errorf("signal depot %q: %w", h.ID(), err)
	}
	return nil
}

// kill kills the supervisor (and so the module). The marker lets finish say that the
// depot was killed rather than lost.
func (h *handle) kill() error {
	if err := statefile.Touch(filepath.Join(h.Dir(), proto.KillFile)); err != nil {
		return err
	}
	h.mu.Lock()
	pid, live := h.state.PID, h.conn != nil
	h.mu.Unlock()
	// While the connection is open the supervisor has not exited, so the PID is still
	// its own.
	if !live || h.Exited() || pid <= 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Stop asks the supervisor to end the module and, if the depot has not ended after
// grace, kills the supervisor. It returns the exit status once known.
func (h *handle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	if st, ok := h.Status(); ok {
		return st, nil
	}
	// The marker makes the exit read "stopped" rather than "killed".
	if err := statefile.Touch(filepath.Join(h.Dir(), proto.StopFile)); err != nil {
		h.d.Log.Warn("stop marker not written", "depot", h.ID(), "err", err)
	}
	if err := h.send(proto.Command{Op: "stop"}); err != nil && !errors.Is(err, os.ErrProcessDone) {
		h.d.Log.Debug("stop command not sent", "depot", h.ID(), "err", err)
	}
	if st, ended, err := h.WaitGrace(ctx, grace); err != nil {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
	} else if ended {
		return st, nil
	}
	if err := h.kill(); err != nil {
		return driver.ExitStatus{}, fmt.Errorf("stop depot %q: %w", h.ID(), err)
	}
	return h.Wait(ctx)
}
