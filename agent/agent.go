// Package agent runs the depots the ledger places on this node. It watches the state
// store for placements, starts each depot through a driver, checks its liveness and
// readiness, restarts it with exponential backoff as its restart policy says, and reports
// every change of its status in signed batches. Depots outlive an agent restart: the
// next agent re-adopts them through the driver, so none runs twice and none is orphaned.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/portalloc"
	"qnet.dev/qnet/state"
)

// Config configures an Agent.
type Config struct {
	// NodeID is this node; the agent runs the placements on it.
	NodeID string
	Store  *state.Store
	// Drivers run depots, by kind ("exec", "image", "wasm").
	Drivers map[string]driver.Driver
	// Ready, when set, blocks until this node's replica of the state has caught up with
	// the network, so a restarted agent does not start depots that were moved away while
	// it was down. An error (a node cut off from the rest) lets it go on with what it has.
	Ready func(ctx context.Context) error
	// Prepare, when set, makes sure what a depot needs is on this node before its
	// driver starts it (an image or module is fetched from peers), and may complete
	// the spec with where it is (the wasm driver runs a module file: Command).
	Prepare func(ctx context.Context, s *driver.Spec) error
	// Inputs, when set, gives a depot the secrets and configs its revision names before
	// each start: it adds to the spec's environment and puts files where the depot finds
	// them. Plaintext must never reach a disk (secret.WriteFile refuses anything but a
	// tmpfs).
	Inputs func(ctx context.Context, p state.Placement, rev state.Revision, s *driver.Spec) error
	// Removed, when set, is told that a depot was removed, to free what Inputs made for it.
	Removed func(id string)
	Ports   *portalloc.Allocator
	// Report submits a batch of status changes to the ledger, signed by this node.
	Report func(ctx context.Context, changes []ledger.DepotStatus) error
	// DNS, when set, returns where the node answers DNS for SERVICE.NETWORK.qnet; depots
	// find it in $QNET_DNS.
	DNS func() string
	// Host is the address depots are reached at on this node.
	Host string
	// PathDirs are put before the agent's PATH for depots, so a depot may run the qnet
	// binary itself.
	PathDirs []string
	// ReportInterval is how long status changes are gathered before they are sent.
	ReportInterval time.Duration
	// StopGrace is how long a depot has to exit after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// DrainDelay is how long a ready depot whose placement was removed keeps running
	// before it is sent SIGTERM: every node's proxy stops choosing it at the block that
	// removed it, and connections already on their way get this long to arrive (as a
	// Kubernetes preStop sleep does for endpoints). 0 stops it at once.
	DrainDelay time.Duration
	// ResetBackoffAfter is how long a depot must run for its restart backoff to reset.
	ResetBackoffAfter time.Duration
	Log               *slog.Logger
}

// DefaultConfig returns an agent configuration with its timings set.
func DefaultConfig() Config {
	return Config{
		Host:              "127.0.0.1",
		ReportInterval:    20 * time.Millisecond,
		StopGrace:         5 * time.Second,
		DrainDelay:        500 * time.Millisecond,
		ResetBackoffAfter: 30 * time.Second,
		Log:               slog.Default(),
	}
}

// Validate refuses a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "" || c.Store == nil || len(c.Drivers) == 0 || c.Ports == nil || c.Report == nil:
		return errors.New("agent: NodeID, Store, Drivers, Ports and Report are required")
	case c.ReportInterval <= 0 || c.StopGrace <= 0:
		return errors.New("agent: ReportInterval and StopGrace must be positive")
	case c.Log == nil:
		return errors.New("agent: Log is required")
	}
	return nil
}

// Agent runs this node's depots.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	shutdown bool // set by Shutdown: start nothing more
	depots   map[string]*depot
	adopted  map[string]driver.Handle // recovered from a previous agent, not yet claimed

	statusMu sync.Mutex
	dirty    map[string]ledger.DepotStatus
	kick     chan struct{}
	reports  sync.WaitGroup
	// cleanups tracks the stopping of orphaned depots, so Run waits for them.
	cleanups sync.WaitGroup
}

