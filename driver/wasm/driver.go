package wasm

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/depotgroup"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/settings"
	"qnet.dev/qnet/driver/internal/shimproc"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// Name is the driver's name in manifests.
const Name = "wasm"

// ErrBadModule is wrapped by Start's error when the module file is not a WASI command
// module QNet can run: not WebAssembly at all, a component, truncated or invalid, or
// importing functions the runtime does not provide. The error says which and why.
var ErrBadModule = errors.New("not a runnable WASI module")

// DataDir is where a depot's module sees its data directory.
const DataDir = proto.GuestDataPath

// File descriptors a depot's module finds open.
const (
	DataFD          = proto.DataFD          // the preopened directory DataDir
	ListenerFD      = proto.FirstListenerFD // the listener on $PORT, for a depot without Spec.Mounts
	FirstListenerFD = proto.FirstListenerFD // the listeners in order: $PORT, then each other $QNET_PORT_<NAME> by name
)

// Config configures the wasm driver.
type Config struct {
	// Dir is the runtime directory: one directory per depot (spec, state, exit record,
	// logs, the data directory). It must survive agent restarts; it is created if
	// missing. Its path must be short enough for the control sockets under it (about 85
	// bytes; see MaxDirLen).
	Dir string
	// ShimBinary is the program that runs the supervisor; empty means this program
	// (os.Executable), which must then handle "ShimArgs..." by calling shim.Main.
	ShimBinary string
	// ShimArgs follow ShimBinary on the supervisor's command line; nil means
	// ["wasm-shim"].
	ShimArgs []string
	// ShimEnv is added to the agent's environment for the supervisor (never for the
	// module, whose environment is Spec.Env alone).
	ShimEnv []string
	// CacheDir keeps compiled modules (native code), shared by all depots; empty means
	// Dir/.cache. Entries are named by the module's hash, the wazero version and the
	// CPU, so a stale one is never used; nothing removes old ones.
	CacheDir string
	// ListenHost is the address the depot's listeners are opened on when its Env has no
	// QNET_HOST; empty means 127.0.0.1.
	ListenHost string
	// Cgroup, when set, is used instead of detecting the node's hierarchy (for the CPU
	// limit); set Version to cgroup.None to run without cgroups.
	Cgroup *cgroup.Hierarchy
	// CgroupParent is where depot groups are made (default cgroup.DefaultParent).
	CgroupParent string
	// RequireLimits makes Start fail with driver.ErrLimitsUnavailable when a depot asks
	// for a limit the node cannot enforce; otherwise it runs and Limits says so.
	RequireLimits bool
	// StartTimeout bounds how long Start waits for the supervisor to report (default
	// 2m: compiling a large module for the first time takes seconds), on top of the
	// caller's context.
	StartTimeout time.Duration
	// Logger receives the driver's own logs (default slog.Default()).
	Logger *slog.Logger
}

// MaxDirLen is the longest Config.Dir (as an absolute path) for which a control socket
// path fits in the 104 bytes that Darwin and the BSDs allow (Linux allows 108).
var MaxDirLen = proto.MaxSocketPath - len(proto.SocketPath("/", "x"))

// Validate reports the first bad field of c.
func (c Config) Validate() error {
	if err := c.common().Validate(); err != nil {
		return err
	}
	return c.validateListenHost()
}

// validateListenHost reports whether ListenHost is an address listeners can be opened on.
func (c Config) validateListenHost() error {
	if c.ListenHost != "" && c.ListenHost != "localhost" && net.ParseIP(c.ListenHost) == nil {
		return fmt.Errorf("wasm driver: ListenHost %q: want an IP address such as 127.0.0.1 or ::1, or localhost", c.ListenHost)
	}
	return nil
}

// Driver runs depots as WASI modules, each under a supervisor of its own. It is safe
// for concurrent use.
type Driver struct {
	settings.Resolved
	depots     *depots.Table[*handle]
	cacheDir   string
	listenHost string
	shim       shimproc.Command

	// warm is a supervisor started in advance, waiting for its launch; bg runs the
	// goroutine that starts it.
	warmMu    sync.Mutex
	warm      *supervisorProc
	pending   *supervisorProc // started, not yet warm
	want      string          // the module to prime the next warm supervisor with
	refilling bool
	// warmChanged is closed (and replaced) when warm, pending or refilling change.
	warmChanged chan struct{}
	closed      bool
	bg          sync.WaitGroup
}

