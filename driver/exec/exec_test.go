package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/internal/drivertest"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/logfile"
)

// newDriver returns a driver on a fresh runtime directory whose shim is this test
// binary. Every depot still running when the test ends is killed.
func newDriver(t testing.TB, edit ...func(*Config)) *Driver {
	return newDriverAt(t, t.TempDir(), edit...)
}

func newDriverAt(t testing.TB, dir string, edit ...func(*Config)) *Driver {
	t.Helper()
	// Quiet: the driver's warnings (say, a lost depot in a test that makes one) may come
	// after the test ended, when t.Log may no longer be used.
	cfg := Config{Dir: dir, ShimBinary: os.Args[0], ShimEnv: []string{"QNET_TEST_SHIM=1", noRaceExitSleep},
		CgroupParent: testParent, Logger: slog.New(slog.DiscardHandler)}
	return drivertest.Open(t, New, cfg, edit, (*Driver).tracked)
}

// tracked returns the handles of the depots d tracks.
func (d *Driver) tracked() []*handle { return d.depots.Handles() }

const noRaceExitSleep = drivertest.NoRaceExitSleep

// spec returns a spec running this test binary as the given workload.
func spec(id, mode string) driver.Spec {
	return driver.Spec{ID: id, Command: os.Args[0], Env: []string{"QNET_TEST_WORKLOAD=" + mode, noRaceExitSleep}}
}

var (
	start   = drivertest.Start
	wait    = drivertest.Wait
	stop    = drivertest.Stop
	waitFor = drivertest.WaitFor
)

func readLog(d *Driver, id string) string {
	out, _ := d.Logs(id)
	data, _ := os.ReadFile(out)
	return string(data)
}

// waitLog waits until the depot's stdout matches re and returns the first submatch.
func waitLog(t testing.TB, d *Driver, id string, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(t, fmt.Sprintf("%s in the log of %s", re, id), func() bool {
		m = rx.FindStringSubmatch(readLog(d, id))
		return m != nil
	})
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

func alive(pid int) bool {
	st, err := proc.StartTime(pid)
	return err == nil && proc.Alive(pid, st)
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, spec("start-stop", "sleep"))
	if h.PID() <= 0 || !alive(h.PID()) {
		t.Fatalf("PID %d is not a live process", h.PID())
	}
	// The PID Start reports is the workload's own: it prints it.
	if got := waitLog(t, d, h.ID(), `ready (\d+)`); got != strconv.Itoa(h.PID()) {
		t.Fatalf("workload says its pid is %s, Start said %d", got, h.PID())
	}
	_, errPath := d.Logs(h.ID())
	waitFor(t, "stderr line", func() bool { b, _ := os.ReadFile(errPath); return string(b) == "to stderr\n" })
	if time.Since(h.StartedAt()) > time.Minute || h.StartedAt().IsZero() {
		t.Errorf("StartedAt = %v", h.StartedAt())
	}
	if err := d.Remove(h.ID()); !errors.Is(err, driver.ErrRunning) {
		t.Errorf("Remove while running = %v, want ErrRunning", err)
	}

	st := stop(t, h, 5*time.Second)
	if st.Signal != "SIGTERM" || st.Code != 128+15 || !strings.HasPrefix(st.Reason, "stopped") || st.OOMKilled {
		t.Errorf("Stop = %+v, want stopped by SIGTERM (code 143)", st)
	}
	if st.FinishedAt.Before(st.StartedAt) || !st.StartedAt.Equal(h.StartedAt()) {
		t.Errorf("times: started %v finished %v", st.StartedAt, st.FinishedAt)
	}
	if alive(h.PID()) {
		t.Errorf("workload %d still alive after Stop", h.PID())
	}
	if st2 := wait(t, h); st2 != st {
		t.Errorf("Wait after Stop = %+v, want %+v", st2, st)
	}
	if st3 := stop(t, h, 0); st3 != st {
		t.Errorf("Stop again = %+v, want %+v", st3, st)
	}
	if err := d.Remove(h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.depots.Root(), h.ID())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("runtime dir left after Remove: %v", err)
	}
	if err := d.Remove(h.ID()); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Remove twice = %v, want ErrNotFound", err)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	for _, code := range []int{0, 3} {
		h := start(t, d, spec(fmt.Sprintf("exit-%d", code), fmt.Sprintf("exit:%d", code)))
		st := wait(t, h)
		want := fmt.Sprintf("exited with code %d", code)
		if st.Code != code || st.Signal != "" || st.Reason != want {
			t.Errorf("exit:%d = %+v, want %q", code, st, want)
		}
	}
}

