//go:build !linux && !windows

package shim

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver/exec/internal/bundle"
)

// adoptOrphans is not available here (no portable child-subreaper): orphans of the
// workload go to init, and only those still in its process group are killed.
func adoptOrphans() error {
	return errors.New("child subreaper is Linux-only")
}

// waitAndSweep reaps the workload, then kills what it left in its process group. This
// system has no waitid with WNOWAIT, so the group is killed after the reap; its ID could
// in principle be reused in between, which the kernel makes very unlikely (PIDs are not
// reused at once).
func waitAndSweep(cmd *exec.Cmd, sweepGroup func()) error {
	err := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	sweepGroup()
	return err
}

// startInGroup reports that cloning into a cgroup is not available here.
func startInGroup(*cgroup.Group, func(*syscall.SysProcAttr) (*exec.Cmd, error)) (*exec.Cmd, bool, error) {
	return nil, false, nil
}

// workloadAttr puts the workload in a process group of its own.
func workloadAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// selfExe is the shim binary as the agent named it. The exec stage is only used with
// cgroups, so on these systems it does not run.
func selfExe(l bundle.Launch) string { return l.Self[0] }

// redirect makes fd to a copy of fd from.
func redirect(from, to int) error { return unix.Dup2(from, to) }
