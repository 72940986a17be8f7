package shim

import (
	"os"
	"os/exec"
	"testing"

	"qnet.dev/qnet/driver"
)

// TestMain lets the test binary run the shim's stages ("<binary> shim ..."), in case a
// test falls back to the exec stage.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "shim" {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"a", "b"}, {"-x"}} {
		if code := Main(args); code != 2 {
			t.Errorf("Main(%q) = %d, want 2 (usage)", args, code)
		}
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	run := func(script string) *os.ProcessState {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Run()
		return cmd.ProcessState
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	tests := []struct {
		ps           *os.ProcessState
		stopped, oom bool
		want         driver.ExitStatus
	}{
		{run("exit 4"), false, false, driver.ExitStatus{Code: 4, Reason: "exited with code 4"}},
		{run("kill -KILL $$"), false, false, driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}},
		{run("kill -TERM $$"), true, false, driver.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}},
		{run("kill -KILL $$"), true, true, driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true,
			Reason: "oom killed: memory limit of 1024 bytes reached (killed by SIGKILL)"}},
	}
	for _, tc := range tests {
		if got := exitStatus(tc.ps, tc.stopped, tc.oom, 1024); got != tc.want {
			t.Errorf("exitStatus(%v, stopped=%v, oom=%v) = %+v, want %+v", tc.ps, tc.stopped, tc.oom, got, tc.want)
		}
	}
}

func TestNoLimitsReport(t *testing.T) {
	t.Parallel()
	r := noLimits(driver.Spec{CPU: 100}, "cgroups exist only on Linux")
	if r.CPUEnforced || r.MemoryEnforced || r.Mechanism != "none" ||
		r.Reason != "CPU not limited: cgroups exist only on Linux; no memory limit requested" {
		t.Errorf("noLimits = %+v", r)
	}
}