// TestExitsAtOnce starts a program that ends before the shim could possibly report, many
// times over: Start must still succeed and the exit must be recorded.
func TestExitsAtOnce(t *testing.T) {
	t.Parallel()
	truePath := "/bin/true"
	if _, err := os.Stat(truePath); err != nil {
		t.Skip("no /bin/true")
	}
	d := newDriver(t)
	for i := 0; i < 10; i++ {
		h := start(t, d, driver.Spec{ID: fmt.Sprintf("true-%d", i), Command: "true", Env: []string{"PATH=/usr/bin:/bin"}})
		if st := wait(t, h); st.Code != 0 || st.Reason != "exited with code 0" {
			t.Errorf("true: %+v", st)
		}
	}
}

func TestKilledBySignal(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, spec("kill-9", "sleep"))
	waitLog(t, d, h.ID(), `ready`)
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if st.Signal != "SIGKILL" || st.Code != 137 || st.Reason != "killed by SIGKILL" || st.OOMKilled {
		t.Errorf("kill -9 = %+v, want killed by SIGKILL, code 137", st)
	}

	h = start(t, d, spec("sigint", "sleep"))
	waitLog(t, d, h.ID(), `ready`)
	if err := h.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Signal != "SIGINT" || st.Reason != "killed by SIGINT" {
		t.Errorf("Signal(SIGINT) = %+v", st)
	}
	if err := h.Signal(syscall.SIGINT); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
}

func TestCommandNotFound(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "not-exec"), []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		name string
		s    driver.Spec
		want []string
	}{
		{"bare name", driver.Spec{ID: "nf-1", Command: "qnet-no-such-program", Env: []string{"PATH=/nonexistent:/usr/bin"}},
			[]string{`"qnet-no-such-program"`, `"/nonexistent:/usr/bin"`, "PATH from spec.env"}},
		{"agent PATH", driver.Spec{ID: "nf-2", Command: "qnet-no-such-program"},
			[]string{`"qnet-no-such-program"`, "the agent's PATH"}},
		{"relative path", driver.Spec{ID: "nf-3", Command: "./missing", Dir: dir},
			[]string{`"./missing"`}},
		{"not executable", driver.Spec{ID: "nf-4", Command: "not-exec", Env: []string{"PATH=" + dir}},
			[]string{"not executable"}},
	}
	for _, tc := range tests {
		_, err := d.Start(context.Background(), tc.s)
		if !errors.Is(err, driver.ErrCommandNotFound) {
			t.Errorf("%s: Start = %v, want ErrCommandNotFound", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %s", tc.name, err, w)
			}
		}
		if _, err := os.Stat(filepath.Join(d.depots.Root(), tc.s.ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: runtime dir left behind", tc.name)
		}
	}
}

// TestExecFailureInShim makes exec itself fail (a file with the exec bit that is no
// program), which only the shim can find out: Start must report it.
func TestExecFailureInShim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "garbage")
	os.WriteFile(bad, []byte("\x00\x01\x02 not a program"), 0o755)
	for _, cg := range []bool{true, false} {
		d := newDriver(t, func(c *Config) {
			if !cg {
				c.Cgroup = &cgroup.Hierarchy{Version: cgroup.None, Parent: testParent, Reason: "off for this test"}
			}
		})
		_, err := d.Start(context.Background(), driver.Spec{ID: "garbage", Command: bad})
		if !errors.Is(err, driver.ErrCommandNotFound) || !strings.Contains(err.Error(), "exec format error") || !strings.Contains(err.Error(), bad) {
			t.Errorf("cgroups %v: Start = %v, want ErrCommandNotFound with exec format error", cg, err)
		}
	}
}

