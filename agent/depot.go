package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/health"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

var (
	// errRemoved ends a supervisor whose depot must stop: its placement is gone, or the
	// agent shuts its depots down.
	errRemoved = errors.New("depot removed")
	// errDetach ends a supervisor but leaves its process running for the next agent.
	errDetach = errors.New("agent stopping; depot left running")
)

// depot supervises one placed replica for as long as it is placed here.
type depot struct {
	a         *Agent
	id        string
	placement state.Placement
	rev       state.Revision
	handle    driver.Handle // adopted from a previous agent, if any

	cancel context.CancelCauseFunc
	done   chan struct{}

	mu     sync.Mutex
	status ledger.DepotStatus
	ports  map[string]int
}

func newDepot(a *Agent, p state.Placement, rev state.Revision, h driver.Handle) *depot {
	d := &depot{a: a, id: p.ID, placement: p, rev: rev, handle: h, done: make(chan struct{})}
	d.status = ledger.DepotStatus{ID: p.ID, State: ledger.DepotPending}
	if p.Status != nil {
		d.status.Restarts = p.Status.Restarts
	}
	return d
}

func (d *depot) start() {
	ctx, cancel := context.WithCancelCause(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		d.run(ctx)
	}()
}

func (d *depot) stop(cause error) {
	if d.cancel != nil {
		d.cancel(cause)
	}
}

func (d *depot) snapshot() ledger.DepotStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// set changes the depot's status and queues it for the next report.
func (d *depot) set(f func(st *ledger.DepotStatus)) {
	d.mu.Lock()
	prev := d.status
	f(&d.status)
	if d.status.State != prev.State || d.status.Ready != prev.Ready {
		d.status.Since = time.Now().UTC()
	}
	if d.ports != nil {
		d.status.Ports = maps.Clone(d.ports)
	}
	st := d.status
	d.mu.Unlock()
	d.a.setStatus(st)
}

func (d *depot) spec() *manifest.Spec { return &d.rev.Spec.Spec }

// run is the supervisor: start, watch, restart with backoff, until told to stop.
func (d *depot) run(ctx context.Context) {
	log := d.a.log.With("depot", d.id, "service", d.placement.Service)
	spec := d.spec()
	backoff := time.Duration(spec.Restart.Backoff)
	h := d.handle
	if h != nil {
		if err := d.adoptPorts(h); err != nil {
			log.Warn("adopted depot's ports", "err", err)
		}
		log.Info("adopted running depot", "pid", h.PID())
	} else if err := d.allocatePorts(); err != nil {
		d.set(func(st *ledger.DepotStatus) {
			st.State, st.Ready, st.Reason = ledger.DepotFailing, false, err.Error()
		})
		log.Warn("cannot allocate ports", "err", err)
		<-ctx.Done()
		d.finish(ctx, nil)
		return
	}

	first := true
	for {
		if h == nil {
			d.set(func(st *ledger.DepotStatus) {
				st.State, st.Ready, st.PID, st.Reason = ledger.DepotStarting, false, 0, ""
			})
			var err error
			if !first {
				err = d.refreshPorts()
			}
			first = false
			var drv driver.Driver
			if err == nil {
				drv, err = d.driver()
			}
			ds := d.driverSpec()
			if err == nil && d.a.cfg.Prepare != nil && (ds.Image != nil || ds.Wasm != nil) {
				d.set(func(st *ledger.DepotStatus) { st.Reason = "preparing the depot (fetching it from peers if needed)" })
				err = d.a.cfg.Prepare(ctx, &ds)
			}
			if err == nil && d.a.cfg.Inputs != nil && d.rev.Spec != nil && (len(d.spec().Secrets) > 0 || len(d.spec().Configs) > 0) {
				err = d.a.cfg.Inputs(ctx, d.placement, d.rev, &ds)
			}
			if err == nil {
				h, err = drv.Start(ctx, ds)
			}
			if err != nil {
				if ctx.Err() != nil {
					d.finish(ctx, nil)
					return
				}
				d.set(func(st *ledger.DepotStatus) {
					st.State, st.Ready = ledger.DepotFailing, false
					st.Restarts++
					st.Reason = fmt.Sprintf("start failed: %v; retrying in %s", err, backoff)
				})
				log.Warn("depot start failed", "err", err, "retry", backoff)
				if !ctxtime.Sleep(ctx, backoff) {
					d.finish(ctx, nil)
					return
				}
				backoff = nextBackoff(backoff, spec)
				continue
			}
		}
		lim := h.Limits()
		d.set(func(st *ledger.DepotStatus) {
			st.State, st.PID, st.ExitCode, st.Reason = ledger.DepotRunning, h.PID(), nil, ""
			st.Limits = describeLimits(lim)
			st.Ready = spec.Health.Readiness == nil
			if st.Ready {
				st.State = ledger.DepotReady
			}
		})

		exit, killedFor := d.supervise(ctx, h)
		if ctx.Err() != nil {
			d.finish(ctx, h)
			return
		}
		if exit.FinishedAt.Sub(exit.StartedAt) >= d.a.cfg.ResetBackoffAfter {
			backoff = time.Duration(spec.Restart.Backoff)
		}
		reason := describeExit(exit, killedFor)
		log.Info("depot exited", "reason", reason)
		code := exit.Code
		if !shouldRestart(spec.Restart.Policy, exit, killedFor) {
			d.set(func(st *ledger.DepotStatus) {
				st.State, st.Ready, st.PID, st.ExitCode, st.Reason = ledger.DepotExited, false, 0, &code, reason
			})
			<-ctx.Done()
			d.finish(ctx, nil)
			return
		}
		d.set(func(st *ledger.DepotStatus) {
			st.State, st.Ready, st.PID, st.ExitCode = ledger.DepotFailing, false, 0, &code
			st.Restarts++
			st.Reason = fmt.Sprintf("%s; restarting in %s", reason, backoff)
		})
		h = nil
		if !ctxtime.Sleep(ctx, backoff) {
			d.finish(ctx, nil)
			return
		}
		backoff = nextBackoff(backoff, spec)
	}
}

