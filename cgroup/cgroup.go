// Package cgroup puts a depot's processes in a control group of their own, so the node
// can bound their CPU and memory, learn when the kernel's OOM killer struck, and kill
// every process of the depot at once. It speaks both cgroup v2 (the unified hierarchy,
// with the cpu and memory controllers delegated) and v1 (one hierarchy per controller);
// Detect finds which one the node offers. When neither can be used (not Linux, not
// mounted, not root, read-only) Detect says so in plain words in Hierarchy.Reason, and
// callers report that limits are not enforced; nothing fails silently.
//
// Groups live under a parent (default "qnet") at the top of each hierarchy:
// /sys/fs/cgroup/memory/qnet/<depot> on v1, /sys/fs/cgroup/qnet/<depot> on v2.
package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Version says which cgroup interface a Hierarchy uses.
type Version int

// The cgroup interfaces.
const (
	None Version = iota // no usable cgroups: limits cannot be enforced
	V1                  // one hierarchy per controller (cpu, memory)
	V2                  // the unified hierarchy
)

// String returns the mechanism name used in limit reports: "none", "cgroup v1" or
// "cgroup v2".
func (v Version) String() string {
	switch v {
	case V1:
		return "cgroup v1"
	case V2:
		return "cgroup v2"
	default:
		return "none"
	}
}

// DefaultParent is the group under which depot groups are made.
const DefaultParent = "qnet"

// Hierarchy says where the cpu and memory controllers live on this node. It is plain
// data (JSON-encodable) so that the agent can detect once and hand the result to the
// depot supervisors it starts.
type Hierarchy struct {
	Version Version `json:"version"`
	// CPU and Memory are the directories at the top of the hierarchy that carries each
	// controller ("" when the controller cannot be used). On v2 both are the unified
	// mount point.
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	// Parent is the path, relative to those directories, under which groups are made.
	Parent string `json:"parent"`
	// Reason says, in plain words, why a controller (or cgroups altogether) cannot be
	// used; it is empty when both controllers are usable.
	Reason string `json:"reason,omitempty"`
}

// Limits are the bounds of one group. Zero means no bound.
type Limits struct {
	CPU    int64 // millicores: 1000 is one full CPU
	Memory int64 // bytes
}

// Report says which limits a group actually enforces and, when one is not, why.
type Report struct {
	CPUEnforced    bool
	MemoryEnforced bool
	Mechanism      string // "cgroup v1", "cgroup v2" or "none"
	Reason         string // empty when every requested limit is enforced
}

// Errors callers may tell apart.
var (
	// ErrUnavailable means the node offers no usable cgroup hierarchy; the Hierarchy's
	// Reason says why.
	ErrUnavailable = errors.New("cgroups unavailable")
)

// cfsPeriod is the CPU accounting period: 100 ms, the kernel's default.
const cfsPeriod = 100000 // µs

// minQuota is the smallest quota the kernel takes (1 ms per period).
const minQuota = 1000 // µs

// ValidateName checks a group or parent path element: non-empty, no "/" and not "." or
// "..", so a group can never be made outside its parent.
func ValidateName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("cgroup name %q: want a single path element (no '/', not '.' or '..')", name)
	}
	return nil
}

// ValidateParent checks a parent path: relative, clean, without "..".
func ValidateParent(parent string) error {
	if parent == "" {
		return fmt.Errorf("cgroup parent is empty: want a relative path such as %q", DefaultParent)
	}
	if path.IsAbs(parent) || path.Clean(parent) != parent || strings.HasPrefix(parent, "..") || strings.Contains(parent, "/../") {
		return fmt.Errorf("cgroup parent %q: want a clean relative path without '..', such as %q", parent, DefaultParent)
	}
	for _, el := range strings.Split(parent, "/") {
		if err := ValidateName(el); err != nil {
			return fmt.Errorf("cgroup parent %q: %w", parent, err)
		}
	}
	return nil
}

// Group is one depot's control group, present in one directory (v2) or one per
// controller hierarchy (v1).
type Group struct {
	version Version
	name    string
	cpuDir  string // "" when the cpu controller is not usable
	memDir  string // "" when the memory controller is not usable
	dirs    []string
}

