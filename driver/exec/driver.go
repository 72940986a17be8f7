package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/exec/internal/proc"
	"qnet.dev/qnet/driver/exec/shim"
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

// Validate reports the first bad field of c.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("exec driver: Dir is empty: want a runtime directory that survives agent restarts, e.g. <data-dir>/depots")
	}
	if c.CgroupParent != "" {
		if err := cgroup.ValidateParent(c.CgroupParent); err != nil {
			return fmt.Errorf("exec driver: CgroupParent: %w", err)
		}
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("exec driver: StartTimeout is %v: want >= 0 (0 = 30s)", c.StartTimeout)
	}
	return nil
}

// Driver runs depots as processes, each under a shim. It is safe for concurrent use.
type Driver struct {
	runtimeDir string
	shimPath   string
	shimArgs   []string
	shimEnv    []string
	hier       cgroup.Hierarchy
	require    bool
	timeout    time.Duration
	log        *slog.Logger

	// warm is a shim started in advance, waiting for its launch; bg runs the goroutine
	// that starts it.
	warmMu    sync.Mutex
	warm      *shimProc
	refilling bool
	closed    bool
	bg        sync.WaitGroup

	mu       sync.Mutex
	handles  map[string]*handle
	starting map[string]bool // IDs in Start, which Recover leaves alone
}

var _ driver.Driver = (*Driver)(nil)

// New checks cfg, detects cgroups (unless cfg.Cgroup is set) and returns the driver. It
// starts nothing; call Recover to find depots from before a restart.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{
		shimArgs: cfg.ShimArgs, shimEnv: cfg.ShimEnv, require: cfg.RequireLimits,
		timeout: cfg.StartTimeout, log: cfg.Logger, handles: make(map[string]*handle), starting: make(map[string]bool),
	}
	if d.shimArgs == nil {
		d.shimArgs = []string{"shim"}
	}
	if d.timeout == 0 {
		d.timeout = 30 * time.Second
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("driver", Name)
	var err error
	if d.runtimeDir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("exec driver: Dir: %w", err)
	}
	if err := os.MkdirAll(d.runtimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("exec driver: Dir: %w", err)
	}
	d.shimPath = cfg.ShimBinary
	if d.shimPath == "" {
		if d.shimPath, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("exec driver: find own binary for the shim (set ShimBinary): %w", err)
		}
	}
	if d.shimPath, err = filepath.Abs(d.shimPath); err != nil {
		return nil, fmt.Errorf("exec driver: ShimBinary: %w", err)
	}
	if err := checkExecutable(d.shimPath); err != nil {
		return nil, fmt.Errorf("exec driver: ShimBinary %s: %v", d.shimPath, err)
	}
	if cfg.Cgroup != nil {
		d.hier = *cfg.Cgroup
	} else {
		d.hier = cgroup.Detect(cfg.CgroupParent)
	}
	if d.hier.Version == cgroup.None {
		d.log.Warn("depots will run without resource limits", "reason", d.hier.Reason)
	}
	return d, nil
}

// Name returns "exec".
func (d *Driver) Name() string { return Name }

// Cgroups returns the cgroup hierarchy the driver uses (Version None when limits cannot
// be enforced on this node, with the reason).
func (d *Driver) Cgroups() cgroup.Hierarchy { return d.hier }

// LimitSupport says in one line how this node enforces depot limits, for status
// reports: "cgroup v1", "cgroup v2", or "none: <why>", with a note when one controller
// is missing.
func (d *Driver) LimitSupport() string {
	switch {
	case d.hier.Version == cgroup.None:
		return "none: " + d.hier.Reason
	case d.hier.Reason != "":
		return d.hier.Version.String() + " (" + d.hier.Reason + ")"
	}
	return d.hier.Version.String()
}

func (d *Driver) dir(id string) string { return filepath.Join(d.runtimeDir, id) }

// Logs returns the paths of the depot's current stdout and stderr log files (rotated
// ones beside them as .1, .2, …). An ID that could not name a depot gives empty paths.
func (d *Driver) Logs(id string) (stdout, stderr string) {
	if !validID(id) {
		return "", ""
	}
	return filepath.Join(d.dir(id), bundle.Stdout), filepath.Join(d.dir(id), bundle.Stderr)
}

// validID reports whether id is a well-formed depot ID (so it names a directory inside
// the runtime directory, never outside).
func validID(id string) bool {
	return (driver.Spec{ID: id, Command: "x"}).Validate() == nil
}