// finish ends a supervisor: a detached depot keeps running; a removed one is stopped
// and its runtime state, logs and ports are released.
func (d *depot) finish(ctx context.Context, h driver.Handle) {
	if errors.Is(context.Cause(ctx), errDetach) {
		return
	}
	if h != nil && d.a.cfg.DrainDelay > 0 && errors.Is(context.Cause(ctx), errRemoved) && d.snapshot().Ready {
		d.set(func(st *ledger.DepotStatus) { st.Ready, st.Reason = false, "draining before stop" })
		t := time.NewTimer(d.a.cfg.DrainDelay)
		<-t.C
	}
	d.cleanup(context.Background(), h)
}

func (d *depot) cleanup(ctx context.Context, h driver.Handle) {
	if h != nil {
		if _, err := h.Stop(ctx, d.a.cfg.StopGrace); err != nil {
			d.a.log.Warn("stop depot", "depot", d.id, "err", err)
		}
	}
	if err := d.a.remove(d.id); err != nil {
		d.a.log.Warn("remove depot", "depot", d.id, "err", err)
	}
	if d.a.cfg.Removed != nil {
		d.a.cfg.Removed(d.id)
	}
	d.mu.Lock()
	ports := slices.Collect(maps.Values(d.ports))
	d.ports = nil
	d.mu.Unlock()
	d.a.cfg.Ports.Release(ports...)
}

// supervise waits for the process to exit, running its probes meanwhile. A liveness
// failure stops the process; killedFor then says why.
func (d *depot) supervise(ctx context.Context, h driver.Handle) (driver.ExitStatus, string) {
	mctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	exited := make(chan driver.ExitStatus, 1)
	wg.Go(func() {
		st, err := h.Wait(mctx)
		if err == nil {
			exited <- st
		}
	})

	unlive := make(chan string, 1)
	hc := d.spec().Health
	target := d.healthTarget()
	if hc.Liveness != nil {
		d.monitor(mctx, &wg, health.Liveness, hc.Liveness, target, func(r health.Result) {
			if !r.Healthy {
				select {
				case unlive <- r.Err:
				default:
				}
			}
		})
	}
	if hc.Readiness != nil {
		d.monitor(mctx, &wg, health.Readiness, hc.Readiness, target, func(r health.Result) {
			d.set(func(st *ledger.DepotStatus) {
				if st.State != ledger.DepotRunning && st.State != ledger.DepotReady {
					return
				}
				st.Ready = r.Healthy
				if r.Healthy {
					st.State, st.Reason = ledger.DepotReady, ""
				} else {
					st.State, st.Reason = ledger.DepotRunning, "readiness probe failing: "+r.Err
				}
			})
		})
	}

	select {
	case st := <-exited:
		return st, ""
	case why := <-unlive:
		d.set(func(st *ledger.DepotStatus) {
			st.State, st.Ready, st.Reason = ledger.DepotFailing, false, "liveness probe failed: "+why
		})
		st, err := h.Stop(ctx, d.a.cfg.StopGrace)
		if err != nil && ctx.Err() == nil {
			d.a.log.Warn("stop unhealthy depot", "depot", d.id, "err", err)
		}
		return st, "liveness probe failed: " + why
	case <-ctx.Done():
		return driver.ExitStatus{}, ""
	}
}

