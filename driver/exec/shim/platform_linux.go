//go:build linux

package shim

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver/exec/internal/bundle"
	"qnet.dev/qnet/driver/internal/proc"
)

// adoptOrphans makes the shim a child subreaper: processes the workload leaves behind
// when their parent dies are re-parented to the shim, which reaps them (no zombies pile
// up) and kills them when the depot ends (no orphans outlive it).
func adoptOrphans() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// waitAndSweep waits for the workload to exit, reaping adopted orphans meanwhile, then
// kills what the depot left behind and reaps everything. It peeks at each exited child
// without reaping it (waitid with WNOWAIT): while the workload is a zombie its PID, which
// is its process group's ID, cannot be reused, so the group kill cannot hit a stranger.
func waitAndSweep(cmd *exec.Cmd, sweepGroup func()) error {
	pid := cmd.Process.Pid
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			break // ECHILD cannot happen while the workload is unreaped; do not spin
		}
		child := siginfoPID(&info)
		if child == pid || child <= 0 {
			break
		}
		var ws unix.WaitStatus
		unix.Wait4(child, &ws, unix.WNOHANG, nil) // an orphan of the workload
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	sweepGroup()
	self := os.Getpid()
	for _, c := range proc.Children(self) {
		if c != pid {
			syscall.Kill(c, syscall.SIGKILL) // adopted orphans that left the group
		}
	}
	err := cmd.Wait()
	// Reap the adopted orphans as they die; kill any that were adopted meanwhile.
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			break
		}
		if got > 0 || errors.Is(err, unix.EINTR) {
			continue
		}
		for _, c := range proc.Children(self) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
	return err
}

// siginfoPID reads si_pid from a siginfo_t filled by waitid. x/sys/unix keeps the union
// opaque; si_pid is its first field, after three ints and, on 64-bit systems, padding
// to 8-byte alignment.
func siginfoPID(info *unix.Siginfo) int {
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}

// startInGroup starts the workload with start, cloned straight into group's directory
// (clone3 with CLONE_INTO_CGROUP): no migration, which on a busy kernel can wait for an
// RCU grace period, and no exec stage. ok is false when the kernel cannot do it (before
// 5.7), so the caller falls back to the exec stage.
func startInGroup(group *cgroup.Group, start func(*syscall.SysProcAttr) (*exec.Cmd, error)) (cmd *exec.Cmd, ok bool, err error) {
	fd, err := unix.Open(group.Dirs()[0], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, nil
	}
	defer unix.Close(fd)
	attr := workloadAttr()
	attr.UseCgroupFD, attr.CgroupFD = true, fd
	cmd, err = start(attr)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.E2BIG) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil, false, nil // no clone3 or no CLONE_INTO_CGROUP (E2BIG: the exec stage will tell)
	}
	return cmd, true, err
}

// workloadAttr puts the workload in a process group of its own and has the kernel kill
// it if the shim dies (the parent-death signal survives exec), so a workload never
// outlives its supervisor unobserved.
func workloadAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// selfExe is the binary to run the exec stage from: the very file this shim runs, even
// if the qnet binary on disk was replaced since.
func selfExe(bundle.Launch) string { return "/proc/self/exe" }

// redirect makes fd to a copy of fd from.
func redirect(from, to int) error { return unix.Dup3(from, to, 0) }
