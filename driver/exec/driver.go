package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/internal/depotgroup"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/settings"
	"qnet.dev/qnet/driver/internal/shimproc"
	"qnet.dev/qnet/driver/internal/statefile"
)

// Name is the driver's name in manifests.
const Name = "exec"

// Config configures the exec driver.
type Config struct {
	// Dir is the runtime directory: one directory per depot (spec, state, exit record,
	// logs). It must survive agent restarts; it is created if missing.
	Dir string
	// ShimBinary is the program that runs the shim; empty means this program
	// (os.Executable), which must then handle "ShimArgs... <dir>" by calling shim.Main.
	ShimBinary string
	// ShimArgs come between ShimBinary and the depot directory; nil means ["shim"].
	ShimArgs []string
	// ShimEnv is added to the agent's environment for the shim (never for the workload,
	// whose environment is Spec.Env alone).
	ShimEnv []string
	// Cgroup, when set, is used instead of detecting the node's hierarchy; set Version
	// to cgroup.None to run without cgroups.
	Cgroup *cgroup.Hierarchy
	// CgroupParent is where depot groups are made (default cgroup.DefaultParent). Two
	// agents on one machine need different parents.
	CgroupParent string
	// RequireLimits makes Start fail with driver.ErrLimitsUnavailable when a depot asks
	// for a limit the node cannot enforce; otherwise it runs unlimited and Limits says so.
	RequireLimits bool
	// StartTimeout bounds how long Start waits for the shim to report (default 30s),
	// on top of the caller's context.
	StartTimeout time.Duration
	// Logger receives the driver's own logs (default slog.Default()).
	Logger *slog.Logger
}

// common returns the settings c has alike with the other drivers' Configs.
func (c Config) common() settings.Common {
	return settings.Common{
		Driver: Name, Dir: c.Dir, DirExample: "<data-dir>/depots",
		Cgroup: c.Cgroup, CgroupParent: c.CgroupParent, RequireLimits: c.RequireLimits,
		StartTimeout: c.StartTimeout, DefaultStartTimeout: 30 * time.Second, Logger: c.Logger,
	}
}

// Validate reports the first bad field of c.
func (c Config) Validate() error { return c.common().Validate() }

// Driver runs depots as processes, each under a shim. It is safe for concurrent use.
type Driver struct {
	settings.Resolved
	depots *depots.Table[*handle]
	shim   shimproc.Command

	// warm is a shim started in advance, waiting for its launch; bg runs the goroutine
	// that starts it.
	warmMu    sync.Mutex
	warm      *shimProc
	refilling bool
	closed    bool
	bg        sync.WaitGroup
}

var _ driver.Driver = (*Driver)(nil)

// New checks cfg, detects cgroups (unless cfg.Cgroup is set) and returns the driver. It
// starts nothing; call Recover to find depots from before a restart.
func New(cfg Config) (*Driver, error) {
	s, err := cfg.common().Resolve()
	if err != nil {
		return nil, err
	}
	d := &Driver{Resolved: s}
	if d.shim, err = shimproc.NewCommand(cfg.ShimBinary, cfg.ShimArgs, []string{"shim"}, cfg.ShimEnv); err != nil {
		return nil, fmt.Errorf("exec driver: ShimBinary: %w", err)
	}
	if d.depots, err = depots.New[*handle](cfg.Dir, nil); err != nil {
		return nil, fmt.Errorf("exec driver: Dir: %w", err)
	}
	if d.Hier.Version == cgroup.None && cfg.Cgroup == nil {
		// Detected, not chosen by the caller (the oci driver leaves limits to runc).
		d.Log.Warn("depots will run without resource limits", "reason", d.Hier.Reason)
	}
	return d, nil
}

// Name returns "exec".
func (d *Driver) Name() string { return Name }

// Cgroups returns the cgroup hierarchy the driver uses (Version None when limits cannot
// be enforced on this node, with the reason).
func (d *Driver) Cgroups() cgroup.Hierarchy { return d.Hier }

// LimitSupport says in one line how this node enforces depot limits, for status
// reports: "cgroup v1", "cgroup v2", or "none: <why>", with a note when one controller
// is missing.
func (d *Driver) LimitSupport() string {
	switch {
	case d.Hier.Version == cgroup.None:
		return "none: " + d.Hier.Reason
	case d.Hier.Reason != "":
		return d.Hier.Version.String() + " (" + d.Hier.Reason + ")"
	}
	return d.Hier.Version.String()
}