func (d *depot) monitor(ctx context.Context, wg *sync.WaitGroup, kind health.Kind, p *manifest.Probe, t health.Target, report func(health.Result)) {
	c, err := health.NewCheck(p, t)
	if err == nil {
		var m *health.Monitor
		if m, err = health.NewMonitor(kind, p, c, report); err == nil {
			wg.Go(func() { m.Run(ctx) })
			return
		}
	}
	// The manifest was validated, so this is a bug or a port that vanished; say so in
	// the status rather than run unchecked.
	report(health.Result{Healthy: false, Err: fmt.Sprintf("%s probe cannot run: %v", kind, err), At: time.Now()})
}

// healthTarget says where the depot's probes reach it.
func (d *depot) healthTarget() health.Target {
	ports := d.portsCopy()
	t := health.Target{Host: d.a.cfg.Host, Ports: ports, ServicePorts: map[int]int{}, Env: d.env()}
	if e := d.spec().Depot.Exec; e != nil {
		t.Dir = e.WorkingDir
	}
	for i, p := range d.spec().Ports {
		t.ServicePorts[p.Port] = ports[p.Name]
		if i == 0 {
			t.DefaultPort = ports[p.Name]
		}
	}
	return t
}

func (d *depot) portsCopy() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.ports)
}

// allocatePorts reserves the depot's host ports: fixed ones as asked, others free ones.
func (d *depot) allocatePorts() error {
	ports := map[string]int{}
	var got []int
	for _, p := range d.spec().Ports {
		if p.HostPort != 0 {
			if err := d.a.cfg.Ports.Reserve(p.HostPort); err != nil {
				d.a.cfg.Ports.Release(got...)
				return fmt.Errorf("port %s: %w", p.Name, err)
			}
			ports[p.Name] = p.HostPort
			got = append(got, p.HostPort)
		}
	}
	for _, p := range d.spec().Ports {
		if p.HostPort == 0 {
			n, err := d.a.cfg.Ports.Allocate(1)
			if err != nil {
				d.a.cfg.Ports.Release(got...)
				return fmt.Errorf("port %s: %w", p.Name, err)
			}
			ports[p.Name] = n[0]
			got = append(got, n[0])
		}
	}
	d.mu.Lock()
	d.ports = ports
	d.mu.Unlock()
	return nil
}

// refreshPorts runs before a restart: a port the depot had may have been taken by
// something else meanwhile. An assigned port that is taken is replaced by a free one;
// a fixed host port that is taken is an error (the start is retried later).
func (d *depot) refreshPorts() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.spec().Ports {
		cur := d.ports[p.Name]
		if d.a.cfg.Ports.Free(cur) {
			continue
		}
		if p.HostPort != 0 {
			return fmt.Errorf("port %s: port %d is already in use on this node", p.Name, cur)
		}
		n, err := d.a.cfg.Ports.Allocate(1)
		if err != nil {
			return fmt.Errorf("port %s: %w", p.Name, err)
		}
		d.a.cfg.Ports.Release(cur)
		d.ports[p.Name] = n[0]
	}
	return nil
}

const metaPorts = "ports"

// adoptPorts takes over the ports a previous agent gave an adopted depot.
func (d *depot) adoptPorts(h driver.Handle) error {
	ports := map[string]int{}
	if raw := h.Spec().Meta[metaPorts]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &ports); err != nil {
			return fmt.Errorf("ports of adopted depot: %w", err)
		}
	}
	d.mu.Lock()
	d.ports = ports
	d.mu.Unlock()
	var errs []error
	for _, p := range ports {
		errs = append(errs, d.a.cfg.Ports.Claim(p))
	}
	return errors.Join(errs...)
}

