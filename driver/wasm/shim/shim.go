// Package shim is the wasm driver's per-depot supervisor: the process that runs one
// WASI module. The agent starts it as "qnet wasm-shim" in a session of its own, often
// in advance (warm), with a connection on file descriptor 3 (see package proto). The
// supervisor builds a wazero runtime while it waits, then gets its depot's Launch,
// compiles the module (or takes it from the compilation cache on disk), checks it,
// instantiates it with the depot's arguments, environment, data directory, listeners
// and memory limit, joins the depot's cgroup for a CPU limit, tells the agent that the
// module runs, and calls its _start function. When the module ends it records how in
// exit.json and exits, which closes every agent connection.
//
// The module runs in this process, not in the agent: a module that loops, exhausts
// memory or hits a wazero bug takes down its own supervisor only, the agent can restart
// without touching the depot, and the node's process table, cgroups and OOM killer see
// each depot as a process of its own.
package shim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sock"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/exit"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/wasm/internal/proto"
	"qnet.dev/qnet/logfile"
)

// TrapCode is the exit code of a module that trapped (unreachable, an out-of-bounds
// memory access, a division by zero...): 128 plus SIGABRT, what wasmtime reports and
// what a shell shows for a native program that aborted.
const TrapCode = 134

// groupTimeout bounds leaving and removing the depot's cgroup at exit.
const groupTimeout = 10 * time.Second

const usage = `usage: qnet wasm-shim
(the wasm driver starts this supervisor with a connection to the agent on file descriptor 3; it is not meant to be run by hand)`

// Main runs the supervisor with the arguments that follow "wasm-shim" on its command
// line (there are none) and returns the process exit code.
func Main(args []string) int {
	if len(args) != 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	conn, err := agentConn()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\n%v\n", usage, err)
		return 2
	}
	// Signals for the agent's session must not end a supervisor waiting for its launch.
	signal.Ignore(syscall.SIGHUP)
	r := proto.NewReader(conn)
	var m proto.Message
	if err := r.Next(&m); err != nil || m.Init == nil {
		fmt.Fprintf(os.Stderr, "qnet wasm-shim: no init message from the agent: %v\n", err)
		return 2
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	eng, engErr := newEngine(ctx, m.Init.CacheDir, log.Warn)
	var pr *prime
	if eng != nil && m.Init.Prime != "" {
		pr = newPrime(ctx, eng, m.Init.Prime)
	}
	warm := joinWarmGroup(m.Init, log)
	// Compiling leaves tens of megabytes of garbage. Collected now, while nothing waits,
	// it cannot be collected during the start, where the first large allocation (the
	// module's memory) would make the start pay for marking it; and the supervisor
	// waits with only the compiled code in its heap.
	debug.FreeOSMemory()
	// Ready: the agent may now count on this supervisor for a fast start.
	if err := proto.NewWriter(conn).Send(proto.Status{State: proto.State{Phase: proto.Warm, PID: os.Getpid()}}); err != nil {
		warm.leave(log)
		return 0 // the agent went away
	}
	m = proto.Message{}
	if err := r.Next(&m); err != nil || m.Launch == nil {
		warm.leave(log)
		return 0 // the agent went away (or no longer needs this supervisor)
	}
	return supervise(ctx, conn, r, *m.Launch, eng, engErr, pr, warm)
}

// agentConn returns the connection the agent passed as ConnFD.
func agentConn() (net.Conn, error) {
	var st unix.Stat_t
	if err := unix.Fstat(proto.ConnFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("no connection from the agent on file descriptor %d", proto.ConnFD)
	}
	f := os.NewFile(proto.ConnFD, "agent")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("connection from the agent on file descriptor %d: %w", proto.ConnFD, err)
	}
	return c, nil
}

// endCause is why the supervisor ended the module: the signal it stands for.
type endCause struct{ sig syscall.Signal }

