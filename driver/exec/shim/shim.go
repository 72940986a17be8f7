// Package shim is the exec driver's per-depot supervisor. The agent runs one shim per
// depot, in a session of its own, as "qnet shim <runtime-dir>/<depot-id>". The shim
// starts the workload in its own process group (inside the depot's cgroup from its first
// instruction), owns its stdout and stderr and writes them to bounded, rotated log files,
// waits for it, and records how it ended in exit.json. It never needs the agent: the
// agent can restart, or be gone for good, and the depot keeps running and its exit is
// still recorded, because the shim, not the agent, is the workload's parent.
//
// The shim tells the agent that the workload runs through a pipe on file descriptor 3
// (one JSON bundle.Hello), and through state.json for an agent that comes later.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/internal/exit"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/logfile"
)

// ExecStageArg, before the depot directory, runs the exec stage instead of the
// supervisor: the short-lived process that joins the depot's cgroup and then executes
// the workload in its place, so that no instruction of the workload (and no child it
// forks) ever runs outside the group.
const ExecStageArg = "-exec"

// drainTimeout bounds how long the shim keeps reading the output pipes after the
// workload ended, in case a process that escaped the depot still holds them open.
const drainTimeout = 2 * time.Second

// killTimeout bounds how long the shim waits for the depot's cgroup to empty.
const killTimeout = 10 * time.Second

// Main runs the shim with the arguments that follow "shim" on its command line and
// returns the process exit code.
func Main(args []string) int {
	if len(args) == 2 && args[0] == ExecStageArg {
		return execStage(args[1])
	}
	if len(args) == 1 && args[0] == WarmArg {
		return warm()
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: qnet shim <runtime-dir>/<depot-id>\n(the exec driver starts this supervisor; it is not meant to be run by hand)")
		return 2
	}
	return supervise(args[0], nil)
}

// startError is a failure to start the workload, with the kind the agent maps to a
// driver error.
type startError struct {
	kind string
	msg  string
}

func (e *startError) Error() string { return e.msg }

// WarmArg starts a shim in advance: it waits for its Launch, which names the depot's
// runtime directory, so a depot's start does not wait for a process to start. It exits
// quietly when the launch pipe closes without a Launch (the agent went away).
const WarmArg = "--warm"