// Open returns the group called name without creating or changing anything, for a
// supervisor or agent that comes back to a group made earlier.
func (h Hierarchy) Open(name string) (*Group, error) {
	if h.Version == None {
		return nil, fmt.Errorf("open cgroup %q: %w: %s", name, ErrUnavailable, h.Reason)
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := ValidateParent(h.Parent); err != nil {
		return nil, err
	}
	g := &Group{version: h.Version, name: name}
	if h.CPU != "" {
		g.cpuDir = filepath.Join(h.CPU, filepath.FromSlash(h.Parent), name)
		g.dirs = append(g.dirs, g.cpuDir)
	}
	if h.Memory != "" {
		g.memDir = filepath.Join(h.Memory, filepath.FromSlash(h.Parent), name)
		if g.memDir != g.cpuDir {
			g.dirs = append(g.dirs, g.memDir)
		}
	}
	if len(g.dirs) == 0 {
		return nil, fmt.Errorf("open cgroup %q: %w: %s", name, ErrUnavailable, h.Reason)
	}
	return g, nil
}

// Create makes the group called name under the parent, sets l and returns the group with
// a report of what is enforced. A limit that cannot be set is reported, not fatal: the
// group still bounds what it can and still collects the depot's processes. Create fails
// only when the group cannot be made at all (for instance without permission).
func (h Hierarchy) Create(name string, l Limits) (*Group, Report, error) {
	g, err := h.Make(name)
	if err != nil {
		return nil, Report{Mechanism: None.String(), Reason: err.Error()}, err
	}
	return g, g.Limit(h, l), nil
}

// Make creates the group called name under the parent with no limits yet. A supervisor
// starts the workload in it and then sets the limits with Limit, so the program's own
// start (loading, runtime set-up) is not throttled by a small CPU quota.
func (h Hierarchy) Make(name string) (*Group, error) {
	g, err := h.Open(name)
	if err != nil {
		return nil, err
	}
	if h.Version == V2 {
		if err := h.enableControllers(); err != nil {
			return nil, err
		}
	}
	for _, d := range g.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %q: cannot create %s: %w", name, d, err)
		}
	}
	return g, nil
}

// Rename gives the group, processes and all, a new name under the same parent and
// returns it under that name. Renaming moves no process: it is a directory rename in
// each hierarchy, so it takes microseconds, where moving a running multi-threaded
// process into a group (Join) waits for the kernel to quiesce the process's threads
// (milliseconds on cgroup v1). A supervisor can therefore join a group of its own
// ahead of time and give it its depot's name when the depot starts.
//
// A group already called name is replaced when it is empty (one left behind by a
// depot killed with its supervisor); one with processes is not, and Rename fails.
// When a hierarchy cannot be renamed the ones already renamed are renamed back, so
// the group keeps one name in all of them. Only cgroup v1 renames groups: v2 refuses.
func (g *Group) Rename(h Hierarchy, name string) (*Group, error) {
	to, err := h.Open(name)
	if err != nil {
		return nil, err
	}
	if len(to.dirs) != len(g.dirs) {
		return nil, fmt.Errorf("rename cgroup %q to %q: the group is in %d hierarchies, the node has %d", g.name, name, len(g.dirs), len(to.dirs))
	}
	for i, d := range g.dirs {
		err := os.Rename(d, to.dirs[i])
		if err != nil && (errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EBUSY)) {
			// cgroupfs refuses to rename onto an existing group: take away a stale,
			// empty one (rmdir fails on a group with processes or children) and retry.
			if rmErr := os.Remove(to.dirs[i]); rmErr == nil || gone(rmErr) {
				err = os.Rename(d, to.dirs[i])
			}
		}
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				os.Rename(to.dirs[j], g.dirs[j])
			}
			return nil, fmt.Errorf("rename cgroup %q to %q: %w", g.name, name, err)
		}
	}
	return to, nil
}

// Limit sets the group's CPU and memory limits and reports which are enforced; a limit
// that cannot be set is reported with the reason, not an error.
func (g *Group) Limit(h Hierarchy, l Limits) Report {
	rep := Report{Mechanism: h.Version.String()}
	var why []string
	switch {
	case l.CPU <= 0:
		why = append(why, "no CPU limit requested")
	case g.cpuDir == "":
		why = append(why, "CPU not limited: "+orDefault(h.Reason, "no cpu controller"))
	default:
		if err := g.setCPU(l.CPU); err != nil {
			why = append(why, "CPU not limited: "+err.Error())
		} else {
			rep.CPUEnforced = true
		}
	}
	switch {
	case l.Memory <= 0:
		why = append(why, "no memory limit requested")
	case g.memDir == "":
		why = append(why, "memory not limited: "+orDefault(h.Reason, "no memory controller"))
	default:
		if err := g.setMemory(l.Memory); err != nil {
			why = append(why, "memory not limited: "+err.Error())
		} else {
			rep.MemoryEnforced = true
		}
	}
	rep.Reason = strings.Join(why, "; ")
	return rep
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// enableControllers turns on the cpu and memory controllers for the children of every
// group from the top of the unified hierarchy down to the parent, since on v2 a
// controller is usable in a group only when its parent delegates it (subtree_control).
func (h Hierarchy) enableControllers() error {
	var want []string
	if h.CPU != "" {
		want = append(want, "cpu")
	}
	if h.Memory != "" {
		want = append(want, "memory")
	}
	root := h.CPU
	if root == "" {
		root = h.Memory
	}
	dir := root
	els := strings.Split(h.Parent, "/")
	for i := 0; i <= len(els); i++ {
		if i > 0 {
			dir = filepath.Join(dir, els[i-1])
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cannot create cgroup %s: %w", dir, err)
			}
		}
		have, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, "cgroup.subtree_control"), err)
		}
		var add []string
		for _, c := range want {
			if !hasOption(strings.Fields(string(have)), c) {
				add = append(add, "+"+c)
			}
		}
		if len(add) == 0 {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(add, " ")); err != nil {
			return fmt.Errorf("cannot delegate %s to the children of %s (on v2 a group with processes of its own cannot delegate; move them or pick another parent): %w",
				strings.Join(want, ","), dir, err)
		}
	}
	return nil
}