func (e endCause) Error() string { return "ended by " + unix.SignalName(e.sig) }

// supervise runs one depot and returns the process exit code.
func supervise(ctx context.Context, conn net.Conn, r *proto.Reader, l proto.Launch, eng *engine, engErr error, pr *prime, warm *group) int {
	launched := time.Now()
	// No collection from the launch until the module runs: the start allocates the
	// module's memory and little else, and a collection in its middle would double it.
	gcPercent := debug.SetGCPercent(-1)
	restoreGC := sync.OnceFunc(func() { debug.SetGCPercent(gcPercent) })
	defer restoreGC()
	spec, dir := l.Spec, l.Dir()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("depot", spec.ID)
	// The warm group is left on every way out before the depot takes it over.
	defer func() { warm.leave(log) }()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	st := proto.State{Phase: proto.Starting, PID: os.Getpid()}
	h := newHub(proto.Status{State: st})
	defer h.close()
	h.add(conn, r)

	// The depot's files are set up while the module loads, and those the instance does
	// not need (the supervisor's log, its state and control socket) while it is made:
	// they are independent, and on a slow disk they take as long as either.
	var (
		files, other   sync.WaitGroup
		ln             net.Listener
		lnErr, dataErr error
		stdout, stderr *logfile.Writer
		logErr         error
		data           = filepath.Join(dir, proto.DataDir)
	)
	other.Go(func() { logOutput(dir) })
	other.Go(func() {
		// The state first: an agent that restarts now and cannot reach the control
		// socket yet learns from it that this supervisor is starting.
		if err := statefile.Write(filepath.Join(dir, proto.StateFile), st); err != nil {
			log.Warn("state not recorded", "err", err)
		}
		ln, lnErr = listenControl(l.Root, spec.ID)
	})
	files.Go(func() { stdout, stderr, logErr = openLogs(dir, spec) })
	files.Go(func() { dataErr = os.MkdirAll(data, 0o700) })
	settle := sync.OnceFunc(func() {
		other.Wait()
		if ln != nil {
			go h.serve(ln)
		}
	})
	defer func() {
		settle()
		if ln != nil {
			ln.Close()
		}
	}()

	// Stop commands and signals end the module, from now until supervise returns.
	modCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	var handling sync.WaitGroup
	handling.Go(func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				log.Info("ending the module", "signal", s)
				cancel(endCause{s.(syscall.Signal)})
			case c := <-h.cmds:
				if sig, ok := commandSignal(c); ok {
					log.Info("ending the module", "command", c.Op, "signal", unix.SignalName(sig))
					cancel(endCause{sig})
				}
			}
		}
	})
	defer func() {
		close(done)
		handling.Wait()
	}()

	t0 := time.Now()
	var (
		cm      wazero.CompiledModule
		loadErr = engErr
		primed  bool
	)
	if eng != nil {
		if cm, primed = pr.take(l.Module); !primed {
			cm, loadErr = eng.compile(ctx, l.Module)
		}
	}
	files.Wait()
	if stdout != nil {
		defer stdout.Close()
		defer stderr.Close()
	}

	fail := func(err error) int {
		kind := ""
		var se *startError
		if errors.As(err, &se) {
			kind = se.kind
		}
		settle()
		log.Error("module not started", "err", err)
		st.Phase = proto.Failed
		ex := driver.ExitStatus{Code: -1, Reason: "not started: " + err.Error(), FinishedAt: time.Now()}
		if werr := statefile.Write(filepath.Join(dir, proto.ExitFile), ex); werr != nil {
			log.Error("exit not recorded", "err", werr)
		}
		h.set(proto.Status{State: st, Error: err.Error(), Kind: kind})
		return 1
	}
	switch {
	case loadErr != nil:
		return fail(loadErr)
	case logErr != nil:
		return fail(logErr)
	case dataErr != nil:
		return fail(fmt.Errorf("data directory: %w", dataErr))
	}
	if err := context.Cause(modCtx); err != nil {
		return fail(fmt.Errorf("stopped before the module started (%v)", err))
	}

	loaded := time.Now()
	limit := newMemoryLimit(spec.Memory)
	mod, err := instantiate(ctx, eng, cm, l, data, limit, stdout, stderr)
	if err != nil {
		return fail(err)
	}
	defer mod.Close(ctx)
	if settle(); lnErr != nil {
		return fail(fmt.Errorf("control socket: %w", lnErr))
	}
	// Logged once the supervisor's output goes to its log file (settle).
	if primed {
		log.Info("module compiled in advance", "module", l.Module)
	}
	if _, atStart := limit.refusedGrowth(); atStart > 0 {
		return fail(&startError{proto.KindMemory, fmt.Sprintf("module %s needs %s of memory at start, more than the depot's memory limit of %s: raise the depot's memory", l.Module, size(atStart), size(limit.limit))})
	}
	group, report := joinGroup(l, log, warm)
	warm = nil // joinGroup took it over
	if group != nil {
		defer group.leave(log)
	}
	if l.RequireLimits && ((spec.CPU > 0 && !report.CPUEnforced) || (spec.Memory > 0 && !report.MemoryEnforced)) {
		return fail(&startError{proto.KindLimits, fmt.Sprintf("depot %q asks for limits this node cannot enforce (%s): %s", spec.ID, report.Mechanism, report.Reason)})
	}

	instantiated := time.Now()
	start := mod.ExportedFunction("_start")
	st.Phase, st.StartedAt, st.Limits, st.Cgroup = proto.Running, time.Now(), report, group != nil
	h.set(proto.Status{State: st})
	// The quota only now: set before the report, it could hold the report back for up
	// to a CFS period (100 ms), since a small quota handed out anew on a node of several
	// CPUs leaves the thread that writes the report on a CPU without any.
	if group != nil && report.CPUEnforced {
		if r := group.g.Limit(l.Cgroup, cgroup.Limits{CPU: spec.CPU}); !r.CPUEnforced {
			log.Error("CPU limit not set", "reason", r.Reason)
			st.Limits.CPUEnforced = false
			st.Limits.Reason = strings.TrimPrefix(st.Limits.Reason+"; "+r.Reason, "; ")
			h.set(proto.Status{State: st})
			if l.RequireLimits {
				cancel(endCause{syscall.SIGKILL})
			}
		}
	}
	restoreGC()
	// Recorded after the report, off the start's path: a later agent finds the depot
	// through its control socket; state.json serves when the supervisor is gone.
	if err := statefile.Write(filepath.Join(dir, proto.StateFile), st); err != nil {
		log.Warn("state not recorded", "err", err)
	}
	log.Info("module started", "module", l.Module, "limits", report.Mechanism,
		"load", loaded.Sub(t0), "instantiate", instantiated.Sub(loaded), "total", time.Since(launched))

	_, runErr := start.Call(modCtx)
	finished := time.Now()
	// Closing the module closes its listeners and connections, so the depot's ports are
	// free again before anyone learns that it ended (a restart binds them at once).
	mod.Close(ctx)
	ex := exitStatus(modCtx, runErr, statefile.Exists(filepath.Join(dir, proto.StopFile)), limit)
	if ee := (*sys.ExitError)(nil); runErr != nil && !errors.As(runErr, &ee) {
		// The whole trap, with its stack trace, where the module's own errors go.
		fmt.Fprintf(stderr, "qnet: the module trapped: %v\n", runErr)
	}
	ex.StartedAt, ex.FinishedAt = st.StartedAt, finished
	stdout.Close()
	stderr.Close()
	group.leave(log) // before the exit is known: a restart makes the group again
	if err := statefile.Write(filepath.Join(dir, proto.ExitFile), ex); err != nil {
		log.Error("exit not recorded", "err", err)
	}
	st.Phase = proto.Exited
	h.set(proto.Status{State: st, Exit: &ex})
	log.Info("module ended", "reason", ex.Reason)
	return 0
}

