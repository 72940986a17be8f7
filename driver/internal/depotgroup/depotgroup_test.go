package depotgroup

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qnet.dev/qnet/cgroup"
)

// fakeV1 is a cgroup v1 hierarchy in plain directories: enough to see what is removed.
func fakeV1(t *testing.T) cgroup.Hierarchy {
	t.Helper()
	root := t.TempDir()
	h := cgroup.Hierarchy{Version: cgroup.V1, CPU: filepath.Join(root, "cpu"), Memory: filepath.Join(root, "memory"), Parent: "qnet"}
	for _, top := range []string{h.CPU, h.Memory} {
		os.MkdirAll(filepath.Join(top, h.Parent), 0o755)
	}
	return h
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

func TestSweep(t *testing.T) {
	t.Parallel()
	h := fakeV1(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// No hierarchy, and no group: nothing to do, nothing to say.
	Sweep(context.Background(), cgroup.Hierarchy{Version: cgroup.None}, "web-1", log)
	Sweep(context.Background(), h, "web-1", log)
	if logs.Len() != 0 {
		t.Errorf("sweeping nothing logged %q", logs.String())
	}
	// An empty group (no processes) is removed from every controller.
	for _, top := range []string{h.CPU, h.Memory} {
		os.Mkdir(filepath.Join(top, h.Parent, "web-1"), 0o755)
	}
	Sweep(context.Background(), h, "web-1", log)
	for _, top := range []string{h.CPU, h.Memory} {
		if exists(filepath.Join(top, h.Parent, "web-1")) {
			t.Errorf("group left in %s", top)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("a clean sweep logged %q", logs.String())
	}
	// A group that cannot be removed is logged, not fatal.
	os.MkdirAll(filepath.Join(h.CPU, h.Parent, "web-2", "stuck"), 0o755)
	Sweep(context.Background(), h, "web-2", log)
	if !strings.Contains(logs.String(), "cgroup not removed") || !strings.Contains(logs.String(), "web-2") {
		t.Errorf("a failed sweep logged %q", logs.String())
	}
}

func TestRemoveParent(t *testing.T) {
	t.Parallel()
	h := fakeV1(t)
	RemoveParent(cgroup.Hierarchy{Version: cgroup.None}, "qnet") // nothing to do
	RemoveParent(h, "")                                          // no parent named: nothing to do
	os.Mkdir(filepath.Join(h.Memory, h.Parent, "web-1"), 0o755)
	// runc's groups in a hierarchy QNet does not use itself: the parent is left empty
	// there once runc removed its containers' groups.
	pids := filepath.Join(filepath.Dir(h.CPU), "pids")
	os.MkdirAll(filepath.Join(pids, h.Parent), 0o755)
	os.MkdirAll(filepath.Join(pids, "other"), 0o755)
	RemoveParent(h, h.Parent)
	if exists(filepath.Join(h.CPU, h.Parent)) {
		t.Error("empty parent left in the cpu hierarchy")
	}
	if exists(filepath.Join(pids, h.Parent)) {
		t.Error("empty parent left in the pids hierarchy")
	}
	if !exists(filepath.Join(pids, "other")) {
		t.Error("another group of the pids hierarchy was removed")
	}
	if !exists(filepath.Join(h.Memory, h.Parent, "web-1")) {
		t.Error("the parent of a depot group was removed with it")
	}
	if !exists(h.CPU) || !exists(h.Memory) {
		t.Error("a hierarchy's top was removed")
	}
}
