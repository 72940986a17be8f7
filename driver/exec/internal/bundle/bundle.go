// Package bundle defines the runtime directory of one exec depot, through which the
// agent and the depot's supervisor (the shim) find each other across agent restarts: the
// agent writes spec.json, the shim writes state.json once the workload runs and
// exit.json once it has ended, and the logs sit beside them. The records are read and
// written with package statefile, so a reader sees a whole file or none, whichever
// process dies when.
//
// The workload's environment may hold secrets, and nothing secret is written to disk:
// spec.json has the spec without Env, and the full Launch travels only through pipes
// (agent to shim on fd LaunchFD, shim to exec stage likewise).
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
)

// Names of the files in a depot's runtime directory.
const (
	SpecFile  = "spec.json"      // Launch without Env (see Redacted), written by the agent
	StateFile = "state.json"     // State, written by the shim
	ExitFile  = "exit.json"      // Exit, written by the shim (or the agent when the shim was lost)
	StopFile  = "stop-requested" // present once the agent asked the depot to stop
	ShimLog   = "shim.log"       // the shim's own stderr
	Stdout    = "stdout.log"
	Stderr    = "stderr.log"
)

// Launch is everything the shim needs to start the workload.
type Launch struct {
	Spec driver.Spec `json:"spec"`
	// Path is the program, resolved by the agent to an absolute path.
	Path string `json:"path"`
	// Cgroup is the node's hierarchy as the agent detected it; Version None means run
	// without a group.
	Cgroup cgroup.Hierarchy `json:"cgroup"`
	// RequireLimits makes the start fail when a requested limit cannot be enforced.
	RequireLimits bool `json:"requireLimits,omitempty"`
	// Self is the command line that runs the shim binary's exec stage, minus its last
	// arguments ("-exec", dir): the shim binary path and the arguments before the dir.
	Self []string `json:"self"`
	// Dir is the depot's runtime directory, for a shim started in advance (warm) that
	// did not get it on its command line.
	Dir string `json:"dir,omitempty"`
}

// File descriptors the shim and its exec stage get from their parent.
const (
	// ReportFD carries the child's one message to its parent: bundle.Hello from the shim,
	// bundle.ExecError from the exec stage (which sets it close-on-exec, so it closes
	// empty when the workload's program runs).
	ReportFD = 3
	// LaunchFD carries the Launch, JSON, from parent to child, then closes.
	LaunchFD = 4
)

// Redacted returns l without the workload's environment, for spec.json.
func (l Launch) Redacted() Launch {
	l.Spec.Env = nil
	return l
}

// ReadLaunch reads the Launch a parent sends on LaunchFD.
func ReadLaunch() (Launch, error) {
	f := os.NewFile(LaunchFD, "launch")
	if f == nil {
		return Launch{}, errors.New("no launch pipe on fd 4")
	}
	defer f.Close()
	var l Launch
	if err := json.NewDecoder(f).Decode(&l); err != nil {
		return Launch{}, fmt.Errorf("read launch from fd %d: %w", LaunchFD, err)
	}
	return l, nil
}

// SendLaunch writes l on w (the parent's end of a child's launch pipe) and closes it.
func SendLaunch(w *os.File, l Launch) error {
	err := json.NewEncoder(w).Encode(l)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("send launch: %w", err)
	}
	return nil
}

// Phase says how far a shim got.
type Phase string

// The phases a State records.
const (
	Starting Phase = "starting" // the shim runs; the workload is not started yet
	Running  Phase = "running"  // the workload was executed and its PID is known
)

// State records the shim's and the workload's identity (PID plus start time, so that a
// reused PID is never taken for them).
type State struct {
	Phase     Phase              `json:"phase"`
	ShimPID   int                `json:"shimPid"`
	ShimStart uint64             `json:"shimStart"`
	PID       int                `json:"pid,omitempty"`
	PIDStart  uint64             `json:"pidStart,omitempty"`
	StartedAt time.Time          `json:"startedAt"`
	Limits    driver.LimitReport `json:"limits"`
	// Cgroup is true when the workload runs in a cgroup named after the depot.
	Cgroup bool `json:"cgroup,omitempty"`
}

// Exit is how the workload ended, with the identity it had.
type Exit struct {
	driver.ExitStatus
	PID      int    `json:"pid"`
	PIDStart uint64 `json:"pidStart"`
}

// Hello is the shim's one message to the agent on the start pipe: the state once the
// workload runs, or why it could not be started.
type Hello struct {
	State *State `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
	// Kind classifies Error: "command" (not found or not executable), "dir" (bad
	// working directory), "limits" (limits required but not enforceable) or "" (other).
	Kind string `json:"kind,omitempty"`
}

// ExecError is what the exec stage reports on its status pipe when exec fails.
type ExecError struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}