func warm() int {
	l, err := bundle.ReadLaunch()
	if err != nil || l.Dir == "" {
		return 0
	}
	// Until now output went nowhere; from here it goes to the depot's shim log.
	if f, err := os.OpenFile(filepath.Join(l.Dir, bundle.ShimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		redirect(int(f.Fd()), 1)
		redirect(int(f.Fd()), 2)
		f.Close()
	}
	return supervise(l.Dir, &l)
}

// supervise runs one depot: with launch nil it reads the Launch from its pipe.
func supervise(dir string, launch *bundle.Launch) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("depot", filepath.Base(dir))
	hello := helloPipe()

	// Signals meant for the agent's terminal or session must not end the supervisor: a
	// hangup is ignored, and TERM or INT are passed on to the workload (the depot stops,
	// and the shim records how). Caught, not ignored, so the workload gets the default
	// dispositions back at exec.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	fail := func(err error) int {
		log.Error("depot not started", "err", err)
		h := bundle.Hello{Error: err.Error()}
		var se *startError
		if errors.As(err, &se) {
			h.Kind = se.kind
		}
		send(hello, h)
		return 1
	}

	// Orphans of the workload (double-forked daemons) become the shim's children rather
	// than init's, so none of the depot's processes escapes its supervisor.
	if err := adoptOrphans(); err != nil {
		log.Warn("orphans of the depot will go to init", "err", err)
	}

	var (
		l   bundle.Launch
		err error
	)
	if launch != nil {
		l = *launch
	} else if l, err = bundle.ReadLaunch(); err != nil {
		return fail(err)
	}
	spec := l.Spec
	shimStart, _ := proc.StartTime(os.Getpid())
	st := bundle.State{Phase: bundle.Starting, ShimPID: os.Getpid(), ShimStart: shimStart}
	// Written before anything runs, so an agent that restarts right now finds this shim
	// and waits for it rather than taking the depot for lost.
	if err := statefile.Write(filepath.Join(dir, bundle.StateFile), st); err != nil {
		return fail(err)
	}
	if spec.Dir != "" {
		if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
			return fail(&startError{"dir", fmt.Sprintf("working directory %q of depot %q: %s", spec.Dir, spec.ID, notDirReason(fi, err))})
		}
	}

	maxFiles := spec.LogMaxFiles
	if maxFiles < 0 {
		maxFiles = 0
	}
	stdoutLog, err := logfile.Open(filepath.Join(dir, bundle.Stdout), spec.LogMaxBytes, maxFiles)
	if err != nil {
		return fail(err)
	}
	defer stdoutLog.Close()
	stderrLog, err := logfile.Open(filepath.Join(dir, bundle.Stderr), spec.LogMaxBytes, maxFiles)
	if err != nil {
		return fail(err)
	}
	defer stderrLog.Close()

	group, report := makeGroup(l, log)
	cleanupGroup := func() {
		if group != nil {
			ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
			defer cancel()
			group.Kill(ctx)
			group.Remove(ctx)
		}
	}
	if l.RequireLimits && group == nil && (spec.CPU > 0 || spec.Memory > 0) {
		return fail(&startError{"limits", fmt.Sprintf("depot %q asks for limits this node cannot enforce (%s): %s", spec.ID, report.Mechanism, report.Reason)})
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		cleanupGroup()
		return fail(fmt.Errorf("stdout pipe: %w", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		cleanupGroup()
		return fail(fmt.Errorf("stderr pipe: %w", err))
	}
	cmd, err := startWorkload(l, dir, group, outW, errW)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		cleanupGroup()
		return fail(err)
	}
	pid := cmd.Process.Pid
	if group != nil {
		// Limits go on once the program was executed, so its loading is not throttled
		// by a small CPU quota (the time before exec counts against the group's quota).
		r := group.Limit(l.Cgroup, cgroup.Limits{CPU: spec.CPU, Memory: spec.Memory})
		report = driver.LimitReport{CPUEnforced: r.CPUEnforced, MemoryEnforced: r.MemoryEnforced, Mechanism: r.Mechanism, Reason: r.Reason}
		if l.RequireLimits && ((spec.CPU > 0 && !report.CPUEnforced) || (spec.Memory > 0 && !report.MemoryEnforced)) {
			syscall.Kill(-pid, syscall.SIGKILL)
			cmd.Wait()
			outR.Close()
			errR.Close()
			cleanupGroup()
			return fail(&startError{"limits", fmt.Sprintf("depot %q asks for limits this node cannot enforce (%s): %s", spec.ID, report.Mechanism, report.Reason)})
		}
	}
	st.Limits, st.Cgroup = report, group != nil
	st.PIDStart, _ = proc.StartTime(pid)
	st.Phase, st.PID, st.StartedAt = bundle.Running, pid, time.Now()

	var copying sync.WaitGroup
	copying.Add(2)
	go copyLog(&copying, outR, stdoutLog, log)
	go copyLog(&copying, errR, stderrLog, log)

	if err := statefile.Write(filepath.Join(dir, bundle.StateFile), st); err != nil {
		// Without state.json no later agent could find the workload: do not let it run.
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		cleanupGroup()
		copying.Wait()
		return fail(err)
	}
	send(hello, bundle.Hello{State: &st})
	log.Info("depot started", "pid", pid, "limits", report.Mechanism)

	forwarding := make(chan struct{})
	go func() {
		defer close(forwarding)
		for s := range sigs {
			if s == syscall.SIGHUP {
				continue
			}
			log.Info("passing signal on to the depot", "signal", s)
			syscall.Kill(-pid, s.(syscall.Signal))
		}
	}()

	waitErr := waitAndSweep(cmd, func() {
		if group != nil {
			ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
			if err := group.Kill(ctx); err != nil {
				log.Warn("cgroup not emptied", "err", err)
			}
			cancel()
		}
	})
	awaitGroupGone(pid, log)
	finished := time.Now()
	signal.Stop(sigs)
	close(sigs)
	<-forwarding

	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		log.Warn("output pipes still open after the depot ended; closing them")
		outR.Close()
		errR.Close()
		<-drained
	}
	stdoutLog.Close()
	stderrLog.Close()

	oom := false
	if group != nil {
		n, err := group.OOMKills()
		if err != nil {
			log.Warn("cannot read OOM kills", "err", err)
		}
		oom = n > 0
	}
	cleanupGroup()

	ex := bundle.Exit{PID: pid, PIDStart: st.PIDStart}
	if cmd.ProcessState != nil {
		ex.ExitStatus = exitStatus(cmd.ProcessState, statefile.Exists(filepath.Join(dir, bundle.StopFile)), oom, spec.Memory)
	} else {
		ex.ExitStatus = driver.ExitStatus{Code: -1, Reason: fmt.Sprintf("lost: wait failed: %v", waitErr)}
	}
	ex.StartedAt, ex.FinishedAt = st.StartedAt, finished
	if err := statefile.Write(filepath.Join(dir, bundle.ExitFile), ex); err != nil {
		log.Error("cannot record exit", "err", err)
		return 1
	}
	log.Info("depot ended", "reason", ex.Reason)
	return 0
}