// commandSignal returns the signal an agent's command stands for.
func commandSignal(c proto.Command) (syscall.Signal, bool) {
	switch {
	case c.Op == "stop":
		return syscall.SIGTERM, true
	case c.Op == "signal" && c.Signal == "SIGTERM":
		return syscall.SIGTERM, true
	case c.Op == "signal" && c.Signal == "SIGINT":
		return syscall.SIGINT, true
	}
	return 0, false
}

// logOutput points the process's standard output and error (the Go runtime's crash
// reports, this package's log) at the depot's supervisor.log.
func logOutput(dir string) {
	f, err := os.OpenFile(filepath.Join(dir, proto.SupervisorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Dup2(int(f.Fd()), 1)
	unix.Dup2(int(f.Fd()), 2)
}

// listenControl listens on the depot's control socket, replacing a stale one left by a
// supervisor that was killed. The socket directory is made by the agent.
func listenControl(root, id string) (net.Listener, error) {
	path := proto.SocketPath(root, id)
	ln, err := net.Listen("unix", path)
	if errors.Is(err, syscall.EADDRINUSE) {
		os.Remove(path)
		ln, err = net.Listen("unix", path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			ln, err = net.Listen("unix", path)
		}
	}
	return ln, err
}

// openLogs opens the module's standard output and error logs.
func openLogs(dir string, spec driver.Spec) (stdout, stderr *logfile.Writer, err error) {
	maxFiles := max(spec.LogMaxFiles, 0)
	if stdout, err = logfile.Open(filepath.Join(dir, proto.Stdout), spec.LogMaxBytes, maxFiles); err != nil {
		return nil, nil, err
	}
	if stderr, err = logfile.Open(filepath.Join(dir, proto.Stderr), spec.LogMaxBytes, maxFiles); err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// instantiate instantiates the module without running it, with what the depot's spec
// gives it.
func instantiate(ctx context.Context, eng *engine, cm wazero.CompiledModule, l proto.Launch, data string, limit *memoryLimit, stdout, stderr *logfile.Writer) (api.Module, error) {
	spec := l.Spec
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: a module's own name could clash with the host module's
		WithArgs(append([]string{spec.Command}, spec.Args...)...).
		WithStdout(stdout).
		WithStderr(stderr).
		WithFSConfig(fsConfig(data, l.Preopens)).
		// wazero's defaults are deterministic fakes (a clock that advances 1 ms per
		// reading, sleeps that return at once, a fixed random seed); a depot gets the
		// real ones.
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithOsyield(runtime.Gosched).
		WithRandSource(rand.Reader).
		WithStartFunctions() // _start is called once the agent was told the module runs
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}
	ctx = experimental.WithMemoryAllocator(ctx, limit)
	if len(l.Listeners) > 0 {
		sc := sock.NewConfig()
		for _, ln := range l.Listeners {
			sc = sc.WithTCPListener(ln.Host, ln.Port)
		}
		ctx = sock.WithConfig(ctx, sc)
	}
	mod, err := eng.rt.InstantiateModule(ctx, cm, cfg)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "listen tcp") {
			return nil, &startError{proto.KindListen, fmt.Sprintf("depot %q: cannot open its listeners %s: %v", spec.ID, describeListeners(l.Listeners), err)}
		}
		return nil, &startError{proto.KindModule, fmt.Sprintf("module %s cannot be instantiated: %v", l.Module, err)}
	}
	return mod, nil
}