// env is the depot's environment: the manifest's, then what QNet tells every depot.
func (d *depot) env() []string {
	spec := d.spec()
	container := spec.Depot.Image != nil
	env := map[string]string{}
	if !container {
		// A container keeps its image's PATH; processes on the node get the agent's.
		env["PATH"] = d.a.pathEnv()
	}
	maps.Copy(env, spec.Env)
	env["QNET_DEPOT_ID"] = d.id
	env["QNET_SERVICE"] = d.placement.Service
	env["QNET_REVISION"] = strconv.FormatUint(d.placement.Revision, 10)
	env["QNET_NODE"] = d.a.cfg.NodeID
	env["QNET_HOST"] = d.a.cfg.Host
	if d.a.cfg.DNS != nil {
		if addr := d.a.cfg.DNS(); addr != "" {
			env["QNET_DNS"] = addr
		}
	}
	ports := d.portsCopy()
	for i, p := range spec.Ports {
		// A process on the node listens on its host port; a container on its own port,
		// which the node forwards its host port to.
		port := ports[p.Name]
		if container {
			port = p.Port
		}
		env["QNET_PORT_"+envName(p.Name)] = strconv.Itoa(port)
		if i == 0 {
			env["PORT"] = strconv.Itoa(port)
		}
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func envName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// driverSpec is what the depot's driver starts: the program, or the image or module,
// with the depot's environment, limits and ports.
func (d *depot) driverSpec() driver.Spec {
	spec := d.spec()
	portsJSON, _ := json.Marshal(d.portsCopy())
	s := driver.Spec{
		ID:     d.id,
		Env:    d.env(),
		CPU:    int64(spec.Resources.CPU),
		Memory: int64(spec.Resources.Memory),
		Meta: map[string]string{
			metaPorts:  string(portsJSON),
			"service":  d.placement.Service,
			"revision": strconv.FormatUint(d.placement.Revision, 10),
			"kind":     spec.Depot.Kind(),
		},
	}
	switch dp := spec.Depot; {
	case dp.Exec != nil:
		s.Command, s.Args, s.Dir = dp.Exec.Command, dp.Exec.Args, dp.Exec.WorkingDir
	case dp.Image != nil:
		s.Image = &driver.ImageSpec{
			Digest: dp.Image.Digest, Command: dp.Image.Command, Args: dp.Image.Args,
			WorkingDir: dp.Image.WorkingDir, User: dp.Image.User, ReadOnlyRoot: dp.Image.ReadOnlyRoot,
		}
		s.Command = "image:" + dp.Image.Digest
	case dp.Wasm != nil:
		s.Wasm = &driver.WasmSpec{Digest: dp.Wasm.Digest, Args: dp.Wasm.Args}
		s.Command = "wasm:" + dp.Wasm.Digest
	}
	for _, p := range spec.Ports {
		if s.Ports == nil {
			s.Ports = map[string]driver.PortMapping{}
		}
		s.Ports[p.Name] = driver.PortMapping{Host: d.portsCopy()[p.Name], Container: p.Port, Protocol: p.Protocol}
	}
	return s
}

// driver returns the driver of the depot's kind on this node.
func (d *depot) driver() (driver.Driver, error) {
	kind := d.spec().Depot.Kind()
	drv, ok := d.a.cfg.Drivers[kind]
	if !ok {
		return nil, fmt.Errorf("this node has no driver for %s depots", kind)
	}
	return drv, nil
}

func shouldRestart(p manifest.RestartPolicy, exit driver.ExitStatus, killedFor string) bool {
	switch p {
	case manifest.RestartNever:
		return false
	case manifest.RestartOnFailure:
		return killedFor != "" || exit.Code != 0 || exit.Signal != "" || exit.OOMKilled
	}
	return true
}

func nextBackoff(cur time.Duration, spec *manifest.Spec) time.Duration {
	return min(2*cur, time.Duration(spec.Restart.MaxBackoff))
}

// describeExit says in words how a depot ended. The driver's own Reason already says
// it ("exited with code 7", "oom killed: ..."), so it is used as it is; the exit code and
// signal only speak for a driver that gave none.
func describeExit(e driver.ExitStatus, killedFor string) string {
	s := e.Reason
	if s == "" {
		switch {
		case e.OOMKilled:
			s = "killed: out of memory"
		case e.Signal != "":
			s = "killed by " + e.Signal
		default:
			s = fmt.Sprintf("exited with code %d", e.Code)
		}
	}
	if killedFor != "" {
		s = killedFor + ": " + s
	}
	return s
}

func describeLimits(l driver.LimitReport) string {
	switch {
	case l.CPUEnforced && l.MemoryEnforced:
		return "cpu and memory limited by " + l.Mechanism
	case l.Reason != "":
		return "limits not enforced: " + l.Reason
	}
	return "limits partly enforced by " + l.Mechanism
}