// quotaFor turns millicores into a CFS quota per cfsPeriod.
func quotaFor(millicores int64) int64 {
	q := millicores * cfsPeriod / 1000
	if q < minQuota {
		q = minQuota
	}
	return q
}

func (g *Group) setCPU(millicores int64) error {
	q := quotaFor(millicores)
	if g.version == V2 {
		return writeFile(filepath.Join(g.cpuDir, "cpu.max"), fmt.Sprintf("%d %d", q, cfsPeriod))
	}
	if err := writeFile(filepath.Join(g.cpuDir, "cpu.cfs_period_us"), strconv.Itoa(cfsPeriod)); err != nil {
		return err
	}
	return writeFile(filepath.Join(g.cpuDir, "cpu.cfs_quota_us"), strconv.FormatInt(q, 10))
}

func (g *Group) setMemory(bytes int64) error {
	v := strconv.FormatInt(bytes, 10)
	if g.version == V2 {
		if err := writeFile(filepath.Join(g.memDir, "memory.max"), v); err != nil {
			return err
		}
		// No swap, so the limit bounds memory rather than pushing the depot into swap;
		// and one OOM kill takes the whole group, so no half-dead depot remains. Both
		// files are absent on some kernels (no swap accounting, older than 4.19): then
		// the limit still holds.
		if err := writeFile(filepath.Join(g.memDir, "memory.swap.max"), "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := writeFile(filepath.Join(g.memDir, "memory.oom.group"), "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := writeFile(filepath.Join(g.memDir, "memory.limit_in_bytes"), v); err != nil {
		return err
	}
	// memsw bounds memory+swap; it exists only with swap accounting. It must be set after
	// limit_in_bytes, since the kernel wants memsw >= limit at all times.
	if err := writeFile(filepath.Join(g.memDir, "memory.memsw.limit_in_bytes"), v); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Name returns the group's name (the depot ID).
func (g *Group) Name() string { return g.name }

// Dirs returns the group's directories: one on v2, one per usable controller on v1.
func (g *Group) Dirs() []string { return append([]string(nil), g.dirs...) }

// ProcsFiles returns the cgroup.procs files a process writes its PID into to join the
// group (every hierarchy on v1).
func (g *Group) ProcsFiles() []string {
	out := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// Join moves process pid (with all its threads) into the group.
func (g *Group) Join(pid int) error {
	return JoinFiles(g.ProcsFiles(), pid)
}

// JoinFiles writes pid into each cgroup.procs file; the launcher of a depot uses it on
// itself just before exec, so the workload starts inside its group.
func JoinFiles(procsFiles []string, pid int) error {
	for _, f := range procsFiles {
		if err := writeFile(f, strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

// ThreadFiles returns the tasks files of the group's directories (cgroup v1), for
// JoinThread.
func (g *Group) ThreadFiles() []string { return ThreadFilesOf(g.ProcsFiles()) }

// ThreadFilesOf returns the tasks files beside cgroup.procs files (as ProcsFilesOf
// returns them): the files that move one thread rather than a whole process, on v1.
func ThreadFilesOf(procsFiles []string) []string {
	out := make([]string, len(procsFiles))
	for i, f := range procsFiles {
		out[i] = filepath.Join(filepath.Dir(f), "tasks")
	}
	return out
}

// JoinThread moves the calling OS thread, and only it, into the groups of the given
// tasks files (cgroup v1; see ThreadFiles); the caller must have locked its goroutine
// to the thread (runtime.LockOSThread). A process forked from that thread starts in
// those groups. Moving a whole process (Join) takes the kernel's global lock on
// thread groups, which waits for an RCU grace period, 5-15 ms on an idle node; moving
// the calling thread does not (about 0.1 ms).
func JoinThread(tasksFiles []string) error {
	for _, f := range tasksFiles {
		if err := writeFile(f, "0"); err != nil {
			return fmt.Errorf("move thread to cgroup: %w", err)
		}
	}
	return nil
}

// PIDs returns the processes in the group.
func (g *Group) PIDs() ([]int, error) {
	data, err := os.ReadFile(filepath.Join(g.dirs[0], "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %q pids: %w", g.name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroup %q pids: bad pid %q", g.name, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// OOMKills returns how many processes of the group the kernel's OOM killer has killed.
// On v1 kernels older than 4.13, which lack the oom_kill counter, it returns 1 when the
// limit was ever hit (memory.failcnt > 0) and under_oom was seen, an approximation.
func (g *Group) OOMKills() (uint64, error) {
	if g.memDir == "" {
		return 0, fmt.Errorf("cgroup %q: no memory controller", g.name)
	}
	if g.version == V2 {
		data, err := os.ReadFile(filepath.Join(g.memDir, "memory.events"))
		if err != nil {
			return 0, fmt.Errorf("cgroup %q oom kills: %w", g.name, err)
		}
		return parseKeyed(data)["oom_kill"], nil
	}
	data, err := os.ReadFile(filepath.Join(g.memDir, "memory.oom_control"))
	if err != nil {
		return 0, fmt.Errorf("cgroup %q oom kills: %w", g.name, err)
	}
	kv := parseKeyed(data)
	if n, ok := kv["oom_kill"]; ok {
		return n, nil
	}
	fc, err := os.ReadFile(filepath.Join(g.memDir, "memory.failcnt"))
	if err != nil {
		return 0, fmt.Errorf("cgroup %q oom kills: %w", g.name, err)
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(string(fc)), 10, 64); err == nil && n > 0 && kv["under_oom"] > 0 {
		return 1, nil
	}
	return 0, nil
}

// Kill sends SIGKILL to every process in the group and waits until the group is empty
// or ctx ends. On v2 with cgroup.kill (Linux 5.14+) the kernel does it atomically; else
// Kill repeats kill-all rounds, so a process forked meanwhile is caught in the next one.
// A group that does not exist is already empty.
func (g *Group) Kill(ctx context.Context) error {
	if g.version == V2 {
		err := writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1")
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(g.dirs[0]); errors.Is(serr, fs.ErrNotExist) {
				return nil
			}
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		pids, err := g.PIDs()
		if gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill pid %d of cgroup %q: %w", pid, g.name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill cgroup %q: %d processes left: %w", g.name, len(pids), ctx.Err())
		case <-tick.C:
		}
	}
}

// Remove deletes the group's directories. The kernel refuses while processes remain (or
// are still exiting), so Remove retries until ctx ends; a group already gone is fine.
func (g *Group) Remove(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for _, d := range g.dirs {
		for {
			err := os.Remove(d)
			if err == nil || gone(err) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("remove cgroup %s: still busy: %w", d, ctx.Err())
			case <-tick.C:
			}
		}
	}
	return nil
}

// gone reports whether err means the group no longer exists: removed (ENOENT), or being
// removed while we read it (ENODEV).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// writeFile writes a control file. Control files exist already; O_CREATE is never used,
// so a typo or a missing controller shows as fs.ErrNotExist instead of a stray file.
func writeFile(name, value string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("write %q to %s: %w", value, name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, name, err)
	}
	return nil
}

// ProcsFilesOf returns the cgroup.procs files of the groups process pid is in now, in
// the hierarchies of h (one per v1 controller, one on v2), so a process that leaves for
// a moment can return to exactly where it was.
func (h Hierarchy) ProcsFilesOf(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	paths := map[string]string{} // controller ("" on v2) -> path
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	var out []string
	add := func(root, controller string) error {
		if root == "" {
			return nil
		}
		p, ok := paths[controller]
		if !ok {
			return fmt.Errorf("pid %d is in no %q cgroup", pid, controller)
		}
		f := filepath.Join(root, filepath.FromSlash(p), "cgroup.procs")
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("cgroup of pid %d: %w", pid, err)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
		return nil
	}
	cpu, mem := "cpu", "memory"
	if h.Version == V2 {
		cpu, mem = "", ""
	}
	if err := add(h.CPU, cpu); err != nil {
		return nil, err
	}
	if err := add(h.Memory, mem); err != nil {
		return nil, err
	}
	return out, nil
}