// Logs returns the paths of the depot's current stdout and stderr log files (rotated
// ones beside them as .1, .2, …). An ID that could not name a depot gives empty paths.
func (d *Driver) Logs(id string) (stdout, stderr string) {
	if !depots.ValidID(id) {
		return "", ""
	}
	return filepath.Join(d.depots.Dir(id), bundle.Stdout), filepath.Join(d.depots.Dir(id), bundle.Stderr)
}

// Start starts the depot's shim and returns once the workload's program has been
// executed. Command resolution and the working directory are checked first, so the
// common mistakes fail fast with an error naming the command and the PATH searched.
func (d *Driver) Start(ctx context.Context, s driver.Spec) (driver.Handle, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrBadSpec, err)
	}
	for i, m := range s.Mounts {
		if m.Target != m.Source {
			return nil, fmt.Errorf("%w: spec.mounts[%d] of depot %q shows %s at %s: exec depots see the node's filesystem as it is, so a mount's target must be its source (pass the real path to the program instead)", driver.ErrBadSpec, i, s.ID, m.Source, m.Target)
		}
	}
	s = s.WithDefaults()
	if err := checkDir(s); err != nil {
		return nil, err
	}
	path, err := resolveCommand(s)
	if err != nil {
		return nil, err
	}
	dir := d.depots.Dir(s.ID)
	// A depot that ended, started again, keeps its logs; the rest of its state goes.
	reset := func(*handle) error { return d.reset(s.ID) }
	if _, err := d.depots.Claim(s.ID, reset, func() bool { return !d.shimAlive(dir) }); err != nil {
		return nil, err
	}
	h, err := d.start(ctx, s, path, dir)
	if err != nil {
		os.RemoveAll(dir)
	}
	d.depots.Started(s.ID, h, err)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (d *Driver) start(ctx context.Context, s driver.Spec, path, dir string) (*handle, error) {
	launch := bundle.Launch{
		Spec: s, Path: path, Cgroup: d.Hier, RequireLimits: d.Require,
		Self: append([]string{d.shim.Path}, d.shim.Args...),
	}
	if err := statefile.Write(filepath.Join(dir, bundle.SpecFile), launch.Redacted()); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	// A warm shim (started in advance) takes the launch at once; without one, or when it
	// is gone, a shim is started for this depot.
	sp := d.takeWarm()
	if sp != nil {
		launch.Dir = dir
		if err := bundle.SendLaunch(sp.launchW, launch); err != nil {
			d.Log.Debug("warm shim gone; starting one", "depot", s.ID, "err", err)
			sp.discard()
			sp = nil
		}
	}
	if sp == nil {
		shimLog, err := os.OpenFile(filepath.Join(dir, bundle.ShimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
		}
		sp, err = d.spawnShim(dir, shimLog)
		shimLog.Close()
		if err != nil {
			return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
		}
		launch.Dir = ""
		// The full launch, environment included, goes through the pipe only. A shim that
		// died at once shows as a broken pipe here and as a missing report below.
		if err := bundle.SendLaunch(sp.launchW, launch); err != nil {
			d.Log.Debug("launch not sent", "depot", s.ID, "err", err)
		}
	}
	helloR := sp.helloR
	defer helloR.Close()
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		helloR.SetReadDeadline(time.Unix(1, 0))
	})
	// The one message from the shim; the pipe closes after it (or when the shim dies).
	data, readErr := io.ReadAll(helloR)
	stop()
	var hello bundle.Hello
	if readErr == nil && len(data) > 0 {
		if err := json.Unmarshal(data, &hello); err != nil {
			readErr = fmt.Errorf("bad message from shim: %w", err)
		}
	}
	switch {
	case readErr != nil:
		// Timed out or cancelled: take the shim and anything it started down with it.
		sp.Kill()
		d.killFromState(dir, s.ID)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start depot %q: waiting for the shim: %w", s.ID, context.Cause(ctx))
		}
		return nil, fmt.Errorf("start depot %q: %w", s.ID, readErr)
	case hello.State == nil:
		<-sp.Exited
		d.killFromState(dir, s.ID)
		msg := hello.Error
		if msg == "" {
			msg = "the shim exited before starting the workload: " + shimproc.LastLine(filepath.Join(dir, bundle.ShimLog))
		}
		switch hello.Kind {
		case "command":
			return nil, &commandError{fmt.Sprintf("%s: %s", driver.ErrCommandNotFound, msg)}
		case "dir":
			return nil, fmt.Errorf("%w: %s", driver.ErrBadSpec, msg)
		case "limits":
			return nil, fmt.Errorf("%w: %s", driver.ErrLimitsUnavailable, msg)
		}
		return nil, fmt.Errorf("start depot %q: %s", s.ID, msg)
	}
	h := newHandle(d, s, dir, *hello.State)
	go func() {
		// The shim is our child until this agent exits; its end is the depot's.
		<-sp.Exited
		h.finish()
	}()
	return h, nil
}

