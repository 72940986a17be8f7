package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"qnet.dev/qnet/manifest"
)

// Kind says what a probe decides, which sets the state a [Monitor] starts in.
type Kind int

// Kinds of probe.
const (
	// Liveness decides whether a depot must be restarted. A depot is taken to be
	// alive until its probe fails FailureThreshold times in a row.
	Liveness Kind = iota + 1
	// Readiness decides whether a depot gets traffic. A depot is taken to be not
	// ready until its probe passes SuccessThreshold times in a row.
	Readiness
)

// String returns "liveness" or "readiness".
func (k Kind) String() string {
	switch k {
	case Liveness:
		return "liveness"
	case Readiness:
		return "readiness"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Result is the state of a probe after an attempt.
type Result struct {
	// Healthy is the decision: alive for a liveness probe, ready for a readiness probe.
	Healthy bool
	// Err is the error of the last attempt; empty when it passed or none ran yet.
	Err string
	// At is when the last attempt ended, or when the monitor was created.
	At time.Time
	// ConsecutiveFailures and ConsecutiveSuccesses count the attempts since the
	// outcome last changed; at most one of them is non-zero.
	ConsecutiveFailures, ConsecutiveSuccesses int
}

// state is what a Monitor has decided so far.
type state int

const (
	unknown state = iota
	healthy
	unhealthy
)

// Monitor runs one check on the schedule of its probe and reports each change of the
// decision. Create it with [NewMonitor] and call Run once.
type Monitor struct {
	kind             Kind
	check            Check
	initialDelay     time.Duration
	interval         time.Duration
	timeout          time.Duration
	failureThreshold int
	successThreshold int
	report           func(Result)

	mu    sync.Mutex
	state state
	last  Result
}

// NewMonitor returns a monitor that runs c on the schedule of probe p (initialDelay,
// interval, timeout and thresholds, with the manifest's defaults for fields left zero)
// and calls report on each change of its decision. report runs on the goroutine that
// called Run, one call at a time, and delays the next attempt while it runs; it may be
// nil when the caller only polls [Monitor.Last].
func NewMonitor(kind Kind, p *manifest.Probe, c Check, report func(Result)) (*Monitor, error) {
	if kind != Liveness && kind != Readiness {
		return nil, fmt.Errorf("health monitor: kind %v is neither liveness nor readiness", kind)
	}
	if p == nil {
		return nil, fmt.Errorf("health monitor: %v: no probe given", kind)
	}
	if c == nil {
		return nil, fmt.Errorf("health monitor: %v: no check given", kind)
	}
	m := &Monitor{
		kind:             kind,
		check:            c,
		initialDelay:     time.Duration(p.InitialDelay),
		interval:         time.Duration(p.Interval),
		timeout:          time.Duration(p.Timeout),
		failureThreshold: p.FailureThreshold,
		successThreshold: p.SuccessThreshold,
		report:           report,
	}
	var errs []error
	if m.initialDelay < 0 {
		errs = append(errs, fmt.Errorf("initialDelay %v is negative", m.initialDelay))
	}
	if m.interval < 0 {
		errs = append(errs, fmt.Errorf("interval %v is negative", m.interval))
	} else if m.interval == 0 {
		m.interval = time.Duration(manifest.DefaultProbeInterval)
	}
	if m.timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", m.timeout))
	} else if m.timeout == 0 {
		// As manifest.Default does: never longer than the interval.
		m.timeout = min(time.Duration(manifest.DefaultProbeTimeout), m.interval)
	}
	if m.failureThreshold < 0 {
		errs = append(errs, fmt.Errorf("failureThreshold %d is negative; want 1 or more", m.failureThreshold))
	} else if m.failureThreshold == 0 {
		m.failureThreshold = manifest.DefaultFailureThreshold
	}
	if m.successThreshold < 0 {
		errs = append(errs, fmt.Errorf("successThreshold %d is negative; want 1 or more", m.successThreshold))
	} else if m.successThreshold == 0 {
		m.successThreshold = manifest.DefaultSuccessThreshold
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("health monitor: %v probe: %w", kind, err)
	}
	m.last = Result{Healthy: kind == Liveness, At: time.Now()}
	return m, nil
}

// Kind returns the kind of probe m runs.
func (m *Monitor) Kind() Kind { return m.kind }

// Last returns the result of the latest attempt, or the starting state (alive for
// liveness, not ready for readiness) before the first. It is safe to call while Run
// runs.
func (m *Monitor) Last() Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Run waits the initial delay, then runs the check every interval until ctx is done,
// and returns then. Each attempt gets the probe's timeout; an attempt that overruns
// the interval delays the next one rather than overlapping it. Run reports the first
// decision (even a readiness probe failing from the start, so the caller learns why)
// and every change after it. Run must be called once.
func (m *Monitor) Run(ctx context.Context) {
	if m.initialDelay > 0 {
		t := time.NewTimer(m.initialDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		m.attempt(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// attempt runs the check once and updates and reports the decision.
func (m *Monitor) attempt(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, m.timeout)
	err := m.check.Run(cctx)
	late := cctx.Err() // read before cancel, which would set it anyway
	cancel()
	if ctx.Err() != nil {
		// Stopped mid-attempt: the outcome says nothing about the depot.
		return
	}
	if err == nil && late != nil {
		// The check returned nil after its deadline; treat it as the timeout it was.
		err = fmt.Errorf("no result within %v: %w", m.timeout, late)
	}

	m.mu.Lock()
	r := m.last
	r.At = time.Now()
	if err == nil {
		r.Err = ""
		r.ConsecutiveFailures = 0
		r.ConsecutiveSuccesses++
	} else {
		r.Err = err.Error()
		r.ConsecutiveSuccesses = 0
		r.ConsecutiveFailures++
	}
	next := m.state
	switch {
	case r.ConsecutiveSuccesses >= m.successThreshold:
		next = healthy
	case r.ConsecutiveFailures >= m.failureThreshold:
		next = unhealthy
	}
	changed := next != m.state
	m.state = next
	if next != unknown {
		r.Healthy = next == healthy
	}
	m.last = r
	m.mu.Unlock()

	if changed && m.report != nil {
		m.report(r)
	}
}
