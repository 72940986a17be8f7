package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/portalloc"
	"qnet.dev/qnet/state"
)

func TestShouldRestart(t *testing.T) {
	ok := driver.ExitStatus{Code: 0, Reason: "exited with code 0"}
	failed := driver.ExitStatus{Code: 3, Reason: "exited with code 3"}
	killed := driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}
	oom := driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true}
	cases := []struct {
		policy    manifest.RestartPolicy
		exit      driver.ExitStatus
		killedFor string
		want      bool
	}{
		{manifest.RestartAlways, ok, "", true},
		{manifest.RestartAlways, failed, "", true},
		{manifest.RestartAlways, killed, "liveness probe failed: timeout", true},
		{"", ok, "", true}, // an undefaulted policy behaves as the default, always
		{manifest.RestartOnFailure, ok, "", false},
		{manifest.RestartOnFailure, failed, "", true},
		{manifest.RestartOnFailure, killed, "", true},
		{manifest.RestartOnFailure, oom, "", true},
		{manifest.RestartOnFailure, driver.ExitStatus{OOMKilled: true}, "", true},
		// A depot stopped for failing its liveness probe failed, even if it exited 0
		// on SIGTERM.
		{manifest.RestartOnFailure, ok, "liveness probe failed: connection refused", true},
		{manifest.RestartNever, ok, "", false},
		{manifest.RestartNever, failed, "", false},
		{manifest.RestartNever, oom, "", false},
		{manifest.RestartNever, ok, "liveness probe failed: timeout", false},
	}
	for _, c := range cases {
		if got := shouldRestart(c.policy, c.exit, c.killedFor); got != c.want {
			t.Errorf("shouldRestart(%q, %+v, %q) = %v, want %v", c.policy, c.exit, c.killedFor, got, c.want)
		}
	}
}

func TestNextBackoff(t *testing.T) {
	spec := &manifest.Spec{Restart: manifest.Restart{Backoff: manifest.Duration(100 * time.Millisecond), MaxBackoff: manifest.Duration(time.Second)}}
	var got []time.Duration
	b := time.Duration(spec.Restart.Backoff)
	for range 7 {
		got = append(got, b)
		b = nextBackoff(b, spec)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
	// Doubling a long backoff never overflows past the cap.
	spec.Restart.MaxBackoff = manifest.Duration(time.Hour)
	if got := nextBackoff(50*time.Minute, spec); got != time.Hour {
		t.Fatalf("nextBackoff(50m) = %v, want 1h", got)
	}
}

func TestDescribeExit(t *testing.T) {
	cases := []struct {
		exit      driver.ExitStatus
		killedFor string
		want      string
	}{
		{driver.ExitStatus{Code: 7, Reason: "exited with code 7"}, "", "exited with code 7"},
		{driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}, "", "killed by SIGKILL"},
		{driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true, Reason: "oom killed: memory limit of 8388608 bytes reached (killed by SIGKILL)"}, "",
			"oom killed: memory limit of 8388608 bytes reached (killed by SIGKILL)"},
		{driver.ExitStatus{Code: -1, Reason: "lost: supervisor died"}, "", "lost: supervisor died"},
		{driver.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}, "liveness probe failed: GET /healthz: 500",
			"liveness probe failed: GET /healthz: 500: stopped (killed by SIGTERM)"},
		// A driver that says nothing in words: the code, signal and OOM flag speak.
		{driver.ExitStatus{Code: 2}, "", "exited with code 2"},
		{driver.ExitStatus{Code: 130, Signal: "SIGINT"}, "", "killed by SIGINT"},
		{driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true}, "", "killed: out of memory"},
	}
	for _, c := range cases {
		if got := describeExit(c.exit, c.killedFor); got != c.want {
			t.Errorf("describeExit(%+v, %q) = %q, want %q", c.exit, c.killedFor, got, c.want)
		}
	}
}

func TestDescribeLimits(t *testing.T) {
	cases := []struct {
		l    driver.LimitReport
		want string
	}{
		{driver.LimitReport{CPUEnforced: true, MemoryEnforced: true, Mechanism: "cgroup v2"}, "cpu and memory limited by cgroup v2"},
		{driver.LimitReport{Mechanism: "none", Reason: "cgroups are not in use"}, "limits not enforced: cgroups are not in use"},
		{driver.LimitReport{MemoryEnforced: true, Mechanism: "cgroup v1"}, "limits partly enforced by cgroup v1"},
	}
	for _, c := range cases {
		if got := describeLimits(c.l); got != c.want {
			t.Errorf("describeLimits(%+v) = %q, want %q", c.l, got, c.want)
		}
	}
}