func TestBadWorkingDir(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := spec("bad-dir", "sleep")
	s.Dir = "/nonexistent/qnet"
	_, err := d.Start(context.Background(), s)
	if !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), `spec.dir "/nonexistent/qnet"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Start = %v, want ErrBadSpec naming spec.dir", err)
	}
	s.ID, s.Dir = "bad-dir-2", os.Args[0]
	if _, err := d.Start(context.Background(), s); !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Start with a file as dir = %v", err)
	}
	s.ID = "BAD ID"
	if _, err := d.Start(context.Background(), s); !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "spec.id") {
		t.Errorf("Start with a bad id = %v", err)
	}
	// Exec depots see the node's files where they are: a mount elsewhere is refused.
	s.ID, s.Dir = "bad-mount", ""
	s.Mounts = []driver.Mount{{Source: "/etc/hostname", Target: "/etc/app.conf", ReadOnly: true}}
	if _, err := d.Start(context.Background(), s); !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "spec.mounts[0]") {
		t.Errorf("Start with a mount elsewhere = %v, want ErrBadSpec naming spec.mounts[0]", err)
	}
}

func TestEnvIsExactAndDir(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	dir := t.TempDir()
	s := spec("env", "env")
	s.Env = append(s.Env, "A=1", "B=two words")
	s.Dir = dir
	st := wait(t, start(t, d, s))
	if st.Code != 0 {
		t.Fatalf("env workload: %+v", st)
	}
	got := strings.Split(strings.TrimSpace(readLog(d, s.ID)), "\n")
	want := append(append([]string{}, s.Env...), "wd="+dir)
	sort.Strings(got[:len(got)-1])
	sort.Strings(want[:len(want)-1])
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("workload saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLogsRotated(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := spec("logs", "print:5000") // 500 000 bytes
	s.LogMaxBytes = 64 << 10
	s.LogMaxFiles = 2
	if st := wait(t, start(t, d, s)); st.Code != 0 {
		t.Fatalf("print workload: %+v", st)
	}
	out, _ := d.Logs(s.ID)
	var total int64
	for _, name := range []string{out, logfile.Rotated(out, 1), logfile.Rotated(out, 2)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
		if fi.Size() > s.LogMaxBytes {
			t.Errorf("%s has %d bytes, bound %d", filepath.Base(name), fi.Size(), s.LogMaxBytes)
		}
		total += fi.Size()
	}
	if _, err := os.Stat(logfile.Rotated(out, 3)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a third rotated file exists with LogMaxFiles=2")
	}
	// Rotated files are full to within one 100-byte line.
	if total > 3*s.LogMaxBytes || total < 2*(s.LogMaxBytes-100) {
		t.Errorf("kept %d bytes, want between 2 and 3 files' worth", total)
	}
	var b bytes.Buffer
	if err := logfile.Tail(context.Background(), out, 3, false, &b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "line 004997 ") || !strings.HasPrefix(lines[2], "line 004999 ") {
		t.Errorf("last 3 lines = %q", lines)
	}
}

func TestStartTwiceIsRefused(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, spec("twice", "sleep"))
	if _, err := d.Start(context.Background(), spec("twice", "sleep")); !errors.Is(err, driver.ErrExists) {
		t.Errorf("second Start = %v, want ErrExists", err)
	}
	stop(t, h, time.Second)
}

// TestRestartKeepsLogs starts a depot again under the same ID after it exited, as the
// agent does on a restart: the new run starts and the old run's logs are still there.
func TestRestartKeepsLogs(t *testing.T) {
	t.Parallel()
	for _, fresh := range []bool{false, true} {
		d := newDriver(t)
		h := start(t, d, spec("again", "print:3"))
		wait(t, h)
		if fresh {
			// A new agent (driver) on the same runtime dir restarts it.
			d = newDriverAt(t, d.depots.Root())
		}
		h2 := start(t, d, spec("again", "sleep"))
		if h2.PID() == h.PID() {
			t.Fatal("restart reused the old process")
		}
		waitLog(t, d, "again", "ready")
		log := readLog(d, "again")
		if !strings.Contains(log, "line 000002") {
			t.Fatalf("first run's log lost on restart (fresh driver %v):\n%s", fresh, log)
		}
		stop(t, h2, time.Second)
	}
}

// TestRecoverReadopts simulates an agent restart: a second driver on the same runtime
// directory finds the running depot, with the same PID, without starting it again, and
// can stop it.
func TestRecoverReadopts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d1 := newDriverAt(t, dir)
	s1 := spec("readopt", "sleep")
	s1.Meta = map[string]string{"ports": `{"http":8080}`, "service": "web"}
	h1 := start(t, d1, s1)
	done := start(t, d1, spec("done-early", "exit:7"))
	wait(t, done)
	waitLog(t, d1, h1.ID(), `ready`)

	h2 := drivertest.CheckRecover(t, newDriverAt(t, dir), h1, "ready", done, 7)

	drivertest.CheckStopReadopted(t, h1, h2)
	if alive(h1.PID()) {
		t.Error("workload alive after Stop")
	}
}

// TestShimKilledIsLost kills the supervisor with SIGKILL: the depot is reported lost,
// its orphaned workload is killed, and a later Recover agrees.
func TestShimKilledIsLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d1 := newDriverAt(t, dir)
	h := start(t, d1, spec("lost", "sleep"))
	waitLog(t, d1, h.ID(), `ready`)
	var state bundle.State
	if err := statefile.Read(filepath.Join(dir, "lost", bundle.StateFile), &state); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(state.ShimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if !st.Lost() || !strings.Contains(st.Reason, "supervisor died") {
		t.Fatalf("after kill -9 of the shim: %+v, want lost", st)
	}
	waitFor(t, "orphaned workload to die", func() bool { return !alive(h.PID()) })

	// An agent that was down when the shim died finds no exit record: simulate that.
	os.Remove(filepath.Join(dir, "lost", bundle.ExitFile))
	drivertest.CheckRecoveredLost(t, newDriverAt(t, dir), "lost")
}

// TestProcessGroupCleanup: a child forked by the workload dies with it, on Stop and
// when the workload exits by itself.
func TestProcessGroupCleanup(t *testing.T) {
	t.Parallel()
	for _, cg := range []bool{true, false} {
		d := newDriver(t, func(c *Config) {
			if !cg {
				c.Cgroup = &cgroup.Hierarchy{Version: cgroup.None, Parent: testParent, Reason: "off for this test"}
			}
		})
		h := start(t, d, spec("fork", "fork"))
		child, _ := strconv.Atoi(waitLog(t, d, h.ID(), `child (\d+)`))
		if !alive(child) {
			t.Fatalf("cgroups %v: child %d not running", cg, child)
		}
		stop(t, h, 5*time.Second)
		if alive(child) {
			t.Errorf("cgroups %v: child %d of a stopped depot still runs", cg, child)
		}

		h = start(t, d, spec("forkexit", "forkexit"))
		child, _ = strconv.Atoi(waitLog(t, d, h.ID(), `child (\d+)`))
		if st := wait(t, h); st.Code != 0 {
			t.Errorf("forkexit: %+v", st)
		}
		if alive(child) {
			t.Errorf("cgroups %v: child %d outlived its depot", cg, child)
		}

		if runtime.GOOS != "linux" {
			continue // no child subreaper: a daemon that left the group is not caught
		}
		h = start(t, d, spec("daemon", "daemon"))
		child, _ = strconv.Atoi(waitLog(t, d, h.ID(), `child (\d+)`))
		wait(t, h)
		if alive(child) {
			t.Errorf("cgroups %v: daemon %d (own session) outlived its depot", cg, child)
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, spec("stubborn", "ignoreterm"))
	waitLog(t, d, h.ID(), `ready`)
	st := stop(t, h, 50*time.Millisecond)
	if st.Signal != "SIGKILL" || st.Reason != "stopped (killed by SIGKILL)" {
		t.Errorf("Stop of a depot ignoring SIGTERM = %+v", st)
	}
}

func needCgroups(t *testing.T, d *Driver) cgroup.Hierarchy {
	t.Helper()
	h := d.Cgroups()
	if h.Version == cgroup.None {
		t.Skipf("cgroups unavailable on this node: %s", h.Reason)
	}
	return h
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	if h := needCgroups(t, d); h.Memory == "" {
		t.Skipf("no memory controller: %s", h.Reason)
	}
	s := spec("oom", "alloc")
	s.Memory = 32 << 20
	h := start(t, d, s)
	if l := h.Limits(); !l.MemoryEnforced {
		t.Fatalf("memory limit not enforced: %+v", l)
	}
	st := wait(t, h)
	if !st.OOMKilled || st.Signal != "SIGKILL" || !strings.HasPrefix(st.Reason, "oom killed") {
		t.Errorf("200 MiB under a 32 MiB limit: %+v, want OOM killed", st)
	}
	if strings.Contains(readLog(d, s.ID), "allocated") {
		t.Error("the workload finished allocating: the limit did not hold")
	}
}

func TestCPUQuotaAndGroupMembership(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	hier := needCgroups(t, d)
	if hier.CPU == "" {
		t.Skipf("no cpu controller: %s", hier.Reason)
	}
	s := spec("quota", "sleep")
	s.CPU = 250
	s.Memory = 128 << 20
	h := start(t, d, s)
	l := h.Limits()
	if !l.CPUEnforced || !l.MemoryEnforced || l.Mechanism != hier.Version.String() || l.Reason != "" {
		t.Errorf("Limits = %+v", l)
	}
	grp := filepath.Join(hier.CPU, testParent, s.ID)
	switch hier.Version {
	case cgroup.V1:
		if b, _ := os.ReadFile(filepath.Join(grp, "cpu.cfs_quota_us")); strings.TrimSpace(string(b)) != "25000" {
			t.Errorf("cpu.cfs_quota_us = %q, want 25000", b)
		}
	case cgroup.V2:
		if b, _ := os.ReadFile(filepath.Join(grp, "cpu.max")); strings.TrimSpace(string(b)) != "25000 100000" {
			t.Errorf("cpu.max = %q", b)
		}
	}
	// The workload itself (not the shim, not one of its threads) is in the group, in
	// every hierarchy.
	for _, top := range []string{hier.CPU, hier.Memory} {
		if top == "" {
			continue
		}
		procs, _ := os.ReadFile(filepath.Join(top, testParent, s.ID, "cgroup.procs"))
		if strings.TrimSpace(string(procs)) != strconv.Itoa(h.PID()) {
			t.Errorf("%s cgroup.procs = %q, want the workload's pid %d alone", top, procs, h.PID())
		}
	}
	stop(t, h, 5*time.Second)
	if _, err := os.Stat(grp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cgroup %s left after the depot ended", grp)
	}
}

func TestLimitsWithoutCgroups(t *testing.T) {
	t.Parallel()
	off := &cgroup.Hierarchy{Version: cgroup.None, Parent: testParent, Reason: "cgroups off for this test"}
	d := newDriver(t, func(c *Config) { c.Cgroup = off })
	s := spec("nolimits", "exit:0")
	s.CPU, s.Memory = 500, 64<<20
	h := start(t, d, s)
	l := h.Limits()
	if l.CPUEnforced || l.MemoryEnforced || l.Mechanism != "none" ||
		!strings.Contains(l.Reason, "CPU not limited: cgroups off for this test") || !strings.Contains(l.Reason, "memory not limited") {
		t.Errorf("Limits = %+v", l)
	}
	wait(t, h)

	strict := newDriver(t, func(c *Config) { c.Cgroup = off; c.RequireLimits = true })
	if _, err := strict.Start(context.Background(), s); !errors.Is(err, driver.ErrLimitsUnavailable) || !strings.Contains(err.Error(), "cgroups off") {
		t.Errorf("Start with RequireLimits = %v, want ErrLimitsUnavailable", err)
	}
	s.ID, s.CPU, s.Memory = "nolimits-2", 0, 0
	if h, err := strict.Start(context.Background(), s); err != nil {
		t.Errorf("RequireLimits refused a depot asking for no limits: %v", err)
	} else if l := h.Limits(); l.Reason != "no CPU limit requested; no memory limit requested" {
		t.Errorf("Limits = %+v", l)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{},
		{Dir: t.TempDir(), CgroupParent: "../x"},
		{Dir: t.TempDir(), StartTimeout: -1},
		{Dir: t.TempDir(), ShimBinary: "/nonexistent/qnet"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestEnvNotOnDisk: the environment may hold secrets, and nothing secret is written to
// disk; it reaches the workload all the same.
func TestEnvNotOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := newDriverAt(t, dir)
	s := spec("secret", "sleep")
	s.Env = append(s.Env, "DB_PASSWORD=hunter2-qnet")
	h := start(t, d, s)
	waitLog(t, d, h.ID(), `ready`)
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", h.PID()))
	if err == nil && !bytes.Contains(environ, []byte("DB_PASSWORD=hunter2-qnet")) {
		t.Errorf("workload environment lacks the variable: %q", environ)
	}
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("hunter2")) {
				t.Errorf("%s holds the secret", p)
			}
		}
		return nil
	})
	hs, err := newDriverAt(t, dir).Recover(context.Background())
	if err != nil || len(hs) != 1 || hs[0].Spec().Env != nil || hs[0].Spec().Command != os.Args[0] {
		t.Errorf("recovered spec: %+v, %v; want the spec without Env", hs, err)
	}
	stop(t, h, time.Second)
}

// TestRecoverWaitsForStartingShim: an agent that restarts while a shim is still starting
// waits for it, and takes a shim that died while starting for lost.
func TestRecoverWaitsForStartingShim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := newDriverAt(t, dir)
	// A stand-in for a shim stuck in its start: any live process will do.
	stuck := osexec.Command(os.Args[0])
	stuck.Env = []string{"QNET_TEST_WORKLOAD=sleep", noRaceExitSleep}
	if err := stuck.Start(); err != nil {
		t.Fatal(err)
	}
	defer stuck.Process.Kill()
	pidStart, _ := proc.StartTime(stuck.Process.Pid)
	os.Mkdir(filepath.Join(dir, "starting"), 0o700)
	statefile.Write(filepath.Join(dir, "starting", bundle.SpecFile), bundle.Launch{Spec: spec("starting", "sleep")}.Redacted())
	statefile.Write(filepath.Join(dir, "starting", bundle.StateFile), bundle.State{Phase: bundle.Starting, ShimPID: stuck.Process.Pid, ShimStart: pidStart})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := d.Recover(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recover with a starting shim = %v, want to wait until ctx ends", err)
	}
	stuck.Process.Kill()
	stuck.Wait()
	hs, err := d.Recover(context.Background())
	if err != nil || len(hs) != 1 {
		t.Fatalf("Recover = %v, %v", hs, err)
	}
	if st := wait(t, hs[0]); st.Reason != "lost: supervisor died before starting the workload" {
		t.Errorf("shim that died starting: %+v", st)
	}
}

func TestLogsRejectsBadIDs(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	for _, id := range []string{"../etc", "a/b", ""} {
		if o, e := d.Logs(id); o != "" || e != "" {
			t.Errorf("Logs(%q) = %q, %q; want empty paths", id, o, e)
		}
		if err := d.Remove(id); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Remove(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if o, _ := d.Logs("web-1"); o != filepath.Join(d.depots.Root(), "web-1", "stdout.log") {
		t.Errorf("Logs(web-1) = %q", o)
	}
}

// TestStartShimFailures: a shim that dies at once, and one that never reports, make
// Start fail with a clear error, in time, leaving nothing behind.
func TestStartShimFailures(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dies := newDriver(t, func(c *Config) {
		c.ShimBinary, c.ShimArgs = "/bin/sh", []string{"-c", `echo "shim broke: $0" >&2; exit 3`}
	})
	_, err := dies.Start(context.Background(), spec("dies", "sleep"))
	if err == nil || !strings.Contains(err.Error(), "exited before starting the workload") || !strings.Contains(err.Error(), "shim broke") {
		t.Errorf("Start with a dying shim = %v, want its last log line", err)
	}

	hangs := newDriver(t, func(c *Config) {
		c.ShimBinary, c.ShimArgs = "/bin/sh", []string{"-c", "exec sleep 100"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = hangs.Start(ctx, spec("hangs", "sleep"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with a silent shim = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("Start took %v to give up", took)
	}
	for _, d := range []*Driver{dies, hangs} {
		if entries, _ := os.ReadDir(d.depots.Root()); len(entries) != 0 {
			t.Errorf("runtime dir not cleaned: %d entries", len(entries))
		}
	}
}

// TestWarmShim starts depots one after another: a driver that runs none keeps no shim
// around; after the first start, each starts through a shim that was started in
// advance, and Close ends the spare one.
func TestWarmShim(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	if _, err := d.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.warmMu.Lock()
	idle := d.warm == nil && !d.refilling
	d.warmMu.Unlock()
	if !idle {
		t.Fatal("Recover with no depots started a shim")
	}
	stop(t, start(t, d, spec("first", "sleep")), time.Second)
	waitFor(t, "a warm shim", func() bool {
		d.warmMu.Lock()
		defer d.warmMu.Unlock()
		return d.warm != nil
	})
	for i := range 3 {
		d.warmMu.Lock()
		warmPID := d.warm.Cmd.Process.Pid
		d.warmMu.Unlock()
		id := fmt.Sprintf("warm-%d", i)
		h := start(t, d, spec(id, "sleep"))
		waitLog(t, d, id, "ready")
		var st bundle.State
		if err := statefile.Read(filepath.Join(d.depots.Dir(id), bundle.StateFile), &st); err != nil {
			t.Fatal(err)
		}
		if st.ShimPID != warmPID {
			t.Fatalf("depot %s: shim %d, want the warm shim %d", id, st.ShimPID, warmPID)
		}
		stop(t, h, time.Second)
		waitFor(t, "the next warm shim", func() bool {
			d.warmMu.Lock()
			defer d.warmMu.Unlock()
			return d.warm != nil && d.warm.Cmd.Process.Pid != warmPID
		})
	}
	d.warmMu.Lock()
	spare := d.warm
	d.warmMu.Unlock()
	d.Close()
	select {
	case <-spare.Exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the spare warm shim outlived Close")
	}
}
