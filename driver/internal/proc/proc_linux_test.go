package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestPidfdWait checks that Linux waits through a pidfd (not the polling fallback), and
// that cancelling ctx ends the wait.
func TestPidfdWait(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QNET_PROC_TEST_BLOCK=1", "GORACE=atexit_sleep_ms=0")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	start, _ := StartTime(cmd.Process.Pid)

	ctx, cancel := context.WithCancel(context.Background())
	type res struct {
		done bool
		err  error
	}
	got := make(chan res, 1)
	go func() {
		d, err := waitExitFast(ctx, cmd.Process.Pid, start)
		got <- res{d, err}
	}()
	cancel()
	if r := <-got; !r.done || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled pidfd wait = %+v, want done with context.Canceled", r)
	}

	go func() {
		d, err := waitExitFast(context.Background(), cmd.Process.Pid, start)
		got <- res{d, err}
	}()
	stdin.Close()
	if r := <-got; !r.done || r.err != nil {
		t.Fatalf("pidfd wait = %+v, want done (pidfds unavailable on this kernel?)", r)
	}
}

func TestChildren(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QNET_PROC_TEST_BLOCK=1", "GORACE=atexit_sleep_ms=0")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, pid := range Children(os.Getpid()) {
		found = found || pid == cmd.Process.Pid
	}
	stdin.Close()
	cmd.Wait()
	if !found {
		t.Errorf("Children(self) does not list child %d", cmd.Process.Pid)
	}
}
