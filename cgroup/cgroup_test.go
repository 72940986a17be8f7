package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as a workload that joins a group and then allocates
// memory, for the OOM test.
func TestMain(m *testing.M) {
	if files := os.Getenv("QNET_CGROUP_TEST_JOIN"); files != "" {
		if err := JoinFiles(strings.Split(files, ":"), os.Getpid()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var keep [][]byte
		for i := 0; i < 200; i++ { // 200 MiB, every page touched
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println(len(keep))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const thisMachine = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	in := thisMachine + `50 23 0:40 /a\040b /mnt/with\040space rw shared:5 master:1 - ext4 /dev/x rw,errors=remount-ro
`
	ms, err := ParseMountInfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 7 {
		t.Fatalf("got %d mounts, want 7", len(ms))
	}
	if m := ms[1]; m.Point != "/sys/fs/cgroup/cpu" || m.FSType != "cgroup" || !hasOption(m.Options, "cpu") {
		t.Errorf("cpu mount = %+v", m)
	}
	if m := ms[6]; m.Point != "/mnt/with space" || m.Root != "/a b" || m.FSType != "ext4" {
		t.Errorf("escaped mount = %+v", m)
	}
	for _, bad := range []string{
		"1 2 3\n",
		"1 2 0:1 / /x rw no-separator ext4 src rw\n",
		`1 2 0:1 / /x\04 rw - ext4 src rw` + "\n",
		`1 2 0:1 / /x\999 rw - ext4 src rw` + "\n",
	} {
		if _, err := ParseMountInfo(strings.NewReader(thisMachine + bad)); err == nil || !strings.Contains(err.Error(), "line 7") {
			t.Errorf("ParseMountInfo(%q) error = %v, want one naming line 7", bad, err)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add(thisMachine)
	f.Add(`50 23 0:40 /a\040b /mnt/with\040space rw shared:5 - ext4 /dev/x rw` + "\n")
	f.Add("1 2 0:1 / /x rw - \n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountInfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" {
				t.Fatalf("mount without type accepted: %+v", m)
			}
		}
	})
}

func FuzzParseKeyed(f *testing.F) {
	f.Add([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"))
	f.Add([]byte("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"))
	f.Add([]byte("x\n \n1 2 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = parseKeyed(data)
	})
}

func TestParseKeyed(t *testing.T) {
	t.Parallel()
	kv := parseKeyed([]byte("oom_kill_disable 0\nunder_oom 1\noom_kill 3\ngarbage\nbad x\n"))
	if kv["oom_kill"] != 3 || kv["under_oom"] != 1 || len(kv) != 3 {
		t.Errorf("parseKeyed = %v", kv)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"/sys/fs/cgroup/unified/cgroup.controllers": "",
		"/v2/cgroup.controllers":                    "cpuset cpu io memory pids",
		"/v2cpu/cgroup.controllers":                 "cpu pids",
	}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	ok := func(string) error { return nil }
	denied := func(string) error { return syscall.EACCES }
	mounts := func(s string) []Mount {
		ms, err := ParseMountInfo(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	tests := []struct {
		name     string
		mounts   string
		writable func(string) error
		want     Hierarchy
		reason   string // substring of Reason
	}{
		{"hybrid with empty v2 uses v1", thisMachine, ok,
			Hierarchy{Version: V1, CPU: "/sys/fs/cgroup/cpu", Memory: "/sys/fs/cgroup/memory", Parent: "qnet"}, ""},
		{"unified with controllers", "1 0 0:1 / /v2 rw - cgroup2 cgroup2 rw\n", ok,
			Hierarchy{Version: V2, CPU: "/v2", Memory: "/v2", Parent: "qnet"}, ""},
		{"v2 preferred when both carry all", "1 0 0:1 / /c rw - cgroup cgroup rw,cpu\n2 0 0:2 / /m rw - cgroup cgroup rw,memory\n3 0 0:3 / /v2 rw - cgroup2 cgroup2 rw\n", ok,
			Hierarchy{Version: V2, CPU: "/v2", Memory: "/v2", Parent: "qnet"}, ""},
		{"unified without controllers", "1 0 0:1 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", ok,
			Hierarchy{Version: None, Parent: "qnet"}, "does not delegate the cpu or memory controller"},
		{"v2 with cpu only", "1 0 0:1 / /v2cpu rw - cgroup2 cgroup2 rw\n", ok,
			Hierarchy{Version: V2, CPU: "/v2cpu", Parent: "qnet"}, "does not delegate the memory controller"},
		{"v1 memory only", "1 0 0:1 / /m rw - cgroup cgroup rw,memory\n", ok,
			Hierarchy{Version: V1, Memory: "/m", Parent: "qnet"}, "no cgroup v1 hierarchy has the cpu controller"},
		{"v1 combined cpu,cpuacct", "1 0 0:1 / /c rw - cgroup cgroup rw,cpu,cpuacct\n2 0 0:2 / /m rw - cgroup cgroup rw,memory\n", ok,
			Hierarchy{Version: V1, CPU: "/c", Memory: "/m", Parent: "qnet"}, ""},
		{"nothing mounted", "1 0 0:1 / / rw - ext4 /dev/vda rw\n", ok,
			Hierarchy{Version: None, Parent: "qnet"}, "no cgroup filesystem is mounted"},
		{"v1 not writable", thisMachine, denied,
			Hierarchy{Version: None, Parent: "qnet"}, "not writable: permission denied"},
		{"v2 not writable", "1 0 0:1 / /v2 rw - cgroup2 cgroup2 rw\n", denied,
			Hierarchy{Version: None, Parent: "qnet"}, "not writable: permission denied"},
	}
	for _, tc := range tests {
		got := detect(mounts(tc.mounts), "qnet", read, tc.writable)
		reason := got.Reason
		got.Reason = ""
		if got != tc.want {
			t.Errorf("%s: detect = %+v, want %+v", tc.name, got, tc.want)
		}
		if tc.reason == "" && reason != "" {
			t.Errorf("%s: unexpected reason %q", tc.name, reason)
		}
		if !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: reason %q does not contain %q", tc.name, reason, tc.reason)
		}
	}
	if h := detect(mounts(thisMachine), "../etc", read, ok); h.Version != None || !strings.Contains(h.Reason, "cgroup parent") {
		t.Errorf("bad parent accepted: %+v", h)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"qnet", "system.slice/qnet.service/depots"} {
		if err := ValidateParent(p); err != nil {
			t.Errorf("ValidateParent(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "/qnet", "a/../b", "..", "a//b", "a/"} {
		if err := ValidateParent(p); err == nil {
			t.Errorf("ValidateParent(%q) accepted", p)
		}
	}
	for _, n := range []string{"", ".", "..", "a/b"} {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) accepted", n)
		}
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ mc, want int64 }{{1000, 100000}, {250, 25000}, {2500, 250000}, {1, 1000}} {
		if got := quotaFor(tc.mc); got != tc.want {
			t.Errorf("quotaFor(%d) = %d, want %d", tc.mc, got, tc.want)
		}
	}
}

// TestCreateV2Files checks what Create writes on a v2 tree, laid out in a temporary
// directory (this machine has no v2 controllers to test against).
func TestCreateV2Files(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	grp := filepath.Join(root, "qnet", "web-1")
	os.MkdirAll(grp, 0o755)
	for _, f := range []string{"cgroup.subtree_control", "qnet/cgroup.subtree_control", "qnet/web-1/cpu.max",
		"qnet/web-1/memory.max", "qnet/web-1/memory.swap.max", "qnet/web-1/memory.oom.group", "qnet/web-1/cgroup.procs"} {
		os.WriteFile(filepath.Join(root, f), nil, 0o644)
	}
	h := Hierarchy{Version: V2, CPU: root, Memory: root, Parent: "qnet"}
	g, rep, err := h.Create("web-1", Limits{CPU: 250, Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.CPUEnforced || !rep.MemoryEnforced || rep.Mechanism != "cgroup v2" || rep.Reason != "" {
		t.Errorf("report = %+v", rep)
	}
	want := map[string]string{
		"cgroup.subtree_control":      "+cpu +memory",
		"qnet/cgroup.subtree_control": "+cpu +memory",
		"qnet/web-1/cpu.max":          "25000 100000",
		"qnet/web-1/memory.max":       "67108864",
		"qnet/web-1/memory.swap.max":  "0",
		"qnet/web-1/memory.oom.group": "1",
	}
	for f, w := range want {
		got, _ := os.ReadFile(filepath.Join(root, f))
		if string(got) != w {
			t.Errorf("%s = %q, want %q", f, got, w)
		}
	}
	if d := g.Dirs(); len(d) != 1 || d[0] != grp {
		t.Errorf("Dirs = %v, want [%s]", d, grp)
	}
}

func TestCreateUnavailable(t *testing.T) {
	t.Parallel()
	h := Hierarchy{Version: None, Parent: "qnet", Reason: "cgroups exist only on Linux"}
	_, rep, err := h.Create("x", Limits{CPU: 100})
	if !errors.Is(err, ErrUnavailable) || rep.Mechanism != "none" || !strings.Contains(rep.Reason, "only on Linux") {
		t.Errorf("Create on None = %+v, %v", rep, err)
	}
}

// realHierarchy returns this node's hierarchy under a parent of the test's own, or skips
// when cgroups cannot be used here.
func realHierarchy(t *testing.T) Hierarchy {
	t.Helper()
	parent := fmt.Sprintf("qnet-test-%d-%s", os.Getpid(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	h := Detect(parent)
	if h.Version == None {
		t.Skipf("cgroups unavailable on this node: %s", h.Reason)
	}
	t.Cleanup(func() {
		for _, d := range []string{h.CPU, h.Memory} {
			if d != "" {
				os.Remove(filepath.Join(d, parent))
			}
		}
	})
	return h
}

// cleanupGroup kills and removes g with a context of its own: the test's context is
// already cancelled when cleanups run.
func cleanupGroup(g *Group) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.Kill(ctx)
	g.Remove(ctx)
}

func readTrim(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestRealGroupLifecycle(t *testing.T) {
	t.Parallel()
	h := realHierarchy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, rep, err := h.Create("life", Limits{CPU: 250, Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupGroup(g) })
	if !rep.CPUEnforced || !rep.MemoryEnforced || rep.Mechanism != h.Version.String() {
		t.Fatalf("report = %+v", rep)
	}
	switch h.Version {
	case V1:
		if got := readTrim(t, filepath.Join(h.CPU, h.Parent, "life", "cpu.cfs_quota_us")); got != "25000" {
			t.Errorf("cpu.cfs_quota_us = %s, want 25000", got)
		}
		if got := readTrim(t, filepath.Join(h.Memory, h.Parent, "life", "memory.limit_in_bytes")); got != "67108864" {
			t.Errorf("memory.limit_in_bytes = %s, want 67108864", got)
		}
	case V2:
		if got := readTrim(t, filepath.Join(h.CPU, h.Parent, "life", "cpu.max")); got != "25000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
		if got := readTrim(t, filepath.Join(h.Memory, h.Parent, "life", "memory.max")); got != "67108864" {
			t.Errorf("memory.max = %s", got)
		}
	}
	// A process and a child it forks are both in the group; Kill ends both.
	// The shell waits for a line on stdin before it forks, so the child is forked after
	// the shell joined the group.
	cmd := exec.Command("/bin/sh", "-c", "read x; sleep 300 & sleep 300")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	waited := make(chan error, 1)
	if err := g.Join(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	go func() { waited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := g.PIDs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= 2 { // the shell and its background sleep (forked after joining)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group has pids %v, want the shell and its child", pids)
		}
		time.Sleep(2 * time.Millisecond) // poll step of a deadline wait
	}
	if err := g.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if pids, _ := g.PIDs(); len(pids) != 0 {
		t.Errorf("after Kill the group still has %v", pids)
	}
	<-waited
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Remove: %v", d, err)
		}
	}
}

func TestRealOOMKill(t *testing.T) {
	t.Parallel()
	h := realHierarchy(t)
	if h.Memory == "" {
		t.Skipf("no memory controller: %s", h.Reason)
	}
	g, rep, err := h.Create("oom", Limits{Memory: 32 << 20})
	if err != nil || !rep.MemoryEnforced {
		t.Fatalf("Create = %+v, %v", rep, err)
	}
	t.Cleanup(func() { cleanupGroup(g) })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QNET_CGROUP_TEST_JOIN="+strings.Join(g.ProcsFiles(), ":"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("allocating 200 MiB under a 32 MiB limit: err = %v, output %q; want killed", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("allocator ended with %v (output %q), want SIGKILL from the OOM killer", ws, out)
	}
	n, err := g.OOMKills()
	if err != nil || n < 1 {
		t.Errorf("OOMKills = %d, %v; want >= 1", n, err)
	}
}

func TestRealRename(t *testing.T) {
	t.Parallel()
	h := realHierarchy(t)
	if h.Version != V1 {
		t.Skip("only cgroup v1 renames groups")
	}
	warm, err := h.Make(".warm-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupGroup(warm) })
	sleeper := func() *exec.Cmd {
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Skipf("no sleep command: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	cmd := sleeper()
	if err := warm.Join(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A stale, empty group of the target name is replaced.
	if _, err := h.Make("depot"); err != nil {
		t.Fatal(err)
	}
	g, err := warm.Rename(h, "depot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupGroup(g) })
	if g.Name() != "depot" {
		t.Errorf("renamed group is called %q", g.Name())
	}
	pids, err := g.PIDs()
	if err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("renamed group holds %v (%v), want the process that was in the old one, %d", pids, err, cmd.Process.Pid)
	}
	self, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(self), "/"+h.Parent+"/depot\n") {
		t.Errorf("/proc/PID/cgroup after the rename:\n%s", self)
	}
	for _, d := range warm.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("old name %s still exists: %v", d, err)
		}
	}
	if rep := g.Limit(h, Limits{CPU: 250}); !rep.CPUEnforced {
		t.Errorf("limit on the renamed group: %+v", rep)
	}

	// A group with processes is never replaced: the rename fails and changes nothing.
	other, err := h.Make(".warm-2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupGroup(other) })
	if _, err := other.Rename(h, "depot"); err == nil {
		t.Fatal("rename onto a group with a process succeeded")
	}
	for _, d := range other.Dirs() {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("after a refused rename %s: %v", d, err)
		}
	}
	if pids, _ := g.PIDs(); len(pids) != 1 {
		t.Errorf("after a refused rename onto it the group holds %v", pids)
	}
	if _, err := other.Rename(h, "a/b"); err == nil {
		t.Error("rename to a path with '/' succeeded")
	}
}

// TestRealJoinThread: on v1 one thread moves into a group, the rest of the process
// stays, and a process forked from that thread starts in the group.
func TestRealJoinThread(t *testing.T) {
	t.Parallel()
	h := realHierarchy(t)
	if h.Version != V1 {
		t.Skip("thread moves through tasks files are for cgroup v1")
	}
	g, err := h.Make("thread")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupGroup(g) })
	home, err := h.ProcsFilesOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	inGroup := func(file string) bool {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(data), "/"+h.Parent+"/thread\n")
	}
	done := make(chan *exec.Cmd, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := JoinThread(g.ThreadFiles()); err != nil {
			t.Error(err)
			done <- nil
			return
		}
		if !inGroup("/proc/thread-self/cgroup") {
			t.Error("the thread is not in the group after JoinThread")
		}
		// Only this thread: the group's tasks are its thread ID alone (the goroutine
		// may run on the main thread, so /proc/self says nothing about the others).
		tasks, err := os.ReadFile(g.ThreadFiles()[0])
		if err != nil {
			t.Error(err)
		} else if got, want := strings.TrimSpace(string(tasks)), strconv.Itoa(syscall.Gettid()); got != want {
			t.Errorf("the group's tasks are %q, want only the calling thread %s", got, want)
		}
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Error(err)
		}
		if err := JoinThread(ThreadFilesOf(home)); err != nil {
			t.Error(err)
		}
		if inGroup("/proc/thread-self/cgroup") {
			t.Error("the thread is still in the group after going home")
		}
		done <- cmd
	}()
	cmd := <-done
	if cmd == nil || cmd.Process == nil {
		t.FailNow()
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if pids, err := g.PIDs(); err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("group holds %v (%v), want only the child forked from the thread, %d", pids, err, cmd.Process.Pid)
	}
	if err := JoinThread([]string{filepath.Join(t.TempDir(), "tasks")}); err == nil {
		t.Error("JoinThread on a missing tasks file succeeded")
	}
}
