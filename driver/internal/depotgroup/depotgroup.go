// Package depotgroup cleans up after depots in the node's cgroup hierarchy: it sweeps
// away the group of a depot that ended, and lets go of the parent of a driver's depot
// groups.
package depotgroup

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"qnet.dev/qnet/cgroup"
)

// sweepTimeout bounds a Sweep, on top of its caller's context: a group that cannot be
// emptied in that time holds processes the kernel will not kill.
const sweepTimeout = 10 * time.Second

// Sweep kills every process left in the group of depot id and removes the group, when
// there is one; what fails is logged, since the depot has ended either way and nothing
// else can be done about it.
func Sweep(ctx context.Context, h cgroup.Hierarchy, id string, log *slog.Logger) {
	if h.Version == cgroup.None {
		return
	}
	g, err := h.Open(id)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	if err := g.Kill(ctx); err != nil {
		log.Warn("cgroup not emptied", "depot", id, "err", err)
	}
	if err := g.Remove(ctx); err != nil {
		log.Warn("cgroup not removed", "depot", id, "err", err)
	}
}

// RemoveEmpty removes the groups under the parent whose names start with prefix and
// that hold no process, in each controller's hierarchy: groups a process made for
// itself and could not remove because it was killed. A group with a process is left
// alone (the kernel refuses to remove it), so a live owner keeps its group.
func RemoveEmpty(h cgroup.Hierarchy, prefix string) {
	if h.Version == cgroup.None || prefix == "" {
		return
	}
	for _, top := range []string{h.CPU, h.Memory} {
		if top == "" {
			continue
		}
		dir := filepath.Join(top, filepath.FromSlash(h.Parent))
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// RemoveParent removes parent, the group the depots' groups are made under, from each
// controller's hierarchy. The kernel refuses while a group remains under it (of this
// driver or another on the node), which is fine: the last one to close removes it. On
// cgroup v1 runc also makes the containers' groups, under the same parent, in the
// hierarchies QNet does not use itself (pids, blkio, devices, freezer...); it removes
// the containers' groups but not the parent, so the parent is removed there too, from
// every hierarchy mounted beside the cpu and memory ones.
func RemoveParent(h cgroup.Hierarchy, parent string) {
	if h.Version == cgroup.None || parent == "" {
		return
	}
	tops := []string{h.CPU, h.Memory}
	if h.Version == cgroup.V1 {
		for _, known := range []string{h.CPU, h.Memory} {
			if known == "" {
				continue
			}
			others, _ := filepath.Glob(filepath.Join(filepath.Dir(known), "*"))
			tops = append(tops, others...)
			break
		}
	}
	for _, top := range tops {
		if top != "" {
			os.Remove(filepath.Join(top, parent))
		}
	}
}