// shimProc is a shim this driver started, with its ends of the two pipes.
type shimProc struct {
	*shimproc.Proc
	helloR  *os.File
	launchW *os.File
}

// spawnShim starts a shim for dir (or, with dir == shim.WarmArg, one that waits for its
// launch), with its output to out (nil: nowhere).
func (d *Driver) spawnShim(dir string, out *os.File) (*shimProc, error) {
	helloR, helloW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	launchR, launchW, err := os.Pipe()
	if err != nil {
		helloR.Close()
		helloW.Close()
		return nil, err
	}
	// fds 3 and 4: bundle.ReportFD, bundle.LaunchFD
	p, err := d.shim.Start([]string{dir}, []*os.File{helloW, launchR}, out)
	if err != nil {
		helloR.Close()
		launchW.Close()
		return nil, err
	}
	return &shimProc{Proc: p, helloR: helloR, launchW: launchW}, nil
}

// discard ends a warm shim that will not be used: its launch pipe closes, so it exits.
func (sp *shimProc) discard() {
	sp.launchW.Close()
	sp.helloR.Close()
	sp.Discard()
}

// takeWarm hands out the warm shim, if one is ready, and starts another in its place.
func (d *Driver) takeWarm() *shimProc {
	d.warmMu.Lock()
	sp := d.warm
	d.warm = nil
	d.warmMu.Unlock()
	d.refill()
	if sp != nil && sp.Gone() {
		sp.discard()
		return nil
	}
	return sp
}

// refill starts a warm shim in the background unless one is ready or starting.
func (d *Driver) refill() {
	d.warmMu.Lock()
	defer d.warmMu.Unlock()
	if d.closed || d.warm != nil || d.refilling {
		return
	}
	d.refilling = true
	d.bg.Go(func() {
		sp, err := d.spawnShim(shim.WarmArg, nil)
		d.warmMu.Lock()
		d.refilling = false
		if err == nil && !d.closed {
			d.warm = sp
			sp = nil
		}
		d.warmMu.Unlock()
		if err != nil {
			d.Log.Warn("cannot start a warm shim; depots will start their own", "err", err)
		}
		if sp != nil {
			sp.discard()
		}
	})
}

// killFromState kills whatever a failed or abandoned start left running, as recorded in
// state.json, and removes the depot's cgroup.
func (d *Driver) killFromState(dir, id string) {
	var st bundle.State
	if statefile.Read(filepath.Join(dir, bundle.StateFile), &st) == nil && st.PID > 0 {
		proc.SignalGroup(st.PID, st.PIDStart, syscall.SIGKILL)
	}
	d.sweepGroup(id)
}

// sweepGroup kills every process left in the depot's cgroup and removes the group.
func (d *Driver) sweepGroup(id string) {
	depotgroup.Sweep(context.Background(), d.Hier, id, d.Log)
}