// awaitGroupGone waits, for a bounded time, until no process of the workload's group is
// left: SIGKILL is delivered at once but dying takes a moment, and the depot counts as
// ended only when nothing of it runs.
func awaitGroupGone(pgid int, log *slog.Logger) {
	deadline := time.Now().Add(drainTimeout)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			log.Warn("processes of the depot's group outlive SIGKILL (unreaped zombies?)", "pgid", pgid)
			return
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(time.Millisecond)
	}
}

// makeGroup creates the depot's cgroup. Without one (cgroups unavailable, or creation
// refused) the depot still runs, and the report says plainly that limits are not
// enforced and why.
func makeGroup(l bundle.Launch, log *slog.Logger) (*cgroup.Group, driver.LimitReport) {
	spec := l.Spec
	if l.Cgroup.Version == cgroup.None {
		return nil, noLimits(spec, orDefault(l.Cgroup.Reason, "cgroups are not in use"))
	}
	g, err := l.Cgroup.Make(spec.ID)
	if err != nil {
		log.Warn("depot runs without a cgroup", "err", err)
		return nil, noLimits(spec, err.Error())
	}
	// A group of the same name left over from a depot that was lost may still hold its
	// processes: they must not share this depot's limits and accounting.
	if pids, _ := g.PIDs(); len(pids) > 0 {
		log.Warn("killing processes left in the depot's cgroup", "pids", pids)
		ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
		g.Kill(ctx)
		cancel()
	}
	return g, driver.LimitReport{Mechanism: l.Cgroup.Version.String()}
}

func noLimits(spec driver.Spec, why string) driver.LimitReport {
	var parts []string
	if spec.CPU > 0 {
		parts = append(parts, "CPU not limited: "+why)
	} else {
		parts = append(parts, "no CPU limit requested")
	}
	if spec.Memory > 0 {
		parts = append(parts, "memory not limited: "+why)
	} else {
		parts = append(parts, "no memory limit requested")
	}
	return driver.LimitReport{Mechanism: cgroup.None.String(), Reason: strings.Join(parts, "; ")}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func notDirReason(fi fs.FileInfo, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	case err != nil:
		return err.Error()
	case !fi.IsDir():
		return "is not a directory"
	}
	return "unusable"
}

