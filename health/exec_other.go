//go:build !unix

package health

import "os/exec"

// setProcessGroup leaves cmd as it is: without process groups only the command
// itself is killed on timeout (os/exec's default).
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup does nothing where there are no process groups.
func killProcessGroup(*exec.Cmd) {}