func describeListeners(ls []proto.Listener) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", l.Env, l.Host, l.Port))
	}
	return strings.Join(parts, ", ")
}

// exitStatus says how the module ended: ctx is the module's context (ended when the
// supervisor stopped it), err what _start returned, stopped whether the agent asked for
// the stop.
func exitStatus(ctx context.Context, err error, stopped bool, limit *memoryLimit) driver.ExitStatus {
	var e driver.ExitStatus
	var ee *sys.ExitError
	switch {
	case err == nil:
		e = exit.Code(0)
	case errors.As(err, &ee) && ctx.Err() != nil && (ee.ExitCode() == sys.ExitCodeContextCanceled || ee.ExitCode() == sys.ExitCodeDeadlineExceeded):
		sig := syscall.SIGTERM
		var ec endCause
		if errors.As(context.Cause(ctx), &ec) {
			sig = ec.sig
		}
		e = exit.Signaled(sig)
	case errors.As(err, &ee):
		e = exit.Code(int(ee.ExitCode()))
	default:
		e.Code = TrapCode
		e.Reason = "trapped: " + trapSummary(err)
	}
	if refused, _ := limit.refusedGrowth(); refused > 0 && e.Code != 0 && e.Signal == "" {
		e.OOMKilled = true
		e.Reason = fmt.Sprintf("oom: %s (%s)", limit.describe(), e.Reason)
	}
	if stopped {
		e.Reason = "stopped (" + e.Reason + ")"
	}
	return e
}

