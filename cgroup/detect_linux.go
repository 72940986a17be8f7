//go:build linux

package cgroup

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Detect reads /proc/self/mountinfo and returns the hierarchy depot groups should use,
// under parent (DefaultParent when empty). It never fails: when cgroups cannot be used,
// the result has Version None and a Reason saying why.
func Detect(parent string) Hierarchy {
	if parent == "" {
		parent = DefaultParent
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Hierarchy{Parent: parent, Reason: fmt.Sprintf("cannot read mounts: %v", err)}
	}
	defer f.Close()
	mounts, err := ParseMountInfo(f)
	if err != nil {
		return Hierarchy{Parent: parent, Reason: fmt.Sprintf("cannot read mounts: %v", err)}
	}
	return detect(mounts, parent, os.ReadFile, func(dir string) error {
		return unix.Access(dir, unix.W_OK)
	})
}