var _ driver.Driver = (*Driver)(nil)

// New checks cfg and returns the driver. It starts nothing; call Recover to find the
// depots from before a restart (and to have a supervisor ready for the first start).
func New(cfg Config) (*Driver, error) {
	if err := cfg.validateListenHost(); err != nil {
		return nil, err
	}
	s, err := cfg.common().Resolve()
	if err != nil {
		return nil, err
	}
	d := &Driver{Resolved: s, listenHost: cmp.Or(cfg.ListenHost, "127.0.0.1"), warmChanged: make(chan struct{})}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("wasm driver: Dir: %w", err)
	}
	if len(root) > MaxDirLen {
		return nil, fmt.Errorf("wasm driver: Dir %s is %d bytes long: at most %d, so that the depots' control sockets fit in a socket address", root, len(root), MaxDirLen)
	}
	// A handle the driver lets go of stops reading its supervisor's statuses.
	if d.depots, err = depots.New(root, (*handle).release); err != nil {
		return nil, fmt.Errorf("wasm driver: Dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, proto.SocketDirName), 0o700); err != nil {
		return nil, fmt.Errorf("wasm driver: Dir: %w", err)
	}
	if d.cacheDir, err = filepath.Abs(cmp.Or(cfg.CacheDir, filepath.Join(root, proto.CacheDirName))); err != nil {
		return nil, fmt.Errorf("wasm driver: CacheDir: %w", err)
	}
	if err := os.MkdirAll(d.cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("wasm driver: CacheDir: %w", err)
	}
	if d.shim, err = shimproc.NewCommand(cfg.ShimBinary, cfg.ShimArgs, []string{"wasm-shim"}, cfg.ShimEnv); err != nil {
		return nil, fmt.Errorf("wasm driver: ShimBinary: %w", err)
	}
	return d, nil
}

// common returns the settings c has alike with the other drivers' Configs.
func (c Config) common() settings.Common {
	return settings.Common{
		Driver: Name, Dir: c.Dir, DirExample: "<data-dir>/wasm",
		Cgroup: c.Cgroup, CgroupParent: c.CgroupParent, RequireLimits: c.RequireLimits,
		StartTimeout: c.StartTimeout, DefaultStartTimeout: 2 * time.Minute, Logger: c.Logger,
	}
}

// Name returns "wasm".
func (d *Driver) Name() string { return Name }

// Cgroups returns the hierarchy the driver uses for CPU limits (Version None: none).
func (d *Driver) Cgroups() cgroup.Hierarchy { return d.Hier }

// Logs returns the paths of the depot's current stdout and stderr log files (rotated
// ones beside them as .1, .2, …). An ID that could not name a depot gives empty paths.
func (d *Driver) Logs(id string) (stdout, stderr string) {
	if !depots.ValidID(id) {
		return "", ""
	}
	return filepath.Join(d.depots.Dir(id), proto.Stdout), filepath.Join(d.depots.Dir(id), proto.Stderr)
}

// DataPath returns the host directory a depot's module sees as /data.
func (d *Driver) DataPath(id string) string {
	if !depots.ValidID(id) {
		return ""
	}
	return filepath.Join(d.depots.Dir(id), proto.DataDir)
}

// Start starts the depot's supervisor and returns once its module runs: compiled (or
// taken from the cache), checked, instantiated, and its _start function entered. A
// module that cannot run is an error from Start that says why: a missing file wraps
// driver.ErrCommandNotFound, a file that is not a runnable WASI module ErrBadModule.
func (d *Driver) Start(ctx context.Context, s driver.Spec) (driver.Handle, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrBadSpec, err)
	}
	s = s.WithDefaults()
	launch, err := d.prepare(s)
	if err != nil {
		return nil, err
	}
	// A depot that ended, started again, keeps its logs and data; the rest goes.
	reset := func(*handle) error { return d.reset(s.ID) }
	fresh, err := d.depots.Claim(s.ID, reset, func() bool { return !d.supervisorAlive(s.ID) })
	if err != nil {
		return nil, err
	}
	h, err := d.start(ctx, launch)
	if err != nil && fresh {
		os.RemoveAll(d.depots.Dir(s.ID))
	} else if err != nil {
		d.clearState(s.ID)
	}
	d.depots.Started(s.ID, h, err)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// prepare resolves the module and the listeners and checks what the supervisor cannot