// trapSummary shortens wazero's trap error (a message and a stack trace) to the message
// and the innermost function: "wasm error: unreachable (in main.main)".
func trapSummary(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	msg := lines[0]
	for i, line := range lines {
		if strings.TrimSpace(line) == "wasm stack trace:" && i+1 < len(lines) {
			frame := strings.TrimSpace(lines[i+1])
			if j := strings.IndexByte(frame, '('); j > 0 {
				frame = frame[:j]
			}
			msg += " (in " + strings.TrimPrefix(frame, ".") + ")"
			break
		}
	}
	return msg
}

// group is the depot's cgroup with the supervisor in it, and the groups it came from.
type group struct {
	g    *cgroup.Group
	home []string
}

// joinWarmGroup makes the group the agent named in init and moves the supervisor into
// it, while it waits for its launch: moving a running process between groups costs
// milliseconds, which the start then does not pay (see joinGroup). It returns nil, and
// logs why, when there is no group to join or it cannot be joined; the start then
// makes its group the slow way.
func joinWarmGroup(init *proto.Init, log *slog.Logger) *group {
	if init.Group == "" || init.Cgroup.Version == cgroup.None {
		return nil
	}
	home, err := init.Cgroup.ProcsFilesOf(os.Getpid())
	var g *cgroup.Group
	if err == nil {
		g, err = init.Cgroup.Make(init.Group)
	}
	if err == nil {
		if err = g.Join(os.Getpid()); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
			g.Remove(ctx)
			cancel()
		}
	}
	if err != nil {
		log.Warn("no cgroup joined in advance; the depot's start joins one", "err", err)
		return nil
	}
	return &group{g: g, home: home}
}

