//go:build linux

package testnet

import (
	"os/exec"

	"qnet.dev/qnet/driver/oci/network"
)

// supported says why this system cannot run a testnet, or nil.
func supported() error { return nil }

// startIn starts cmd in the network namespace ns (a name under /run/netns), or in this
// process's namespace when ns is empty: the child is forked from a thread that joined
// the namespace, and that thread goes back to this process's namespace before any
// other goroutine may run on it (network.InNamespace).
func startIn(ns string, cmd *exec.Cmd) error {
	if ns == "" {
		return cmd.Start()
	}
	return network.InNamespace("/run/netns/"+ns, cmd.Start)
}