// do better: whether the file exists, whether the memory limit can hold a page.
func (d *Driver) prepare(s driver.Spec) (proto.Launch, error) {
	module := s.Command
	if !filepath.IsAbs(module) {
		var err error
		if s.Dir != "" {
			module = filepath.Join(s.Dir, module)
		} else if module, err = filepath.Abs(module); err != nil {
			return proto.Launch{}, fmt.Errorf("start depot %q: module %q: %w", s.ID, s.Command, err)
		}
	}
	fi, err := os.Stat(module)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return proto.Launch{}, fmt.Errorf("start depot %q: %w: module %q does not exist (resolved to %s)", s.ID, driver.ErrCommandNotFound, s.Command, module)
	case err != nil:
		return proto.Launch{}, fmt.Errorf("start depot %q: %w: module %q: %v", s.ID, driver.ErrCommandNotFound, s.Command, err)
	case !fi.Mode().IsRegular():
		return proto.Launch{}, fmt.Errorf("start depot %q: %w: module %s is not a regular file", s.ID, driver.ErrCommandNotFound, module)
	}
	if s.Memory > 0 && s.Memory < 64<<10 {
		return proto.Launch{}, fmt.Errorf("%w: spec.memory of depot %q is %d bytes: a WebAssembly memory grows in 64 KiB pages; want at least 65536 (or 0 for no limit)", driver.ErrBadSpec, s.ID, s.Memory)
	}
	listeners, err := listenersFor(s, d.listenHost)
	if err != nil {
		return proto.Launch{}, fmt.Errorf("%w: %w", driver.ErrBadSpec, err)
	}
	preopens, err := proto.Preopens(s.Mounts, os.Stat)
	if err != nil {
		return proto.Launch{}, fmt.Errorf("%w: depot %q: %w", driver.ErrBadSpec, s.ID, err)
	}
	return proto.Launch{Spec: s, Root: d.depots.Root(), Module: module, Preopens: preopens, Listeners: listeners, Cgroup: d.Hier, RequireLimits: d.Require}, nil
}

// listenersFor returns the listeners of a depot: one for PORT, then one for each other
// QNET_PORT_<NAME> in the order of the names (a port given twice is opened once), on
// QNET_HOST or else host.
func listenersFor(s driver.Spec, host string) ([]proto.Listener, error) {
	env := map[string]string{}
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if h := env["QNET_HOST"]; h != "" {
		host = h
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]" // an IPv6 address, as host:port wants it
	}
	var names []string
	if _, ok := env["PORT"]; ok {
		names = append(names, "PORT")
	}
	var named []string
	for k := range env {
		if strings.HasPrefix(k, "QNET_PORT_") {
			named = append(named, k)
		}
	}
	slices.Sort(named)
	names = append(names, named...)
	var out []proto.Listener
	seen := map[int]bool{}
	for _, name := range names {
		port, err := strconv.Atoi(env[name])
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("spec.env of depot %q: %s=%q is not a port: want a number in 1-65535", s.ID, name, env[name])
		}
		if seen[port] {
			continue
		}
		seen[port] = true
		out = append(out, proto.Listener{Env: name, Host: host, Port: port})
	}
	return out, nil
}

