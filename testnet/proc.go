package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/node"
)

// proc is a process as /proc/PID/stat shows it.
type proc struct {
	pid, ppid, session int
	state              byte
	start              uint64 // clock ticks after boot
}

// live reports whether the process runs (zombies have ended).
func (p proc) live() bool { return p.state != 'Z' && p.state != 'X' }

// parseStat parses /proc/PID/stat: "pid (comm) state ppid pgrp session ... starttime"
// (starttime is field 22). comm may hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(data []byte) (proc, error) {
	open := bytes.IndexByte(data, '(')
	i := bytes.LastIndexByte(data, ')')
	if open < 0 || i < open {
		return proc{}, errors.New("stat: no (comm)")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return proc{}, fmt.Errorf("stat: pid: %w", err)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return proc{}, errors.New("stat: too few fields")
	}
	p := proc{pid: pid, state: f[0][0]}
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return proc{}, fmt.Errorf("stat: ppid: %w", err)
	}
	if p.session, err = strconv.Atoi(f[3]); err != nil {
		return proc{}, fmt.Errorf("stat: session: %w", err)
	}
	if p.start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return proc{}, fmt.Errorf("stat: starttime: %w", err)
	}
	return p, nil
}

// readProc reads one process; ok is false when it does not exist.
func readProc(pid int) (proc, bool) {
	if pid <= 0 {
		return proc{}, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	p, err := parseStat(data)
	return p, err == nil
}

// running reports whether the process pid runs and, when start is not zero, is the one
// that started at start (not a later process that reuses the PID).
func running(pid int, start uint64) bool {
	p, ok := readProc(pid)
	return ok && p.live() && (start == 0 || p.start == start)
}

// allProcs lists every process of the machine.
func allProcs() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// shimState is the part of a depot's state.json (written by its shim, see
// driver/exec) that names the shim and the workload.
type shimState struct {
	ShimPID   int    `json:"shimPid"`
	ShimStart uint64 `json:"shimStart"`
	PID       int    `json:"pid"`
	PIDStart  uint64 `json:"pidStart"`
}

// nodeProcs lists the live processes that belong to a node other than its agent: its
// depots' shims and workloads (from the shims' state files under <data-dir>/depots),
// every process in the node's cgroups (the cgroup parent "qnet-<node ID>" in every
// hierarchy), every process in a shim's session (a depot's process group lives there),
// and the agent's children (a shim that is starting, or one started in advance, has
// no state file yet).
func nodeProcs(n *Node, agent int, procs []proc) map[int]uint64 {
	out := map[int]uint64{}
	byPID := map[int]proc{}
	for _, p := range procs {
		byPID[p.pid] = p
	}
	add := func(pid int, start uint64) {
		if p, ok := byPID[pid]; ok && p.live() && (start == 0 || p.start == start) {
			out[pid] = p.start
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(n.DataDir, node.DepotDir, "*", "state.json"))
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st shimState
		if json.Unmarshal(data, &st) != nil {
			continue
		}
		add(st.ShimPID, st.ShimStart)
		add(st.PID, st.PIDStart)
	}
	if n.ID != "" {
		for _, pid := range cgroupProcs("qnet-" + n.ID) {
			add(pid, 0)
		}
	}
	if agent > 0 {
		for _, p := range procs {
			if p.ppid == agent {
				add(p.pid, p.start)
			}
		}
	}
	// Whatever runs in the session of a shim found so far is its depot.
	for _, pid := range sortedKeys(out) {
		for _, p := range procs {
			if p.session == pid && p.pid != pid {
				add(p.pid, p.start)
			}
		}
	}
	return out
}

// sortedKeys returns the keys of m in order, so that m may grow while they are walked.
func sortedKeys(m map[int]uint64) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// cgroupMounts lists the mount points of the machine's cgroup hierarchies.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	mounts, err := cgroup.ParseMountInfo(f)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range mounts {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Point)
		}
	}
	return out
}

// cgroupProcs lists the processes in the group parent (a top-level group, such as a
// node's "qnet-<ID>") and every group below it, in every hierarchy.
func cgroupProcs(parent string) []int {
	var out []int
	for _, mnt := range cgroupMounts() {
		root := filepath.Join(mnt, parent)
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// removeCgroups removes the (empty) groups under parent in every hierarchy, deepest
// first; groups that still hold processes stay. A group whose last process was just
// killed stays busy until the kernel has finished that process's exit, so a group the
// kernel calls busy is tried again for up to removeGrace.
func removeCgroups(parent string) {
	deadline := time.Now().Add(removeGrace)
	for _, mnt := range cgroupMounts() {
		root := filepath.Join(mnt, parent)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for syscall.Rmdir(dirs[i]) == syscall.EBUSY && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // poll step of a deadline wait
			}
		}
	}
}

// removeGrace bounds how long removeCgroups waits for busy groups to empty.
const removeGrace = 2 * time.Second

// killNode kills a node's agent and every process of its depots with SIGKILL and waits
// until they are gone. The agent is stopped (SIGSTOP) first, so that it starts nothing
// while its processes are looked for; processes are looked for again until none is
// left, for a shim that was being started when the agent stopped.
func killNode(ctx context.Context, n *Node) (killed []int, err error) {
	agent := 0
	if running(n.PID, n.PIDStart) {
		agent = n.PID
		_ = syscall.Kill(agent, syscall.SIGSTOP)
	}
	targets := map[int]uint64{}
	if agent > 0 {
		targets[agent] = n.PIDStart
	}
	deadline := time.Now().Add(15 * time.Second)
	for round := 0; ; round++ {
		procs := allProcs()
		for pid, start := range nodeProcs(n, agent, procs) {
			targets[pid] = start
		}
		left := 0
		for pid, start := range targets {
			if running(pid, start) {
				left++
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if left == 0 && round > 0 {
			break
		}
		if time.Now().After(deadline) {
			var still []int
			for pid, start := range targets {
				if running(pid, start) {
					still = append(still, pid)
				}
			}
			slices.Sort(still)
			return nil, fmt.Errorf("kill %s: processes %v still run 15s after SIGKILL", n.Name, still)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kill %s: %w", n.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for pid := range targets {
		killed = append(killed, pid)
	}
	slices.Sort(killed)
	return killed, nil
}