// New returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Agent{
		cfg: cfg, log: cfg.Log.With("part", "agent"),
		depots: map[string]*depot{}, adopted: map[string]driver.Handle{},
		dirty: map[string]ledger.DepotStatus{}, kick: make(chan struct{}, 1),
	}, nil
}

// Run re-adopts depots left running by a previous agent, then keeps the depots on this
// node in line with the placements until ctx ends. When it ends, depots keep running
// (the next agent adopts them) unless Shutdown stopped them first.
func (a *Agent) Run(ctx context.Context) error {
	var handles []driver.Handle
	for _, kind := range slices.Sorted(maps.Keys(a.cfg.Drivers)) {
		hs, err := a.cfg.Drivers[kind].Recover(ctx)
		if err != nil {
			return fmt.Errorf("agent: recover %s depots: %w", kind, err)
		}
		handles = append(handles, hs...)
	}
	a.mu.Lock()
	for _, h := range handles {
		a.adopted[h.ID()] = h
	}
	a.mu.Unlock()
	if len(handles) > 0 {
		a.log.Info("found depots of a previous agent", "count", len(handles))
	}

	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("running depots from a state that may be behind the network", "err", err)
		}
	}

	rctx, stopReports := context.WithCancel(context.WithoutCancel(ctx))
	a.reports.Go(func() { a.reportLoop(rctx) })
	defer func() {
		a.detachAll()
		a.cleanups.Wait()
		stopReports()
		a.reports.Wait()
	}()

	resync := time.NewTicker(2 * time.Second)
	defer resync.Stop()
	for {
		_, changed := a.cfg.Store.Watch()
		if err := a.reconcile(ctx); err != nil {
			a.log.Warn("reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-resync.C:
		}
	}
}

// reconcile starts supervisors for new placements on this node and stops those whose
// placement is gone.
func (a *Agent) reconcile(ctx context.Context) error {
	placements, err := a.cfg.Store.Placements(func(p *state.Placement) bool { return p.Node == a.cfg.NodeID })
	if err != nil {
		return err
	}
	want := make(map[string]state.Placement, len(placements))
	for _, p := range placements {
		want[p.ID] = p
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shutdown {
		return nil
	}
	for id, d := range a.depots {
		if _, ok := want[id]; !ok {
			d.stop(errRemoved)
			delete(a.depots, id)
		}
	}
	// Depots of a previous agent with no placement any more are orphans: stop them.
	for id, h := range a.adopted {
		if _, ok := want[id]; !ok {
			delete(a.adopted, id)
			a.log.Info("stopping orphaned depot", "depot", id)
			d := &depot{a: a, id: id, done: make(chan struct{})}
			a.cleanups.Go(func() {
				defer close(d.done)
				d.cleanup(context.WithoutCancel(ctx), h)
			})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := a.depots[id]; ok {
			continue
		}
		p := want[id]
		rev, ok, err := a.cfg.Store.Revision(p.Service, p.Revision)
		if err != nil {
			return err
		}
		if !ok {
			a.log.Warn("placement names a revision the store lacks", "depot", id, "service", p.Service, "revision", p.Revision)
			continue
		}
		h := a.adopted[id]
		delete(a.adopted, id)
		d := newDepot(a, p, rev, h)
		a.depots[id] = d
		d.start()
	}
	return nil
}

// Shutdown stops every depot this agent runs (as `qnet dev` does on Ctrl-C) and waits
// for them to exit, or until ctx ends.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.shutdown = true
	ds := slices.Collect(maps.Values(a.depots))
	a.depots = map[string]*depot{}
	for id, h := range a.adopted {
		d := &depot{a: a, id: id, done: make(chan struct{})}
		a.cleanups.Go(func() {
			defer close(d.done)
			d.cleanup(context.WithoutCancel(ctx), h)
		})
		ds = append(ds, d)
	}
	a.adopted = map[string]driver.Handle{}
	a.mu.Unlock()
	for _, d := range ds {
		d.stop(errRemoved)
	}
	for _, d := range ds {
		select {
		case <-d.done:
		case <-ctx.Done():
			return fmt.Errorf("agent: depots still stopping: %w", ctx.Err())
		}
	}
	return nil
}

// detachAll ends the supervisors and leaves their processes running for the next agent.
func (a *Agent) detachAll() {
	a.mu.Lock()
	ds := slices.Collect(maps.Values(a.depots))
	a.depots = map[string]*depot{}
	a.mu.Unlock()
	for _, d := range ds {
		d.stop(errDetach)
	}
	for _, d := range ds {
		<-d.done
	}
}

// Depots returns the status of the depots this agent runs now, by ID.
func (a *Agent) Depots() map[string]ledger.DepotStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]ledger.DepotStatus, len(a.depots))
	for id, d := range a.depots {
		out[id] = d.snapshot()
	}
	return out
}