// start hands the launch to a supervisor and waits for its report.
func (d *Driver) start(ctx context.Context, l proto.Launch) (_ *handle, err error) {
	id, dir := l.Spec.ID, l.Dir()
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if err := statefile.Write(filepath.Join(dir, proto.SpecFile), l.Redacted()); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", id, err)
	}
	// A warm supervisor (started in advance) takes the launch at once; without one, or
	// when it is gone, one is started for this depot.
	sp := d.takeWarm(ctx, l.Module)
	defer func() {
		// Then another supervisor gets ready, primed with this module: the next start
		// is likely a restart or another replica of the same one. A module that did not
		// start is not worth compiling in advance.
		if err == nil {
			d.refill(l.Module)
		} else {
			d.refill("")
		}
	}()
	if sp != nil {
		if err := sp.w.Send(proto.Message{Launch: &l}); err != nil {
			d.Log.Debug("warm supervisor gone; starting one", "depot", id, "err", err)
			sp.discard()
			sp = nil
		}
	}
	if sp == nil {
		if sp, err = d.spawn(""); err != nil {
			return nil, fmt.Errorf("start depot %q: %w", id, err)
		}
		if err := sp.w.Send(proto.Message{Launch: &l}); err != nil {
			d.Log.Debug("launch not sent", "depot", id, "err", err) // the read below says why
		}
	}
	st, err := readStarted(ctx, sp.conn, sp.r)
	if err != nil {
		// Timed out, cancelled, or the supervisor died: take it down.
		sp.Kill()
		sp.conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start depot %q: waiting for the supervisor: %w", id, context.Cause(ctx))
		}
		return nil, fmt.Errorf("start depot %q: the supervisor exited before starting the module: %s", id, shimproc.LastLine(filepath.Join(dir, proto.SupervisorLog)))
	}
	if st.State.Phase == proto.Failed {
		sp.conn.Close()
		<-sp.Exited
		return nil, startFailure(id, st)
	}
	h := newHandle(d, l.Spec, dir, st.State)
	h.watch(sp.conn, sp.r, sp.Exited)
	return h, nil
}

// readStarted reads statuses until the supervisor is past starting (it may first say
// that it is warm), or ctx ends.
func readStarted(ctx context.Context, c net.Conn, r *proto.Reader) (proto.Status, error) {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		var st proto.Status
		if err := r.Next(&st); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, err
		}
		if st.State.Phase != proto.Starting && st.State.Phase != proto.Warm {
			return st, nil
		}
	}
}

// startFailure turns a supervisor's report of a failed start into the driver error.
func startFailure(id string, st proto.Status) error {
	switch st.Kind {
	case proto.KindMissing:
		return fmt.Errorf("start depot %q: %w: %s", id, driver.ErrCommandNotFound, st.Error)
	case proto.KindModule:
		return fmt.Errorf("start depot %q: %w: %s", id, ErrBadModule, st.Error)
	case proto.KindMemory:
		return fmt.Errorf("start depot %q: %w: %s", id, driver.ErrBadSpec, st.Error)
	case proto.KindLimits:
		return fmt.Errorf("start depot %q: %w: %s", id, driver.ErrLimitsUnavailable, st.Error)
	}
	return fmt.Errorf("start depot %q: %s", id, st.Error)
}

// supervisorProc is a supervisor this driver started, with its end of the connection.
type supervisorProc struct {
	*shimproc.Proc
	conn  net.Conn
	w     *proto.Writer
	r     *proto.Reader
	prime string // the module it compiled in advance, if any

	// For a supervisor started in advance: ready closes once it said it is warm (or
	// failed to: warmErr), and taken marks one a start took while it got ready.
	ready   chan struct{}
	warmErr error
	taken   bool // guarded by Driver.warmMu
}

// spawn starts a supervisor and sends it its Init, with prime as the module to compile
// in advance ("" for none).
func (d *Driver) spawn(prime string) (*supervisorProc, error) {
	agentEnd, childEnd, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("connection to a supervisor: %w", err)
	}
	// Until it has its launch a supervisor has no depot directory to write to.
	out, _ := os.OpenFile(filepath.Join(d.depots.Root(), proto.WarmLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	// fd 3: proto.ConnFD. The supervisor is our child until this agent exits; its end
	// is watched through the connection.
	p, err := d.shim.Start(nil, []*os.File{childEnd}, out)
	if out != nil {
		out.Close()
	}
	if err != nil {
		agentEnd.Close()
		return nil, err
	}
	conn, err := net.FileConn(agentEnd)
	agentEnd.Close()
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("connection to the supervisor: %w", err)
	}
	sp := &supervisorProc{Proc: p, conn: conn, w: proto.NewWriter(conn), r: proto.NewReader(conn), prime: prime, ready: make(chan struct{})}
	init := &proto.Init{CacheDir: d.cacheDir, Prime: prime}
	if d.Hier.Version == cgroup.V1 {
		// Only v1 renames groups (v2 refuses with EPERM); on v2 a start moves its
		// supervisor into the depot's group.
		init.Cgroup, init.Group = d.Hier, proto.WarmGroupPrefix+rand.Text()[:12]
	}
	if err := sp.w.Send(proto.Message{Init: init}); err != nil {
		sp.discard()
		return nil, fmt.Errorf("start supervisor %s: %w", d.shim.Path, err)
	}
	return sp, nil
}