// testAgent returns an agent with just what a depot supervisor uses.
func testAgent(t *testing.T, drv driver.Driver) *Agent {
	t.Helper()
	ports, err := portalloc.New(portalloc.DefaultLow, portalloc.DefaultHigh)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Host, cfg.Ports = "node-1", "10.0.0.7", ports
	cfg.Drivers = map[string]driver.Driver{"exec": drv}
	cfg.PathDirs = []string{"/opt/qnet/bin", "/opt/tools"}
	cfg.Log = slog.New(slog.DiscardHandler)
	return &Agent{cfg: cfg, log: cfg.Log, depots: map[string]*depot{}, dirty: map[string]ledger.DepotStatus{}, kick: make(chan struct{}, 1)}
}

func testDepot(a *Agent, spec manifest.Spec) *depot {
	p := state.Placement{Placement: ledger.Placement{ID: "web-1a2b3c4d", Service: "web", Revision: 3, Node: "node-1", Slot: 0}}
	rev := state.Revision{Service: "web", Revision: 3, Spec: &manifest.Service{Metadata: manifest.Metadata{Name: "web"}, Spec: spec}}
	return newDepot(a, p, rev, nil)
}

func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("env entry %q is not KEY=VALUE", kv)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("env has %s twice: %v", k, env)
		}
		m[k] = v
	}
	return m
}

func TestEnv(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	a := testAgent(t, nil)
	d := testDepot(a, manifest.Spec{
		Ports: []manifest.Port{{Name: "http", Port: 8080}, {Name: "admin-api", Port: 9090, HostPort: 9090}},
		// The manifest may not override what QNet tells the depot about itself.
		Env:       map[string]string{"LOG_LEVEL": "info", "PORT": "1", "QNET_DEPOT_ID": "forged", "QNET_PORT_HTTP": "2"},
		Resources: manifest.Resources{CPU: 250, Memory: 64 << 20},
		Depot:     manifest.Depot{Exec: &manifest.ExecDepot{Command: "web", Args: []string{"--verbose"}, WorkingDir: "/srv/web"}},
	})
	d.ports = map[string]int{"http": 20001, "admin-api": 9090}
	env := d.env()
	if !slices.IsSorted(env) {
		t.Errorf("env is not sorted: %v", env)
	}
	got := envMap(t, env)
	want := map[string]string{
		"PATH":                "/opt/qnet/bin:/opt/tools:/usr/bin:/bin",
		"LOG_LEVEL":           "info",
		"PORT":                "20001",
		"QNET_PORT_HTTP":      "20001",
		"QNET_PORT_ADMIN_API": "9090",
		"QNET_DEPOT_ID":       "web-1a2b3c4d",
		"QNET_SERVICE":        "web",
		"QNET_REVISION":       "3",
		"QNET_NODE":           "node-1",
		"QNET_HOST":           "10.0.0.7",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("env:\n got %v\nwant %v", got, want)
	}

	spec := d.driverSpec()
	if spec.ID != "web-1a2b3c4d" || spec.Command != "web" || !slices.Equal(spec.Args, []string{"--verbose"}) || spec.Dir != "/srv/web" ||
		spec.CPU != 250 || spec.Memory != 64<<20 || !slices.Equal(spec.Env, env) {
		t.Fatalf("driver spec: %+v", spec)
	}
	if spec.Meta["service"] != "web" || spec.Meta["revision"] != "3" || spec.Meta[metaPorts] != `{"admin-api":9090,"http":20001}` {
		t.Fatalf("driver spec meta: %v", spec.Meta)
	}
	if err := spec.Validate(); err != nil {
		t.Fatalf("driver spec does not validate: %v", err)
	}

	target := d.healthTarget()
	if target.Host != "10.0.0.7" || target.DefaultPort != 20001 || target.ServicePorts[8080] != 20001 || target.ServicePorts[9090] != 9090 || target.Dir != "/srv/web" {
		t.Fatalf("health target: %+v", target)
	}
}

func TestEnvWithoutPorts(t *testing.T) {
	t.Setenv("PATH", "")
	a := testAgent(t, nil)
	a.cfg.PathDirs = nil
	got := envMap(t, testDepot(a, manifest.Spec{}).env())
	if _, ok := got["PORT"]; ok {
		t.Errorf("PORT set for a depot without ports: %v", got)
	}
	for k := range got {
		if strings.HasPrefix(k, "QNET_PORT_") {
			t.Errorf("%s set for a depot without ports", k)
		}
	}
	if got["QNET_DEPOT_ID"] != "web-1a2b3c4d" {
		t.Errorf("QNET_DEPOT_ID = %q", got["QNET_DEPOT_ID"])
	}
}

