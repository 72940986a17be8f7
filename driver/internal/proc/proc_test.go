package proc

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil || st.state != 'S' || st.start != 987654 || st.ppid != 1 {
		t.Errorf("parseStat = %+v, %v; want S, ppid 1, start 987654", st, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S " + "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 notanumber"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 1\n"))
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseStat(data)
	})
}

func TestAliveAndWaitExit(t *testing.T) {
	t.Parallel()
	self, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), self) {
		t.Fatal("this process is not alive")
	}
	if runtime.GOOS == "linux" && Alive(os.Getpid(), self+1) {
		t.Error("a different start time must not match")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QNET_PROC_TEST_BLOCK=1", "GORACE=atexit_sleep_ms=0")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	if err := WaitExit(ctx, cmd.Process.Pid, start); err != context.DeadlineExceeded {
		t.Errorf("WaitExit on a running process = %v, want deadline exceeded", err)
	}
	cancel()
	waited := make(chan error, 1)
	go func() {
		waited <- WaitExit(context.Background(), cmd.Process.Pid, start)
	}()
	if err := SignalGroup(cmd.Process.Pid, start+1, syscall.SIGKILL); runtime.GOOS == "linux" && err != ErrNotRunning {
		t.Errorf("SignalGroup with a wrong start time = %v, want ErrNotRunning", err)
	}
	stdin.Close() // the child exits when stdin closes
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if Alive(cmd.Process.Pid, start) {
		t.Error("reaped process reported alive")
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("QNET_PROC_TEST_BLOCK") == "1" {
		b := make([]byte, 1)
		os.Stdin.Read(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