// socketPair returns a connected pair of Unix stream sockets, close-on-exec so that no
// other child of the agent inherits them (a stray copy would keep a connection open
// after its supervisor died, and the agent would never learn that it did).
func socketPair() (agent, child *os.File, err error) {
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "wasm-shim"), os.NewFile(uintptr(fds[1]), "agent"), nil
}

// discard ends a supervisor that will not be used: its connection closes, so it exits.
func (sp *supervisorProc) discard() {
	sp.conn.Close()
	sp.Discard()
}

// takeWarm hands out the warm supervisor, if one is ready, or waits for the one getting
// ready when it is primed with module (it does the compiling this start would do). The
// caller refills once its start is done: a process starting meanwhile would compete
// with the start for the CPU.
func (d *Driver) takeWarm(ctx context.Context, module string) *supervisorProc {
	var sp *supervisorProc
	for sp == nil {
		d.warmMu.Lock()
		p, changed := d.pending, d.warmChanged
		switch {
		case d.warm != nil && d.warm.prime == module:
			sp, d.warm = d.warm, nil
		case p != nil && p.prime == module && !p.taken:
			sp = p
			sp.taken = true // the refill leaves it to this start
		case d.refilling && d.want == module && (p == nil || p.prime == module):
			// A supervisor for this module is about to be started, or another start
			// took the one compiling it (replicas starting together): wait for the one
			// the refill makes ready next, which loads the module from the cache the
			// first one compiled it into, rather than compile it a second time beside it.
			d.warmMu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		case d.warm != nil:
			sp, d.warm = d.warm, nil
		}
		d.warmMu.Unlock()
		if sp == nil {
			return nil
		}
	}
	if sp == nil {
		return nil
	}
	select {
	case <-sp.ready:
	case <-ctx.Done():
		sp.discard()
		return nil
	}
	if sp.Gone() || sp.warmErr != nil {
		sp.discard()
		return nil
	}
	return sp
}

// Prime has a supervisor get ready with module compiled in advance (replacing a warm
// one primed with another), so that a Start of it that comes later only instantiates
// it. The agent calls it when it knows it will start a depot of that module, as soon as
// the module file is in place; Start itself primes for the module it started last.
func (d *Driver) Prime(module string) {
	if abs, err := filepath.Abs(module); err == nil {
		d.refill(abs)
	}
}

// refill has a warm supervisor made ready in the background, primed with prime (""
// keeps the module asked for last), unless a fitting one is ready or getting ready.
func (d *Driver) refill(prime string) {
	d.warmMu.Lock()
	defer d.warmMu.Unlock()
	if d.closed {
		return
	}
	if prime != "" {
		d.want = prime
	}
	if d.refilling {
		return // the running refill looks at d.want when it is done
	}
	if d.warm != nil && d.warm.prime == d.want {
		return
	}
	d.refilling = true
	d.bg.Go(d.refillLoop)
}

