package health

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"qnet.dev/qnet/manifest"
)

// scripted is a fake Check that returns outcomes in order (the last one repeats) and
// records when it was called.
type scripted struct {
	mu       sync.Mutex
	outcomes []error
	calls    []time.Time
}

func (s *scripted) Run(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	i := min(len(s.calls)-1, len(s.outcomes)-1)
	return s.outcomes[i]
}

func (s *scripted) callTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

// recorder collects reported results.
type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) report(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) all() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.results...)
}

var errDown = errors.New("down")

// startMonitor runs m in the bubble and returns a function that stops it and checks
// that Run returned.
func startMonitor(t *testing.T, m *Monitor) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	return func() {
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return after its context was canceled")
		}
	}
}

func TestMonitorReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		at := func(d time.Duration) time.Time { return start.Add(d) }
		check := &scripted{outcomes: []error{errDown, errDown, nil, nil, nil, errDown, errDown, nil}}
		var rec recorder
		m, err := NewMonitor(Readiness, &manifest.Probe{
			InitialDelay:     manifest.Duration(5 * time.Second),
			Interval:         manifest.Duration(time.Second),
			Timeout:          manifest.Duration(500 * time.Millisecond),
			FailureThreshold: 2,
			SuccessThreshold: 2,
		}, check, rec.report)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Last(); got.Healthy || got.Err != "" {
			t.Fatalf("readiness starts as %+v, want not ready", got)
		}
		stop := startMonitor(t, m)

		// Nothing runs during the initial delay. (Sleeps in a synctest bubble move its
		// fake clock; they do not wait in real time.)
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		if n := len(check.callTimes()); n != 0 {
			t.Fatalf("%d checks ran during the initial delay", n)
		}
		time.Sleep(6*time.Second + time.Nanosecond + 500*time.Millisecond) // to start+11.5s
		synctest.Wait()
		stop()

		wantCalls := []time.Time{at(5 * time.Second), at(6 * time.Second), at(7 * time.Second), at(8 * time.Second),
			at(9 * time.Second), at(10 * time.Second), at(11 * time.Second)}
		if got := check.callTimes(); !reflect.DeepEqual(got, wantCalls) {
			t.Fatalf("checks ran at %v, want %v", offsets(start, got), offsets(start, wantCalls))
		}
		want := []Result{
			{Healthy: false, Err: "down", At: at(6 * time.Second), ConsecutiveFailures: 2},
			{Healthy: true, At: at(8 * time.Second), ConsecutiveSuccesses: 2},
			{Healthy: false, Err: "down", At: at(11 * time.Second), ConsecutiveFailures: 2},
		}
		if got := rec.all(); !reflect.DeepEqual(got, want) {
			t.Fatalf("reports:\n got %+v\nwant %+v", got, want)
		}
		if got := m.Last(); !reflect.DeepEqual(got, want[2]) {
			t.Fatalf("Last = %+v, want %+v", got, want[2])
		}
	})
}

func TestMonitorLivenessDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		check := &scripted{outcomes: []error{nil, errDown, errDown, errDown, nil}}
		var rec recorder
		m, err := NewMonitor(Liveness, &manifest.Probe{}, check, rec.report)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Last().Healthy {
			t.Fatal("liveness must start alive")
		}
		stop := startMonitor(t, m)
		time.Sleep(45 * time.Second)
		synctest.Wait()
		stop()

		// The manifest defaults: no initial delay, every 10s, 3 failures, 1 success.
		want := []Result{
			{Healthy: true, At: start, ConsecutiveSuccesses: 1},
			{Healthy: false, Err: "down", At: start.Add(30 * time.Second), ConsecutiveFailures: 3},
			{Healthy: true, At: start.Add(40 * time.Second), ConsecutiveSuccesses: 1},
		}
		if got := rec.all(); !reflect.DeepEqual(got, want) {
			t.Fatalf("reports:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestMonitorLivenessFailingFromStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		check := &scripted{outcomes: []error{errDown}}
		var rec recorder
		m, err := NewMonitor(Liveness, &manifest.Probe{Interval: manifest.Duration(time.Second), FailureThreshold: 3}, check, rec.report)
		if err != nil {
			t.Fatal(err)
		}
		stop := startMonitor(t, m)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := rec.all(); len(got) != 0 {
			t.Fatalf("reported %+v before the failure threshold", got)
		}
		if got := m.Last(); !got.Healthy || got.ConsecutiveFailures != 2 || got.Err != "down" {
			t.Fatalf("Last = %+v, want still alive after 2 failures", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		if got := rec.all(); len(got) != 1 || got[0].Healthy || got[0].ConsecutiveFailures != 3 {
			t.Fatalf("reports = %+v, want one: dead after 3 failures", got)
		}
	})
}

func TestMonitorTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var deadlines []time.Time
		var mu sync.Mutex
		hang := CheckFunc(func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			mu.Lock()
			deadlines = append(deadlines, d)
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		})
		var rec recorder
		m, err := NewMonitor(Readiness, &manifest.Probe{
			Interval: manifest.Duration(5 * time.Second), Timeout: manifest.Duration(2 * time.Second), FailureThreshold: 1,
		}, hang, rec.report)
		if err != nil {
			t.Fatal(err)
		}
		stop := startMonitor(t, m)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		stop()
		mu.Lock()
		defer mu.Unlock()
		if want := []time.Time{start.Add(2 * time.Second), start.Add(7 * time.Second)}; !reflect.DeepEqual(deadlines, want) {
			t.Fatalf("check deadlines %v, want %v", offsets(start, deadlines), offsets(start, want))
		}
		got := rec.all()
		if len(got) != 1 || got[0].Healthy || !got[0].At.Equal(start.Add(2*time.Second)) ||
			!strings.Contains(got[0].Err, context.DeadlineExceeded.Error()) {
			t.Fatalf("reports = %+v, want one failure at +2s for the deadline", got)
		}
	})
}

func TestMonitorCheckIgnoringDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A check that answers "pass" only after its deadline passed counts as failed.
		late := CheckFunc(func(ctx context.Context) error {
			time.Sleep(3 * time.Second)
			return nil
		})
		var rec recorder
		m, err := NewMonitor(Readiness, &manifest.Probe{
			Interval: manifest.Duration(10 * time.Second), Timeout: manifest.Duration(time.Second), FailureThreshold: 1,
		}, late, rec.report)
		if err != nil {
			t.Fatal(err)
		}
		stop := startMonitor(t, m)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		stop()
		got := rec.all()
		if len(got) != 1 || got[0].Healthy || !strings.Contains(got[0].Err, "no result within 1s") {
			t.Fatalf("reports = %+v, want one failure for the late answer", got)
		}
	})
}

func TestMonitorOverrunDelaysNextAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var begins []time.Duration
		slow := CheckFunc(func(ctx context.Context) error {
			mu.Lock()
			begins = append(begins, time.Since(start))
			n := len(begins)
			mu.Unlock()
			if n == 1 {
				time.Sleep(2500 * time.Millisecond) // overruns two intervals, within its timeout
			}
			return nil
		})
		m, err := NewMonitor(Readiness, &manifest.Probe{
			Interval: manifest.Duration(time.Second), Timeout: manifest.Duration(10 * time.Second),
		}, slow, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := startMonitor(t, m)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		stop()
		mu.Lock()
		defer mu.Unlock()
		// Attempts never overlap: the second starts when the first ends, then the
		// schedule goes on.
		want := []time.Duration{0, 2500 * time.Millisecond, 3 * time.Second}
		if !reflect.DeepEqual(begins, want) {
			t.Fatalf("attempts began at %v, want %v", begins, want)
		}
	})
}

func TestMonitorStop(t *testing.T) {
	t.Run("during initial delay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			check := &scripted{outcomes: []error{nil}}
			m, err := NewMonitor(Readiness, &manifest.Probe{InitialDelay: manifest.Duration(time.Minute)}, check, nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := startMonitor(t, m)
			time.Sleep(time.Second)
			stop()
			if n := len(check.callTimes()); n != 0 {
				t.Fatalf("%d checks ran", n)
			}
		})
	})
	t.Run("during an attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hang := CheckFunc(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})
			var rec recorder
			m, err := NewMonitor(Readiness, &manifest.Probe{Timeout: manifest.Duration(time.Minute), FailureThreshold: 1}, hang, rec.report)
			if err != nil {
				t.Fatal(err)
			}
			before := m.Last()
			stop := startMonitor(t, m)
			time.Sleep(time.Second)
			stop()
			if got := rec.all(); len(got) != 0 {
				t.Fatalf("a canceled attempt was reported: %+v", got)
			}
			if got := m.Last(); got != before {
				t.Fatalf("a canceled attempt changed Last to %+v", got)
			}
		})
	})
}

func TestNewMonitorErrors(t *testing.T) {
	t.Parallel()
	ok := &scripted{outcomes: []error{nil}}
	tests := []struct {
		name  string
		kind  Kind
		probe *manifest.Probe
		check Check
		want  string
	}{
		{"bad kind", Kind(7), &manifest.Probe{}, ok, "kind Kind(7) is neither liveness nor readiness"},
		{"no probe", Liveness, nil, ok, "liveness: no probe given"},
		{"no check", Readiness, &manifest.Probe{}, nil, "readiness: no check given"},
		{"negative interval", Liveness, &manifest.Probe{Interval: manifest.Duration(-time.Second)}, ok, "interval -1s is negative"},
		{"negative delay", Liveness, &manifest.Probe{InitialDelay: manifest.Duration(-time.Second)}, ok, "initialDelay -1s is negative"},
		{"negative timeout", Liveness, &manifest.Probe{Timeout: manifest.Duration(-time.Second)}, ok, "timeout -1s is negative"},
		{"negative thresholds", Readiness, &manifest.Probe{FailureThreshold: -1, SuccessThreshold: -2}, ok,
			"failureThreshold -1 is negative; want 1 or more\nsuccessThreshold -2 is negative"},
	}
	for _, tc := range tests {
		_, err := NewMonitor(tc.kind, tc.probe, tc.check, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewMonitor error = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func offsets(start time.Time, ts []time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprint(t.Sub(start)))
	}
	return out
}

func TestNewMonitorTimeoutDefaultsWithinInterval(t *testing.T) {
	t.Parallel()
	ok := &scripted{outcomes: []error{nil}}
	for _, tc := range []struct{ interval, want time.Duration }{
		{200 * time.Millisecond, 200 * time.Millisecond},
		{5 * time.Second, time.Second},
		{0, time.Second},
	} {
		m, err := NewMonitor(Readiness, &manifest.Probe{Interval: manifest.Duration(tc.interval)}, ok, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.timeout != tc.want {
			t.Errorf("interval %v: default timeout %v, want %v", tc.interval, m.timeout, tc.want)
		}
	}
}