// Recover finds the depots in the runtime directory: a running shim is re-adopted (its
// workload keeps its PID; nothing is started), an exit recorded meanwhile is returned as
// such, and a depot whose shim died without recording one is killed (if anything of it
// still runs) and returned as exited with reason "lost: supervisor died". Depots this
// Driver already tracks are returned as they are. A shim caught while still starting is
// waited for until ctx ends.
//
// The workload's environment is never stored on disk (it may hold secrets), so the Spec
// of a recovered depot has Env nil.
func (d *Driver) Recover(ctx context.Context) ([]driver.Handle, error) {
	out, err := d.depots.Recover(ctx, func(id string) (*handle, error) { return d.recoverOne(ctx, id) }, d.Log)
	if err != nil {
		return out, fmt.Errorf("recover depots: %w", err)
	}
	// A node that runs depots of this driver gets a shim ready for the next one; an idle
	// one keeps none (a small device pays for nothing it does not use), and its first
	// start makes one.
	if len(out) > 0 {
		d.refill()
	}
	return out, nil
}

func (d *Driver) recoverOne(ctx context.Context, id string) (*handle, error) {
	dir := d.depots.Dir(id)
	var launch bundle.Launch
	if err := statefile.Read(filepath.Join(dir, bundle.SpecFile), &launch); err != nil {
		return nil, err
	}
	var st bundle.State
	stateErr := statefile.Read(filepath.Join(dir, bundle.StateFile), &st)
	// A shim still starting (the agent died during Start) gets until ctx to report.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for stateErr == nil && st.Phase == bundle.Starting && proc.Alive(st.ShimPID, st.ShimStart) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		stateErr = statefile.Read(filepath.Join(dir, bundle.StateFile), &st)
	}
	h := newHandle(d, launch.Spec, dir, st)
	var ex bundle.Exit
	switch {
	case statefile.Read(filepath.Join(dir, bundle.ExitFile), &ex) == nil:
		h.Set(ex.ExitStatus)
	case stateErr == nil && proc.Alive(st.ShimPID, st.ShimStart):
		go func() {
			// Not our child: wait through a pidfd (or by polling) until it is gone.
			proc.WaitExit(context.Background(), st.ShimPID, st.ShimStart)
			h.finish()
		}()
	default:
		h.finish()
	}
	return h, nil
}

// shimAlive reports whether the shim recorded in dir still runs.
func (d *Driver) shimAlive(dir string) bool {
	var st bundle.State
	if err := statefile.Read(filepath.Join(dir, bundle.StateFile), &st); err != nil {
		// No state yet: a shim may be between launch and its first write; only an exit
		// record proves it is gone.
		return !statefile.Exists(filepath.Join(dir, bundle.ExitFile))
	}
	return proc.Alive(st.ShimPID, st.ShimStart)
}

// reset clears the runtime state of a depot that has ended so it can be started again
// under the same ID. Its log files are kept: a restarted depot's logs continue where the
// last run's ended, as a container's do.
func (d *Driver) reset(id string) error {
	d.sweepGroup(id)
	if err := d.depots.Clear(id, isLog); err != nil {
		return fmt.Errorf("restart depot %q: %w", id, err)
	}
	return nil
}

// isLog reports whether name is one of a depot's log files (current or rotated).
func isLog(name string) bool {
	return strings.HasPrefix(name, bundle.Stdout) || strings.HasPrefix(name, bundle.Stderr)
}

// Remove deletes a stopped depot's runtime directory (and its cgroup, if one is left).
func (d *Driver) Remove(id string) error {
	return d.depots.Remove(id, func(_ *handle, tracked bool) error {
		dir := d.depots.Dir(id)
		var st bundle.State
		if !tracked && statefile.Read(filepath.Join(dir, bundle.StateFile), &st) == nil && proc.Alive(st.ShimPID, st.ShimStart) {
			return fmt.Errorf("%w (its shim, pid %d, runs); Stop it first", driver.ErrRunning, st.ShimPID)
		}
		d.sweepGroup(id)
		return os.RemoveAll(dir)
	})
}

// Close releases what the driver holds on the node: its warm shim, and the cgroup
// parent of its depots when no depot group is left under it. Depots themselves are not
// touched.
func (d *Driver) Close() error {
	d.warmMu.Lock()
	d.closed = true
	d.warmMu.Unlock()
	// A refill under way sees closed and discards the shim it started; the one ready
	// before is taken here (takeWarm refills no more).
	d.bg.Wait()
	if sp := d.takeWarm(); sp != nil {
		sp.discard()
	}
	// Fails, harmlessly, while depot groups remain under it.
	depotgroup.RemoveParent(d.Hier, d.Hier.Parent)
	return nil
}
