// Package drivertest holds what the tests of the drivers share: making a driver for a
// test and cleaning up after it, starting, waiting for and stopping depots with
// deadlines, the checks of the Recover contract every driver keeps, and the start
// benchmark's loop.
package drivertest

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/driver"
)

// NoRaceExitSleep, in the environment of a race-enabled test binary playing a shim or a
// workload, stops it from sleeping a second at exit, the race detector's default.
const NoRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// Timeout bounds each wait of a test for a depot: long enough for a loaded machine,
// short enough to fail a hung test before the test binary's own timeout.
const Timeout = 20 * time.Second

// Driver is a driver that a test opens and closes.
type Driver interface {
	driver.Driver
	Close() error
}

// Open returns the driver newDriver makes of cfg once each of edit has changed it, and
// fails the test when it cannot. When the test ends, every depot the driver tracks (as
// tracked lists them) is killed and removed and the driver closed, so that no depot
// outlives its test.
func Open[C any, D Driver, H driver.Handle](t testing.TB, newDriver func(C) (D, error), cfg C, edit []func(*C), tracked func(D) []H) D {
	t.Helper()
	for _, e := range edit {
		e(&cfg)
	}
	d, err := newDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		for _, h := range tracked(d) {
			h.Stop(ctx, 0)
			d.Remove(h.ID())
		}
		d.Close()
	})
	return d
}

// Start starts s on d and fails the test when it cannot.
func Start(t testing.TB, d driver.Driver, s driver.Spec) driver.Handle {
	t.Helper()
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start(%s): %v", s.ID, err)
	}
	return h
}

// Wait waits for the depot's end and fails the test when it does not come in time.
func Wait(t testing.TB, h driver.Handle) driver.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	st, err := h.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait(%s): %v", h.ID(), err)
	}
	return st
}

// Stop stops the depot with grace and fails the test when it does not end in time.
func Stop(t testing.TB, h driver.Handle, grace time.Duration) driver.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	st, err := h.Stop(ctx, grace)
	if err != nil {
		t.Fatalf("Stop(%s): %v", h.ID(), err)
	}
	return st
}

// WaitFor polls cond until it holds, and fails the test when it does not within 15s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // poll step of a deadline wait
	}
}

// Recover runs d.Recover as a restarted agent does and returns the depots it found by
// ID. It fails the test when Recover fails or does not find want depots, each once, and
// checks that a second Recover returns the very same handles.
func Recover(t testing.TB, d driver.Driver, want int) map[string]driver.Handle {
	t.Helper()
	hs, err := d.Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	byID := map[string]driver.Handle{}
	for _, h := range hs {
		byID[h.ID()] = h
	}
	if len(byID) != want || len(hs) != want {
		t.Fatalf("Recover found %d depots in %d handles, want %d", len(byID), len(hs), want)
	}
	again, err := d.Recover(context.Background())
	if err != nil || len(again) != len(hs) {
		t.Errorf("second Recover found %d depots (%v), want %d", len(again), err, len(hs))
	}
	for _, h := range again {
		if h != byID[h.ID()] {
			t.Errorf("second Recover made a new handle for %s", h.ID())
		}
	}
	return byID
}

// CheckRecover checks what d, the driver of a restarted agent, recovers of two depots
// that a driver of the agent before started on the same runtime directory: running,
// which is re-adopted (see CheckReadopted) and not started again (it printed marker to
// its standard output once only), and ended, which ended with code before the restart.
// It returns running's recovered handle.
func CheckRecover(t testing.TB, d driver.Driver, running driver.Handle, marker string, ended driver.Handle, code int) driver.Handle {
	t.Helper()
	byID := Recover(t, d, 2)
	found := byID[running.ID()]
	CheckReadopted(t, running, found)
	stdout, _ := d.Logs(running.ID())
	if out, err := os.ReadFile(stdout); err != nil || strings.Count(string(out), marker) != 1 {
		t.Fatalf("depot %s printed %q %d times (%v): started again by the restart?", running.ID(), marker, strings.Count(string(out), marker), err)
	}
	if st := Wait(t, byID[ended.ID()]); st.Code != code {
		t.Errorf("depot that ended before the restart: %+v, want code %d", st, code)
	}
	return found
}

// CheckStopReadopted stops found, a depot a restarted agent re-adopted, with a grace
// its workload ends within, and checks that it ends as asked (by SIGTERM) and that old,
// its handle in the driver of the agent before, sees the very same end.
func CheckStopReadopted(t testing.TB, old, found driver.Handle) driver.ExitStatus {
	t.Helper()
	st := Stop(t, found, 5*time.Second)
	if st.Signal != "SIGTERM" || !strings.HasPrefix(st.Reason, "stopped") {
		t.Errorf("Stop of re-adopted depot = %+v", st)
	}
	if st1 := Wait(t, old); st1 != st {
		t.Errorf("old driver saw %+v, new one %+v", st1, st)
	}
	return st
}

// CheckReadopted checks that found, the handle a restarted agent's Recover returned for
// the depot that old was started as, is the same depot still running: the same process,
// start time, command, Meta and limits, and a spec without the environment (which is
// never stored).
func CheckReadopted(t testing.TB, old, found driver.Handle) {
	t.Helper()
	if found == nil {
		t.Fatalf("Recover did not find depot %s", old.ID())
	}
	if found.PID() != old.PID() || !found.StartedAt().Equal(old.StartedAt()) || found.Spec().Command != old.Spec().Command || found.Spec().Env != nil {
		t.Fatalf("re-adopted depot: pid %d (want %d), started %v (want %v), spec %+v", found.PID(), old.PID(), found.StartedAt(), old.StartedAt(), found.Spec())
	}
	if got, want := found.Spec().Meta, old.Spec().Meta; !maps.Equal(got, want) {
		t.Errorf("recovered Meta = %v, want what Start was given: %v", got, want)
	}
	if found.Limits() != old.Limits() {
		t.Errorf("limits %+v, want %+v", found.Limits(), old.Limits())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := found.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running re-adopted depot = %v", err)
	}
}

// CheckRecoveredLost checks that d, the driver of an agent that was down when the
// supervisor of depot id died (so that nothing recorded how the depot ended), recovers
// the depot as lost, and can remove it.
func CheckRecoveredLost(t testing.TB, d driver.Driver, id string) {
	t.Helper()
	hs, err := d.Recover(context.Background())
	if err != nil || len(hs) != 1 || hs[0].ID() != id {
		t.Fatalf("Recover = %v, %v; want depot %s", hs, err, id)
	}
	if st := Wait(t, hs[0]); !st.Lost() {
		t.Errorf("recovered depot whose supervisor died: %+v, want lost", st)
	}
	if err := d.Remove(id); err != nil {
		t.Errorf("Remove of a lost depot: %v", err)
	}
}

// BenchStarts times b.N starts of the depots spec gives on d (the i-th start gets
// spec(i)), from Start's call to its return, as the agent sees it; each depot is stopped
// and removed outside the timing. It reports the median and 90th percentile besides the
// mean.
func BenchStarts(b *testing.B, d driver.Driver, spec func(i int) driver.Spec) {
	ctx := context.Background()
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := spec(i)
		t0 := time.Now()
		h, err := d.Start(ctx, s)
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := h.Stop(ctx, 0); err != nil {
			b.Fatal(err)
		}
		if err := d.Remove(s.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	ReportPercentiles(b, took)
}

// ReportPercentiles reports the median and 90th percentile of took, in milliseconds.
func ReportPercentiles(b *testing.B, took []time.Duration) {
	took = slices.Clone(took)
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "ms-p90")
}