// Start starts the depot's shim and returns once the workload's program has been
// executed. Command resolution and the working directory are checked first, so the
// common mistakes fail fast with an error naming the command and the PATH searched.
func (d *Driver) Start(ctx context.Context, s driver.Spec) (driver.Handle, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrBadSpec, err)
	}
	s = s.WithDefaults()
	if err := checkDir(s); err != nil {
		return nil, err
	}
	path, err := resolveCommand(s)
	if err != nil {
		return nil, err
	}
	dir := d.dir(s.ID)
	d.mu.Lock()
	prev, tracked := d.handles[s.ID]
	if tracked && prev.exited() {
		// A restart of a depot that exited: its logs stay, the rest of its state goes.
		err = d.resetLocked(s.ID)
		tracked = false
	} else if !tracked {
		// The directory is the lock: one Start per ID, on this driver or another.
		err = os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) && !d.starting[s.ID] && !d.shimAlive(dir) {
			err = d.resetLocked(s.ID)
		}
	}
	if tracked || errors.Is(err, fs.ErrExist) {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: %q has runtime state in %s; Remove it first", driver.ErrExists, s.ID, dir)
	}
	if err != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	d.starting[s.ID] = true
	d.mu.Unlock()
	h, err := d.start(ctx, s, path, dir)
	if err != nil {
		os.RemoveAll(dir)
	}
	d.mu.Lock()
	delete(d.starting, s.ID)
	if err == nil {
		d.handles[s.ID] = h
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (d *Driver) start(ctx context.Context, s driver.Spec, path, dir string) (*handle, error) {
	launch := bundle.Launch{
		Spec: s, Path: path, Cgroup: d.hier, RequireLimits: d.require,
		Self: append([]string{d.shimPath}, d.shimArgs...),
	}
	if err := bundle.WriteJSON(filepath.Join(dir, bundle.SpecFile), launch.Redacted()); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	// A warm shim (started in advance) takes the launch at once; without one, or when it
	// is gone, a shim is started for this depot.
	sp := d.takeWarm()
	if sp != nil {
		launch.Dir = dir
		if err := bundle.SendLaunch(sp.launchW, launch); err != nil {
			d.log.Debug("warm shim gone; starting one", "depot", s.ID, "err", err)
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
			d.log.Debug("launch not sent", "depot", s.ID, "err", err)
		}
	}
	cmd, helloR := sp.cmd, sp.helloR
	defer helloR.Close()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
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
		cmd.Process.Kill()
		<-sp.exited
		d.killFromState(dir, s.ID)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start depot %q: waiting for the shim: %w", s.ID, context.Cause(ctx))
		}
		return nil, fmt.Errorf("start depot %q: %w", s.ID, readErr)
	case hello.State == nil:
		<-sp.exited
		d.killFromState(dir, s.ID)
		msg := hello.Error
		if msg == "" {
			msg = "the shim exited before starting the workload: " + tail(filepath.Join(dir, bundle.ShimLog))
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
		// The shim is our child until this agent exits; it is reaped by spawnShim's
		// goroutine, and its end is the depot's.
		<-sp.exited
		h.finish()
	}()
	return h, nil
}

// shimProc is a shim this driver started, with its ends of the two pipes.
type shimProc struct {
	cmd     *osexec.Cmd
	helloR  *os.File
	launchW *os.File
	exited  chan struct{} // closed once the shim has exited and was reaped
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
	cmd := &osexec.Cmd{
		Path:       d.shimPath,
		Args:       append(append([]string{d.shimPath}, d.shimArgs...), dir),
		Env:        append(os.Environ(), d.shimEnv...),
		Dir:        "/",
		ExtraFiles: []*os.File{helloW, launchR}, // fds 3 and 4: bundle.ReportFD, bundle.LaunchFD
		// A session of its own: no signal for the agent's terminal or process group
		// reaches the shim, and it lives on when the agent exits.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err = cmd.Start()
	helloW.Close()
	launchR.Close()
	if err != nil {
		helloR.Close()
		launchW.Close()
		return nil, fmt.Errorf("start shim %s: %w", d.shimPath, err)
	}
	sp := &shimProc{cmd: cmd, helloR: helloR, launchW: launchW, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(sp.exited)
	}()
	return sp, nil
}

// discard ends a warm shim that will not be used: its launch pipe closes, so it exits.
func (sp *shimProc) discard() {
	sp.launchW.Close()
	sp.helloR.Close()
	// A real shim exits at once on EOF; anything else is not given long.
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-sp.exited:
	case <-t.C:
		sp.cmd.Process.Kill()
		<-sp.exited
	}
}

// takeWarm hands out the warm shim, if one is ready, and starts another in its place.
func (d *Driver) takeWarm() *shimProc {
	d.warmMu.Lock()
	sp := d.warm
	d.warm = nil
	d.warmMu.Unlock()
	d.refill()
	if sp == nil {
		return nil
	}
	select {
	case <-sp.exited:
		sp.discard()
		return nil
	default:
		return sp
	}
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
			d.log.Warn("cannot start a warm shim; depots will start their own", "err", err)
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
	if bundle.ReadJSON(filepath.Join(dir, bundle.StateFile), &st) == nil && st.PID > 0 {
		proc.SignalGroup(st.PID, st.PIDStart, syscall.SIGKILL)
	}
	d.sweepGroup(id)
}