// LogPaths returns the current stdout and stderr log files of a depot on this node.
func (a *Agent) LogPaths(id string) (stdout, stderr string, ok bool) {
	a.mu.Lock()
	_, running := a.depots[id]
	a.mu.Unlock()
	stdout, stderr = a.logs(id)
	if !running {
		if _, err := os.Stat(stdout); err != nil {
			return "", "", false
		}
	}
	return stdout, stderr, true
}

// setStatus records a depot's new status for the next report.
func (a *Agent) setStatus(st ledger.DepotStatus) {
	a.statusMu.Lock()
	a.dirty[st.ID] = st
	a.statusMu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// reportLoop sends gathered status changes, at most one batch per ReportInterval. A
// batch that fails is merged back, so the newest status of each depot is sent later.
func (a *Agent) reportLoop(ctx context.Context) {
	backoff := a.cfg.ReportInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		t := time.NewTimer(a.cfg.ReportInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		a.statusMu.Lock()
		batch := slices.Collect(maps.Values(a.dirty))
		a.dirty = map[string]ledger.DepotStatus{}
		a.statusMu.Unlock()
		if len(batch) == 0 {
			continue
		}
		slices.SortFunc(batch, func(x, y ledger.DepotStatus) int { return cmpString(x.ID, y.ID) })
		if err := a.cfg.Report(ctx, batch); err != nil {
			a.log.Warn("status report failed", "depots", len(batch), "err", err, "retry", backoff)
			a.statusMu.Lock()
			for _, st := range batch {
				if _, newer := a.dirty[st.ID]; !newer {
					a.dirty[st.ID] = st
				}
			}
			a.statusMu.Unlock()
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
			select {
			case a.kick <- struct{}{}:
			default:
			}
			continue
		}
		backoff = a.cfg.ReportInterval
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pathEnv is PATH for depots: the agent's dirs first, then the agent's own PATH.
func (a *Agent) pathEnv() string {
	p := os.Getenv("PATH")
	for i := len(a.cfg.PathDirs) - 1; i >= 0; i-- {
		p = a.cfg.PathDirs[i] + string(filepath.ListSeparator) + p
	}
	return p
}

// logs finds a depot's log files with the driver that ran it.
func (a *Agent) logs(id string) (stdout, stderr string) {
	for _, kind := range slices.Sorted(maps.Keys(a.cfg.Drivers)) {
		o, e := a.cfg.Drivers[kind].Logs(id)
		if _, err := os.Stat(o); err == nil {
			return o, e
		}
	}
	return a.cfg.Drivers[manifestExec].Logs(id)
}

// remove deletes a depot's runtime state with whichever driver knows it.
func (a *Agent) remove(id string) error {
	var errs []error
	for _, drv := range a.cfg.Drivers {
		if err := drv.Remove(id); err != nil && !errors.Is(err, driver.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const manifestExec = "exec"
