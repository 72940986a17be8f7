//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts cmd as the leader of a new process group, and makes the
// context's cancellation kill that whole group rather than only the leader: a shell
// script's children would otherwise outlive a timed-out check.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killProcessGroup(cmd)
		return nil
	}
}

// killProcessGroup kills what is left of cmd's process group. The group's ID is the
// leader's PID, which the kernel does not hand out again while the group has members.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.Process.Pid <= 0 {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