// refillLoop makes warm supervisors until one primed with the module last asked for is
// ready, or the driver closes. A warm supervisor primed with another module stays
// available until its replacement is ready.
func (d *Driver) refillLoop() {
	for {
		d.warmMu.Lock()
		want, cur := d.want, d.warm
		if d.closed || (cur != nil && cur.prime == want) {
			d.refilling = false
			d.notifyLocked()
			d.warmMu.Unlock()
			return
		}
		d.warmMu.Unlock()

		sp, err := d.spawn(want)
		if err == nil {
			d.warmMu.Lock()
			d.pending = sp // Close ends the wait below by closing the connection
			if d.closed {
				err = errors.New("driver closed")
			}
			d.notifyLocked()
			d.warmMu.Unlock()
			if err == nil {
				err = readWarm(sp, d.Timeout)
			}
			sp.warmErr = err
			close(sp.ready)
		}
		d.warmMu.Lock()
		d.pending = nil
		taken := sp != nil && sp.taken
		var old *supervisorProc
		if err == nil && !taken && !d.closed {
			old, d.warm, sp = d.warm, sp, nil
		}
		if err != nil {
			d.refilling = false
		}
		d.notifyLocked()
		d.warmMu.Unlock()
		if old != nil {
			old.discard()
		}
		if sp != nil && !taken {
			sp.discard()
		}
		if err != nil {
			// Not retried at once: a supervisor that cannot start now is unlikely to
			// start a millisecond later. The next start or Prime tries again.
			d.Log.Warn("cannot start a warm supervisor; depots will start their own", "err", err)
			return
		}
	}
}

// notifyLocked wakes the starts waiting for a warm supervisor. d.warmMu must be held.
func (d *Driver) notifyLocked() {
	close(d.warmChanged)
	d.warmChanged = make(chan struct{})
}

// readWarm waits for a supervisor to say that it is warm.
func readWarm(sp *supervisorProc, timeout time.Duration) error {
	sp.conn.SetReadDeadline(time.Now().Add(timeout))
	defer sp.conn.SetReadDeadline(time.Time{})
	var st proto.Status
	if err := sp.r.Next(&st); err != nil {
		return fmt.Errorf("warm supervisor: %w", err)
	}
	if st.State.Phase != proto.Warm {
		return fmt.Errorf("warm supervisor: said %q, want %q", st.State.Phase, proto.Warm)
	}
	return nil
}

// dial connects to the depot's control socket.
func (d *Driver) dial(ctx context.Context, id string) (net.Conn, error) {
	var dl net.Dialer
	return dl.DialContext(ctx, "unix", proto.SocketPath(d.depots.Root(), id))
}