// joinGroup puts the supervisor in a cgroup named after the depot, with its CPU limit
// when one is asked and the node has cgroups. wazero has no CPU quota of its own, so
// the limit bounds the whole supervisor: the module and the runtime around it. Memory
// is bounded in the module's linear memory instead (see memoryLimit): a cgroup limit
// would also count the supervisor's own memory and kill it before the module could be
// told that it asked for too much. The limit is set only now, after compiling, so a
// small CPU quota does not slow the compilation of the module.
//
// A supervisor started in advance is already in a group of its own (warm): it is
// renamed after the depot, which is instant, where moving the running supervisor into
// a new group waits for the kernel to quiesce all its threads (5-15 ms on cgroup v1,
// most of a wasm depot's start). joinGroup takes warm over: it becomes the depot's
// group, or is left when it cannot be.
func joinGroup(l proto.Launch, log *slog.Logger, warm *group) (*group, driver.LimitReport) {
	spec := l.Spec
	var mech, why []string
	report := driver.LimitReport{}
	var joined *group
	if warm != nil && l.Cgroup.Version != cgroup.None {
		if g, err := warm.g.Rename(l.Cgroup, spec.ID); err != nil {
			log.Warn("the group joined in advance cannot take the depot's name; joining a new one", "err", err)
		} else {
			joined, warm = &group{g: g, home: warm.home}, nil
		}
	}
	switch {
	case spec.CPU <= 0:
		why = append(why, "no CPU limit requested")
	case l.Cgroup.Version == cgroup.None:
		why = append(why, "CPU not limited: wazero has no CPU quota, and "+orDefault(l.Cgroup.Reason, "cgroups are not in use"))
	case joined == nil:
		home, err := l.Cgroup.ProcsFilesOf(os.Getpid())
		if warm != nil {
			home = warm.home
		}
		var g *cgroup.Group
		if err == nil {
			g, err = l.Cgroup.Make(spec.ID)
		}
		if err == nil {
			err = g.Join(os.Getpid())
			if err != nil {
				ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
				g.Remove(ctx)
				cancel()
			}
		}
		if err != nil {
			log.Warn("module runs without a cgroup", "err", err)
			why = append(why, "CPU not limited: "+err.Error())
			break
		}
		joined = &group{g: g, home: home}
		if warm != nil {
			// Now empty: the supervisor moved to the depot's group.
			ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
			warm.g.Remove(ctx)
			cancel()
			warm = nil
		}
	}
	if joined != nil && spec.CPU > 0 {
		// The group is the depot's and its hierarchy has the cpu controller: the quota
		// is set once the start is reported (see supervise).
		if l.Cgroup.CPU != "" {
			report.CPUEnforced = true
			mech = append(mech, l.Cgroup.Version.String()+" cpu")
		} else {
			why = append(why, "CPU not limited: "+orDefault(l.Cgroup.Reason, "no cpu controller"))
		}
	}
	if warm != nil {
		// Kept for the depot's life (leaving it would cost the move joinGroup avoids);
		// it is removed when the supervisor leaves it at the end.
		joined = warm
	}
	if spec.Memory > 0 {
		report.MemoryEnforced = true
		mech = append(mech, "wasm linear memory")
	} else {
		why = append(why, "no memory limit requested")
	}
	report.Mechanism = strings.Join(mech, " + ")
	if report.Mechanism == "" {
		report.Mechanism = cgroup.None.String()
	}
	report.Reason = strings.Join(why, "; ")
	return joined, report
}

// leave moves the supervisor back to where it came from and removes the depot's group.
func (g *group) leave(log *slog.Logger) {
	if g == nil || g.g == nil {
		return
	}
	if err := cgroup.JoinFiles(g.home, os.Getpid()); err != nil {
		log.Warn("cannot leave the depot's cgroup; the agent removes it", "err", err)
		g.g = nil
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	if err := g.g.Remove(ctx); err != nil {
		log.Warn("cgroup not removed", "err", err)
	}
	g.g = nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// prime is a module compiled in advance, while the supervisor waited for its launch.
type prime struct {
	path string
	fi   os.FileInfo // the file as it was compiled
	cm   wazero.CompiledModule
	err  error
}

func newPrime(ctx context.Context, eng *engine, path string) *prime {
	p := &prime{path: path}
	if p.fi, p.err = os.Stat(path); p.err == nil {
		p.cm, p.err = eng.compile(ctx, path)
	}
	return p
}

// take returns the primed module when path names the same, unchanged file; otherwise
// the caller compiles it.
func (p *prime) take(path string) (wazero.CompiledModule, bool) {
	if p == nil || p.path != path || p.err != nil {
		return nil, false // for a bad module, compiling again gives the error in its context
	}
	fi, err := os.Stat(path)
	if err != nil || !os.SameFile(fi, p.fi) || fi.Size() != p.fi.Size() || !fi.ModTime().Equal(p.fi.ModTime()) {
		return nil, false
	}
	return p.cm, true
}
