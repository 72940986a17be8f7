package exit

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"qnet.dev/qnet/driver"
)

func TestWording(t *testing.T) {
	t.Parallel()
	type st = driver.ExitStatus
	for _, tc := range []struct {
		name      string
		got, want st
	}{
		{"code", Code(3), st{Code: 3, Reason: "exited with code 3"}},
		{"signal", Signaled(syscall.SIGKILL), st{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}},
		// None of Linux, Darwin or FreeBSD names signal 60.
		{"unnamed signal", Signaled(syscall.Signal(60)), st{Code: 188, Signal: "signal 60", Reason: "killed by signal 60"}},
		{"stopped", Cause(Signaled(syscall.SIGTERM), false, 0, true), st{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}},
		{"oom in its limit", Cause(Signaled(syscall.SIGKILL), true, 1<<20, true),
			st{Code: 137, Signal: "SIGKILL", OOMKilled: true, Reason: "oom killed: memory limit of 1048576 bytes reached (killed by SIGKILL)"}},
		{"oom of the node", Cause(Code(1), true, 0, false), st{Code: 1, OOMKilled: true, Reason: "oom killed: the node ran out of memory (exited with code 1)"}},
		{"nothing to add", Cause(Code(0), false, 64, false), st{Reason: "exited with code 0"}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLatchFirstSetWins(t *testing.T) {
	t.Parallel()
	var l Latch // the zero Latch is ready
	if l.Exited() {
		t.Fatal("Exited before Set")
	}
	if _, ok := l.Status(); ok {
		t.Fatal("Status before Set")
	}
	var wg sync.WaitGroup
	got := make([]driver.ExitStatus, 4)
	for i := range got {
		wg.Go(func() {
			st, err := l.Wait(context.Background(), "web-1")
			if err != nil {
				t.Error(err)
			}
			got[i] = st
		})
	}
	first := Code(7)
	l.Set(first)
	l.Set(Code(9)) // too late
	wg.Wait()
	for i, st := range got {
		if st != first {
			t.Errorf("waiter %d saw %+v, want %+v", i, st, first)
		}
	}
	if st, ok := l.Status(); !ok || st != first || !l.Exited() {
		t.Errorf("Status = %+v, %v; want %+v", st, ok, first)
	}
	select {
	case <-l.Done():
	default:
		t.Error("Done not closed after Set")
	}
}

func TestLatchWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	var l Latch
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx, "web-1"); !errors.Is(err, context.Canceled) || err.Error() != `wait for depot "web-1": context canceled` {
		t.Errorf("Wait with an ended context = %v", err)
	}
}

func TestLatchWaitGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var l Latch
		// Grace passes with no exit: time to kill.
		t0 := time.Now()
		if _, ended, err := l.WaitGrace(context.Background(), 5*time.Second); ended || err != nil || time.Since(t0) != 5*time.Second {
			t.Errorf("WaitGrace with no exit = %v, %v after %v; want false, nil after 5s", ended, err, time.Since(t0))
		}
		// The exit comes within the grace.
		go func() {
			time.Sleep(time.Second)
			l.Set(Code(0))
		}()
		t0 = time.Now()
		if st, ended, err := l.WaitGrace(context.Background(), 5*time.Second); !ended || err != nil || st.Code != 0 || time.Since(t0) != time.Second {
			t.Errorf("WaitGrace = %+v, %v, %v after %v; want the exit after 1s", st, ended, err, time.Since(t0))
		}
	})
	var l Latch
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ended, err := l.WaitGrace(ctx, time.Hour); ended || !errors.Is(err, context.Canceled) {
		t.Errorf("WaitGrace with an ended context = %v, %v", ended, err)
	}
}