// supervisorAlive reports whether a supervisor answers on the depot's control socket.
func (d *Driver) supervisorAlive(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := d.dial(ctx, id)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Recover finds the depots in the runtime directory: a running supervisor is
// re-adopted through its control socket (its module keeps running; nothing is
// started), an exit recorded meanwhile is returned as such, and a depot whose supervisor
// died without recording one is returned as exited with reason "lost: supervisor
// died". Depots this Driver already tracks are returned as they are. When a depot
// runs, a supervisor is made ready for the next start, primed with its module. A supervisor
// caught while still starting its module is waited for until ctx ends.
//
// The module's environment is never stored on disk (it may hold secrets), so the Spec
// of a recovered depot has Env nil.
func (d *Driver) Recover(ctx context.Context) ([]driver.Handle, error) {
	// The groups of supervisors killed while they waited for a launch.
	depotgroup.RemoveEmpty(d.Hier, proto.WarmGroupPrefix)
	prime := ""
	out, err := d.depots.Recover(ctx, func(id string) (*handle, error) {
		h, module, err := d.recoverOne(ctx, id)
		if err == nil && !h.Exited() {
			prime = module
		}
		return h, err
	}, d.Log)
	if err != nil {
		return out, fmt.Errorf("recover depots: %w", err)
	}
	// A node that runs wasm depots gets a supervisor ready for the next one; a node
	// that runs none keeps none (one costs tens of MiB), and its first start makes one.
	if prime != "" {
		d.refill(prime)
	}
	return out, nil
}

// recoverOne finds one depot again and returns it with its module's path.
func (d *Driver) recoverOne(ctx context.Context, id string) (*handle, string, error) {
	dir := d.depots.Dir(id)
	var l proto.Launch
	if err := statefile.Read(filepath.Join(dir, proto.SpecFile), &l); err != nil {
		return nil, "", err
	}
	var st proto.State
	statefile.Read(filepath.Join(dir, proto.StateFile), &st)
	h := newHandle(d, l.Spec, dir, st)
	var ex driver.ExitStatus
	if statefile.Read(filepath.Join(dir, proto.ExitFile), &ex) == nil {
		h.Set(ex)
		return h, l.Module, nil
	}
	c, status, r, err := d.connect(ctx, id)
	if errors.Is(err, errGone) {
		h.finish(nil)
		return h, l.Module, nil
	}
	if err != nil {
		return nil, "", err
	}
	h.setState(status.State)
	if status.Exit != nil {
		h.last = status.Exit
	}
	h.watch(c, r, nil)
	return h, l.Module, nil
}

// errGone means no supervisor answers for a depot and none is starting.
var errGone = errors.New("supervisor gone")

// connect reaches the depot's supervisor and reads its status, waiting (until ctx ends)
// for one that is still starting. It returns errGone when there is no supervisor.
func (d *Driver) connect(ctx context.Context, id string) (net.Conn, proto.Status, *proto.Reader, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := d.dial(ctx, id)
		if err == nil {
			r := proto.NewReader(c)
			st, err := readStarted(ctx, c, r)
			if err != nil && ctx.Err() == nil {
				c.Close()
				// It ended between accepting and answering: its exit record says how.
				return nil, proto.Status{}, nil, errGone
			}
			if err != nil {
				c.Close()
				return nil, proto.Status{}, nil, err
			}
			return c, st, r, nil
		}
		if ctx.Err() != nil {
			return nil, proto.Status{}, nil, ctx.Err()
		}
		// A supervisor between its launch and its control socket has written its state
		// (phase starting) and runs: give it until ctx. Anything else is gone.
		var st proto.State
		if statefile.Read(filepath.Join(d.depots.Dir(id), proto.StateFile), &st) != nil || st.Phase != proto.Starting || !proc.Alive(st.PID, 0) {
			return nil, proto.Status{}, nil, errGone
		}
		select {
		case <-ctx.Done():
			return nil, proto.Status{}, nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// clearState removes what a failed start of a depot that ran before left, keeping its
// logs and data.
func (d *Driver) clearState(id string) {
	d.depots.Clear(id, keep)
	os.Remove(proto.SocketPath(d.depots.Root(), id))
}

// keep reports whether a file of a depot's runtime directory outlives a restart.
func keep(name string) bool {
	return name == proto.DataDir || strings.HasPrefix(name, proto.Stdout) || strings.HasPrefix(name, proto.Stderr)
}

// reset clears the runtime state of a depot that has ended so it can be started again
// under the same ID. Its logs and its data directory are kept: a restarted depot's logs
// continue where the last run's ended, and its data is its own.
func (d *Driver) reset(id string) error {
	d.sweepGroup(id)
	if _, err := os.Stat(d.depots.Dir(id)); err != nil {
		return fmt.Errorf("restart depot %q: %w", id, err)
	}
	d.clearState(id)
	return nil
}

// sweepGroup removes the depot's cgroup if its supervisor left it behind (killed while
// in it). The group is empty once the supervisor is gone.
func (d *Driver) sweepGroup(id string) {
	depotgroup.Sweep(context.Background(), d.Hier, id, d.Log)
}

// Remove deletes a stopped depot's runtime directory, data included.
func (d *Driver) Remove(id string) error {
	return d.depots.Remove(id, func(_ *handle, tracked bool) error {
		if !tracked && d.supervisorAlive(id) {
			return fmt.Errorf("%w (its supervisor runs); Stop it first", driver.ErrRunning)
		}
		d.sweepGroup(id)
		os.Remove(proto.SocketPath(d.depots.Root(), id))
		return os.RemoveAll(d.depots.Dir(id))
	})
}

// Close ends the warm supervisor and releases the cgroup parent of the depots when no
// depot group is left under it. Depots themselves are not touched.
func (d *Driver) Close() error {
	d.warmMu.Lock()
	d.closed = true
	sp := d.warm
	d.warm = nil
	if d.pending != nil {
		d.pending.conn.Close()
	}
	d.warmMu.Unlock()
	d.bg.Wait()
	if sp != nil {
		sp.discard()
	}
	// A supervisor that waited removes its group as it exits; one that was killed
	// leaves it, empty.
	depotgroup.RemoveEmpty(d.Hier, proto.WarmGroupPrefix)
	// Fails, harmlessly, while depot groups (of either driver) remain under it.
	depotgroup.RemoveParent(d.Hier, d.Hier.Parent)
	return nil
}

var _ io.Closer = (*Driver)(nil)