// startWorkload starts the workload in a process group of its own, and in the depot's
// cgroup when there is one: on cgroup v2 by cloning it straight into the group
// (CLONE_INTO_CGROUP, Linux 5.7+); otherwise through the exec stage (this binary again,
// which joins the group and executes the workload, keeping its PID). Without a group it
// is executed directly. Either way it returns only once the workload's program has been
// executed.
func startWorkload(l bundle.Launch, dir string, group *cgroup.Group, stdout, stderr *os.File) (*exec.Cmd, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	spec := l.Spec
	wd := spec.Dir
	if wd == "" {
		wd = "/"
	}
	direct := func(attr *syscall.SysProcAttr) (*exec.Cmd, error) {
		env := spec.Env
		if env == nil {
			env = []string{} // nil would hand the workload the shim's environment
		}
		cmd := &exec.Cmd{
			Path: l.Path, Args: append([]string{spec.Command}, spec.Args...), Env: env, Dir: wd,
			Stdin: devnull, Stdout: stdout, Stderr: stderr, SysProcAttr: attr,
		}
		return cmd, cmd.Start()
	}
	execError := func(err error) error {
		return &startError{"command", fmt.Sprintf("cannot execute %q (resolved to %s) for depot %q: %v", spec.Command, l.Path, spec.ID, unwrapExec(err))}
	}
	if group == nil {
		cmd, err := direct(workloadAttr())
		if err != nil {
			return nil, execError(err)
		}
		return cmd, nil
	}
	if l.Cgroup.Version == cgroup.V2 {
		cmd, ok, err := startInGroup(group, direct)
		if ok {
			if err != nil {
				return nil, execError(err)
			}
			return cmd, nil
		}
	}
	if l.Cgroup.Version == cgroup.V1 {
		if cmd, ok, err := startFromGroup(l, group, direct); ok {
			if err != nil {
				return nil, execError(err)
			}
			return cmd, nil
		}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("exec status pipe: %w", err)
	}
	defer statusR.Close()
	launchR, launchW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return nil, fmt.Errorf("exec launch pipe: %w", err)
	}
	self := selfExe(l)
	cmd := &exec.Cmd{
		Path: self, Args: append(append([]string{}, l.Self...), ExecStageArg, dir), Env: os.Environ(), Dir: wd,
		Stdin: devnull, Stdout: stdout, Stderr: stderr,
		ExtraFiles:  []*os.File{statusW, launchR}, // bundle.ReportFD, bundle.LaunchFD
		SysProcAttr: workloadAttr(),
	}
	err = cmd.Start()
	statusW.Close()
	launchR.Close()
	if err != nil {
		launchW.Close()
		return nil, fmt.Errorf("start exec stage %s: %w", self, err)
	}
	if err := bundle.SendLaunch(launchW, l); err != nil {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("exec stage of depot %q: %w", spec.ID, err)
	}
	// The status pipe is close-on-exec in the exec stage: it closes empty when the
	// workload's program was executed, and carries the error when it was not.
	data, _ := io.ReadAll(statusR)
	if len(data) == 0 {
		return cmd, nil
	}
	cmd.Wait()
	var ee bundle.ExecError
	if err := json.Unmarshal(data, &ee); err != nil {
		return nil, fmt.Errorf("exec stage of depot %q failed: %s", spec.ID, strings.TrimSpace(string(data)))
	}
	return nil, &startError{ee.Kind, ee.Error}
}

