//go:build !linux

package testnet

import (
	"errors"
	"os/exec"
	"runtime"
)

// supported says why this system cannot run a testnet.
func supported() error {
	return errors.New("qnet testnet runs on Linux only: it finds the nodes' processes in /proc and their depots in cgroups (this is " + runtime.GOOS + ")")
}

func startIn(string, *exec.Cmd) error { return supported() }