// fakeDriver runs no process: each Start gives a handle that "runs" for a while and then
// exits as told, so the supervisor's restart logic can be tested on a fake clock.
type fakeDriver struct {
	// run says, for the n-th start (from 0), how long the depot runs and how it exits,
	// or the error Start fails with.
	run func(n int) (time.Duration, driver.ExitStatus, error)

	mu      sync.Mutex
	starts  []time.Time
	exits   []time.Time
	removed []string
	started chan int
}

func newFakeDriver(run func(n int) (time.Duration, driver.ExitStatus, error)) *fakeDriver {
	return &fakeDriver{run: run, started: make(chan int, 100)}
}

// crashingDriver returns a fake driver whose run n (from 0) lasts runFor(n) and then
// exits with code 1.
func crashingDriver(runFor func(n int) time.Duration) *fakeDriver {
	crash := driver.ExitStatus{Code: 1, Reason: "exited with code 1"}
	return newFakeDriver(func(n int) (time.Duration, driver.ExitStatus, error) { return runFor(n), crash, nil })
}

func (f *fakeDriver) Name() string                                     { return "fake" }
func (f *fakeDriver) Recover(context.Context) ([]driver.Handle, error) { return nil, nil }
func (f *fakeDriver) Logs(id string) (string, string)                  { return "", "" }
func (f *fakeDriver) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeDriver) Start(ctx context.Context, s driver.Spec) (driver.Handle, error) {
	f.mu.Lock()
	n := len(f.starts)
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	defer func() { f.started <- n }()
	runFor, exit, err := f.run(n)
	if err != nil {
		return nil, err
	}
	return &fakeHandle{d: f, spec: s, pid: 1000 + n, at: time.Now(), runFor: runFor, exit: exit, stopped: make(chan struct{})}, nil
}

type fakeHandle struct {
	d       *fakeDriver
	spec    driver.Spec
	pid     int
	at      time.Time
	runFor  time.Duration
	exit    driver.ExitStatus
	once    sync.Once
	stopped chan struct{}
}

func (h *fakeHandle) ID() string           { return h.spec.ID }
func (h *fakeHandle) PID() int             { return h.pid }
func (h *fakeHandle) Spec() driver.Spec    { return h.spec }
func (h *fakeHandle) StartedAt() time.Time { return h.at }
func (h *fakeHandle) Signal(os.Signal) error {
	return errors.New("fake handle takes no signals")
}
func (h *fakeHandle) Limits() driver.LimitReport {
	return driver.LimitReport{Mechanism: "none", Reason: "fake driver"}
}

func (h *fakeHandle) Wait(ctx context.Context) (driver.ExitStatus, error) {
	t := time.NewTimer(h.runFor)
	defer t.Stop()
	select {
	case <-t.C:
		h.d.mu.Lock()
		h.d.exits = append(h.d.exits, time.Now())
		h.d.mu.Unlock()
		ex := h.exit
		ex.StartedAt, ex.FinishedAt = h.at, time.Now()
		return ex, nil
	case <-h.stopped:
		return driver.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}, nil
	case <-ctx.Done():
		return driver.ExitStatus{}, ctx.Err()
	}
}

func (h *fakeHandle) Stop(ctx context.Context, grace time.Duration) (driver.ExitStatus, error) {
	h.once.Do(func() { close(h.stopped) })
	return driver.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}, nil
}

func restartSpec(policy manifest.RestartPolicy) manifest.Spec {
	return manifest.Spec{
		Depot:   manifest.Depot{Exec: &manifest.ExecDepot{Command: "web"}},
		Restart: manifest.Restart{Policy: policy, Backoff: manifest.Duration(100 * time.Millisecond), MaxBackoff: manifest.Duration(400 * time.Millisecond)},
	}
}

// TestSupervisorBackoff lets a depot crash again and again on a fake clock and checks
// the pauses between its runs double up to the cap, the restarts are counted, and a
// run longer than ResetBackoffAfter starts the backoff over.
func TestSupervisorBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := crashingDriver(func(n int) time.Duration {
			if n == 5 {
				return time.Minute // long enough to reset the backoff
			}
			return 10 * time.Millisecond
		})
		a := testAgent(t, drv)
		a.cfg.ResetBackoffAfter = 30 * time.Second
		d := testDepot(a, restartSpec(manifest.RestartAlways))
		d.start()
		for range 8 {
			<-drv.started
		}
		synctest.Wait()
		st := d.snapshot()
		d.stop(errRemoved)
		<-d.done

		var pauses []time.Duration
		for i := range 7 {
			pauses = append(pauses, drv.starts[i+1].Sub(drv.exits[i]))
		}
		ms := time.Millisecond
		want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms, 100 * ms, 200 * ms}
		if !slices.Equal(pauses, want) {
			t.Fatalf("pauses between runs %v, want %v", pauses, want)
		}
		if st.State != ledger.DepotReady || st.Restarts != 7 || st.PID != 1007 || !st.Ready {
			t.Fatalf("status while the 8th run runs: %+v", st)
		}
		if !slices.Equal(drv.removed, []string{"web-1a2b3c4d"}) {
			t.Fatalf("removed depots %v, want the one stopped", drv.removed)
		}
	})
}

