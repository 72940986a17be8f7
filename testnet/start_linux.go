//go:build linux

package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// supported says why this system cannot run a testnet, or nil.
func supported() error { return nil }

// startIn starts cmd in the network namespace ns (a name under /run/netns), or in this
// process's namespace when ns is empty. The child is forked from a thread that joined
// the namespace; that thread stays locked to its goroutine, which ends, so the thread
// ends with it and no other goroutine ever runs in the namespace.
func startIn(ns string, cmd *exec.Cmd) error {
	if ns == "" {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
