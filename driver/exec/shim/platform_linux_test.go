package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/internal/bundle"
)

// TestStartInGroupV2 starts a workload cloned straight into a cgroup v2 group. It needs
// no controllers, so the cgroup2 mount of a hybrid node does.
func TestStartInGroupV2(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sleep"); err != nil {
		t.Skip("no /bin/sleep")
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	mounts, err := cgroup.ParseMountInfo(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	mnt := ""
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			mnt = m.Point
			break
		}
	}
	if mnt == "" {
		t.Skip("no cgroup2 mount on this node")
	}
	parent := fmt.Sprintf("qnet-shimtest-%d", os.Getpid())
	grp := filepath.Join(mnt, parent, "g")
	if err := os.MkdirAll(grp, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 group at %s: %v", grp, err)
	}
	defer os.Remove(filepath.Join(mnt, parent))
	defer os.Remove(grp)

	h := cgroup.Hierarchy{Version: cgroup.V2, CPU: mnt, Parent: parent}
	g, err := h.Open("g")
	if err != nil {
		t.Fatal(err)
	}
	l := bundle.Launch{
		Spec: driver.Spec{ID: "g", Command: "sleep", Args: []string{"100"}},
		Path: "/bin/sleep", Cgroup: h, Self: []string{os.Args[0], "shim"},
	}
	out, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer out.Close()
	cmd, err := startWorkload(l, t.TempDir(), g, out, out)
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	if cmd.Path != "/bin/sleep" {
		t.Errorf("started %s: fell back to the exec stage instead of cloning into the group", cmd.Path)
	}
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if !strings.Contains(string(data), "0::/"+parent+"/g\n") {
		t.Errorf("/proc/%d/cgroup = %q, want the v2 group %s", pid, data, parent+"/g")
	}
	if pgid, _ := syscall.Getpgid(pid); pgid != pid {
		t.Errorf("workload in process group %d, want its own (%d)", pgid, pid)
	}
}
