//go:build !linux

package cgroup

import (
	"fmt"
	"runtime"
)

// Detect returns a hierarchy with Version None: control groups exist only on Linux, so
// on this system CPU and memory limits cannot be enforced.
func Detect(parent string) Hierarchy {
	if parent == "" {
		parent = DefaultParent
	}
	return Hierarchy{Parent: parent, Reason: fmt.Sprintf("cgroups exist only on Linux; this node runs %s, so CPU and memory limits are not enforced", runtime.GOOS)}
}