// startFromGroup starts the workload on cgroup v1 without the exec stage: the thread
// that forks it steps into the depot's group, forks the workload there (a child starts
// in the groups of the thread that forked it) and steps back to where it was. Only that
// thread moves, through the groups' tasks files: moving the whole shim would wait for
// an RCU grace period each way (5-15 ms each on an idle node), a thread does not (0.1
// ms). ok is false when the thread could not step in, or neither it nor the whole shim
// could step back out; the workload was then not started (or was killed again), and
// the exec stage is the way.
func startFromGroup(l bundle.Launch, group *cgroup.Group, direct func(*syscall.SysProcAttr) (*exec.Cmd, error)) (_ *exec.Cmd, ok bool, _ error) {
	self := os.Getpid()
	home, err := l.Cgroup.ProcsFilesOf(self)
	if err != nil {
		return nil, false, nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	goHome := func() error {
		if err := cgroup.JoinThread(cgroup.ThreadFilesOf(home)); err != nil {
			// Then the whole shim, which takes this thread along.
			return cgroup.JoinFiles(home, self)
		}
		return nil
	}
	if err := cgroup.JoinThread(group.ThreadFiles()); err != nil {
		goHome()
		return nil, false, nil
	}
	cmd, startErr := direct(workloadAttr())
	if err := goHome(); err != nil {
		// The shim must not stay in the depot's group: the group's limits would bound it
		// and killing the group would kill it. Undo, and let the exec stage do it.
		if startErr == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return nil, false, nil
	}
	return cmd, true, startErr
}

// unwrapExec drops the *os.PathError wrapper exec adds, leaving the system's reason.
func unwrapExec(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// execStage runs in the workload's process (its PID and process group already set):
// it joins the depot's cgroup, then replaces itself with the workload's program.
func execStage(dir string) int {
	syscall.CloseOnExec(bundle.ReportFD)
	status := os.NewFile(bundle.ReportFD, "exec-status")
	fail := func(kind, msg string) int {
		if status != nil {
			json.NewEncoder(status).Encode(bundle.ExecError{Error: msg, Kind: kind})
		}
		fmt.Fprintln(os.Stderr, "qnet shim:", msg)
		return 127
	}
	l, err := bundle.ReadLaunch()
	if err != nil {
		return fail("", fmt.Sprintf("%s: %v", dir, err))
	}
	g, err := l.Cgroup.Open(l.Spec.ID)
	if err != nil {
		return fail("", err.Error())
	}
	if err := g.Join(os.Getpid()); err != nil {
		return fail("", fmt.Sprintf("depot %q: %v", l.Spec.ID, err))
	}
	env := l.Spec.Env
	if env == nil {
		env = []string{}
	}
	err = syscall.Exec(l.Path, append([]string{l.Spec.Command}, l.Spec.Args...), env)
	return fail("command", fmt.Sprintf("cannot execute %q (resolved to %s) for depot %q: %v", l.Spec.Command, l.Path, l.Spec.ID, err))
}

// copyLog copies a workload's output into its log until the pipe closes. When the log
// cannot be written (disk full) the output is still read and dropped, so the workload
// never blocks on a full pipe.
func copyLog(wg *sync.WaitGroup, r *os.File, w io.Writer, log *slog.Logger) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	failed := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil && !failed {
				failed = true
				log.Error("log not written; dropping output", "err", werr)
			}
		}
		if err != nil {
			return
		}
	}
}

// helloPipe returns the start pipe the agent passed as fd 3, or nil when the shim was
// started without one. It is made close-on-exec at once, so no workload inherits it.
func helloPipe() *os.File {
	var st syscall.Stat_t
	if err := syscall.Fstat(bundle.ReportFD, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil
	}
	syscall.CloseOnExec(bundle.ReportFD)
	syscall.CloseOnExec(bundle.LaunchFD)
	return os.NewFile(bundle.ReportFD, "start-pipe")
}

// send writes the one message to the agent and closes the pipe. A gone agent is fine:
// the state file says the same for the next one.
func send(f *os.File, h bundle.Hello) {
	if f == nil {
		return
	}
	json.NewEncoder(f).Encode(h)
	f.Close()
}

// exitStatus turns the workload's wait status into an ExitStatus.
func exitStatus(ps *os.ProcessState, stopped, oom bool, memLimit int64) driver.ExitStatus {
	ws, _ := ps.Sys().(syscall.WaitStatus)
	e := exit.Code(ws.ExitStatus())
	if ws.Signaled() {
		e = exit.Signaled(ws.Signal())
	}
	return exit.Cause(e, oom, memLimit, stopped)
}