// sweepGroup kills every process left in the depot's cgroup and removes the group.
func (d *Driver) sweepGroup(id string) {
	if d.hier.Version == cgroup.None {
		return
	}
	g, err := d.hier.Open(id)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Kill(ctx); err != nil {
		d.log.Warn("cgroup not emptied", "depot", id, "err", err)
	}
	if err := g.Remove(ctx); err != nil {
		d.log.Warn("cgroup not removed", "depot", id, "err", err)
	}
}

// tail returns the last line of a file, for error messages.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "(shim.log is empty)"
	}
	return lines[len(lines)-1]
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
	entries, err := os.ReadDir(d.runtimeDir)
	if err != nil {
		return nil, fmt.Errorf("recover depots: %w", err)
	}
	var out []driver.Handle
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		id := e.Name()
		d.mu.Lock()
		h, ok := d.handles[id]
		starting := d.starting[id]
		d.mu.Unlock()
		if ok {
			out = append(out, h)
			continue
		}
		if starting {
			continue // Start is on it and will return the handle
		}
		h, err := d.recoverOne(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("recover depots: %w", ctx.Err())
			}
			d.log.Warn("depot directory not recovered", "depot", id, "err", err)
			continue
		}
		d.mu.Lock()
		if prev, ok := d.handles[id]; ok { // a concurrent Recover got there first
			h = prev
		} else {
			d.handles[id] = h
		}
		d.mu.Unlock()
		out = append(out, h)
	}
	// The agent is starting: have a shim ready for its first depot.
	d.refill()
	return out, nil
}

func (d *Driver) recoverOne(ctx context.Context, id string) (*handle, error) {
	dir := d.dir(id)
	var launch bundle.Launch
	if err := bundle.ReadJSON(filepath.Join(dir, bundle.SpecFile), &launch); err != nil {
		return nil, err
	}
	var st bundle.State
	stateErr := bundle.ReadJSON(filepath.Join(dir, bundle.StateFile), &st)
	// A shim still starting (the agent died during Start) gets until ctx to report.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for stateErr == nil && st.Phase == bundle.Starting && proc.Alive(st.ShimPID, st.ShimStart) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		stateErr = bundle.ReadJSON(filepath.Join(dir, bundle.StateFile), &st)
	}
	h := newHandle(d, launch.Spec, dir, st)
	var ex bundle.Exit
	switch {
	case bundle.ReadJSON(filepath.Join(dir, bundle.ExitFile), &ex) == nil:
		h.setExit(ex.ExitStatus)
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
	if err := bundle.ReadJSON(filepath.Join(dir, bundle.StateFile), &st); err != nil {
		// No state yet: a shim may be between launch and its first write; only an exit
		// record proves it is gone.
		return !bundle.Exists(filepath.Join(dir, bundle.ExitFile))
	}
	return proc.Alive(st.ShimPID, st.ShimStart)
}

// resetLocked clears the runtime state of a depot that has exited so it can be started
// again under the same ID. Its log files are kept: a restarted depot's logs continue
// where the last run's ended, as a container's do. d.mu must be held.
func (d *Driver) resetLocked(id string) error {
	dir := d.dir(id)
	d.sweepGroup(id)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("restart depot %q: %w", id, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, bundle.Stdout) || strings.HasPrefix(name, bundle.Stderr) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("restart depot %q: %w", id, err)
		}
	}
	delete(d.handles, id)
	return nil
}

// Remove deletes a stopped depot's runtime directory (and its cgroup, if one is left).
func (d *Driver) Remove(id string) error {
	if !validID(id) {
		return fmt.Errorf("remove depot %q: %w", id, driver.ErrNotFound)
	}
	dir := d.dir(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.handles[id]; ok {
		if !h.exited() {
			return fmt.Errorf("remove depot %q: %w; Stop it first", id, driver.ErrRunning)
		}
	} else {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove depot %q: %w", id, driver.ErrNotFound)
		}
		var st bundle.State
		if bundle.ReadJSON(filepath.Join(dir, bundle.StateFile), &st) == nil && proc.Alive(st.ShimPID, st.ShimStart) {
			return fmt.Errorf("remove depot %q: %w (its shim, pid %d, runs); Stop it first", id, driver.ErrRunning, st.ShimPID)
		}
	}
	d.sweepGroup(id)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove depot %q: %w", id, err)
	}
	delete(d.handles, id)
	return nil
}

// Close releases what the driver holds on the node: the cgroup parent of its depots,
// when no depot group is left under it. Depots themselves are not touched.
func (d *Driver) Close() error {
	d.warmMu.Lock()
	d.closed = true
	sp := d.warm
	d.warm = nil
	d.warmMu.Unlock()
	d.bg.Wait()
	if sp != nil {
		sp.discard()
	}
	if d.hier.Version == cgroup.None || d.hier.Parent == "" {
		return nil
	}
	for _, top := range []string{d.hier.CPU, d.hier.Memory} {
		if top == "" {
			continue
		}
		// Fails, harmlessly, while depot groups remain under it.
		os.Remove(filepath.Join(top, d.hier.Parent))
	}
	return nil
}