// waitStatus waits until the depot's status satisfies cond. In a synctest bubble a
// status that never comes is a deadlock, which fails the test at once.
func waitStatus(a *Agent, d *depot, cond func(ledger.DepotStatus) bool) ledger.DepotStatus {
	for {
		if st := d.snapshot(); cond(st) {
			return st
		}
		<-a.kick
	}
}

// TestSupervisorStatus checks what a depot reports after it fails to start, crashes
// with each restart policy, or exits for good.
func TestSupervisorStatus(t *testing.T) {
	cases := []struct {
		name   string
		policy manifest.RestartPolicy
		run    func(n int) (time.Duration, driver.ExitStatus, error)
		until  func(st ledger.DepotStatus) bool
		starts int
		want   func(st ledger.DepotStatus) bool
	}{
		{
			name:   "start fails",
			policy: manifest.RestartAlways,
			run: func(int) (time.Duration, driver.ExitStatus, error) {
				return 0, driver.ExitStatus{}, fmt.Errorf("%w: web not in PATH", driver.ErrCommandNotFound)
			},
			until:  func(st ledger.DepotStatus) bool { return st.Restarts == 3 },
			starts: 3,
			want: func(st ledger.DepotStatus) bool {
				return st.State == ledger.DepotFailing && st.PID == 0 && !st.Ready &&
					st.Reason == "start failed: command not found: web not in PATH; retrying in 400ms"
			},
		},
		{
			name:   "crash loop with always",
			policy: manifest.RestartAlways,
			run: func(int) (time.Duration, driver.ExitStatus, error) {
				return time.Millisecond, driver.ExitStatus{Code: 7, Reason: "exited with code 7"}, nil
			},
			until:  func(st ledger.DepotStatus) bool { return st.Restarts == 2 && st.State == ledger.DepotFailing },
			starts: 2,
			want: func(st ledger.DepotStatus) bool {
				return st.PID == 0 && !st.Ready && st.ExitCode != nil && *st.ExitCode == 7 &&
					st.Reason == "exited with code 7; restarting in 200ms"
			},
		},
		{
			name:   "never restarts",
			policy: manifest.RestartNever,
			run: func(int) (time.Duration, driver.ExitStatus, error) {
				return time.Millisecond, driver.ExitStatus{Code: 7, Reason: "exited with code 7"}, nil
			},
			until:  func(st ledger.DepotStatus) bool { return st.State == ledger.DepotExited },
			starts: 1,
			want: func(st ledger.DepotStatus) bool {
				return st.Restarts == 0 && st.ExitCode != nil && *st.ExitCode == 7 && st.Reason == "exited with code 7" && st.PID == 0 && !st.Ready
			},
		},
		{
			name:   "on-failure does not restart a clean exit",
			policy: manifest.RestartOnFailure,
			run: func(int) (time.Duration, driver.ExitStatus, error) {
				return time.Millisecond, driver.ExitStatus{Code: 0, Reason: "exited with code 0"}, nil
			},
			until:  func(st ledger.DepotStatus) bool { return st.State == ledger.DepotExited },
			starts: 1,
			want: func(st ledger.DepotStatus) bool {
				return st.Restarts == 0 && st.ExitCode != nil && *st.ExitCode == 0 && st.Reason == "exited with code 0"
			},
		},
		{
			name:   "on-failure restarts a crash",
			policy: manifest.RestartOnFailure,
			run: func(n int) (time.Duration, driver.ExitStatus, error) {
				if n == 0 {
					return time.Millisecond, driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}, nil
				}
				return time.Hour, driver.ExitStatus{}, nil
			},
			until:  func(st ledger.DepotStatus) bool { return st.Restarts == 1 && st.State == ledger.DepotReady },
			starts: 2,
			want: func(st ledger.DepotStatus) bool {
				return st.PID == 1001 && st.Ready && st.ExitCode == nil && st.Reason == "" && st.Limits == "limits not enforced: fake driver"
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				drv := newFakeDriver(c.run)
				a := testAgent(t, drv)
				d := testDepot(a, restartSpec(c.policy))
				d.start()
				st := waitStatus(a, d, c.until)
				synctest.Wait()
				d.stop(errRemoved)
				<-d.done
				if len(drv.starts) != c.starts {
					t.Errorf("%d starts, want %d", len(drv.starts), c.starts)
				}
				if !c.want(st) {
					t.Fatalf("status: %+v", st)
				}
			})
		})
	}
}
