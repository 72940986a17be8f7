// Package driver is the boundary between the agent and the ways a depot can run on a
// node: as a plain process (exec), as an OCI container (oci, through runc) or as a
// WebAssembly module (wasm). The agent starts, watches, stops and re-adopts depots only
// through Driver and Handle, so every driver gives the same promises: Start returns once
// the workload runs, a depot outlives an agent restart and is found again by Recover,
// Stop leaves no process of the depot behind, and limits that are not enforced are
// reported with the reason, never silently dropped.
package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Spec says what to run for one depot and within which bounds.
type Spec struct {
	// ID names the depot on this node: 1 to 128 characters of [a-z0-9-], starting with a
	// letter or digit, e.g. "hello-7f3a9c21-0". It names the runtime directory and the
	// cgroup, so it must be unique on the node.
	ID string `json:"id"`
	// Command is the program: an absolute path, a path relative to Dir (containing a
	// '/'), or a name looked up in the PATH of Env.
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Env is the complete environment (KEY=VALUE): drivers add nothing they do not
	// document.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; it must exist. Empty means the driver's default
	// (documented per driver).
	Dir string `json:"dir,omitempty"`
	// CPU is the CPU limit in millicores (1000 = one CPU); 0 means no limit.
	CPU int64 `json:"cpu,omitempty"`
	// Memory is the memory limit in bytes; 0 means no limit.
	Memory int64 `json:"memory,omitempty"`
	// LogMaxBytes bounds each log file before it is rotated (0 means DefaultLogMaxBytes).
	LogMaxBytes int64 `json:"logMaxBytes,omitempty"`
	// LogMaxFiles is how many rotated files are kept per stream (0 means
	// DefaultLogMaxFiles; use NoRotatedLogs to keep none).
	LogMaxFiles int `json:"logMaxFiles,omitempty"`
	// Image, for the oci driver, is the image to run and how; Command then only names it.
	Image *ImageSpec `json:"image,omitempty"`
	// Wasm, for the wasm driver, is the module to run.
	Wasm *WasmSpec `json:"wasm,omitempty"`
	// Ports maps the depot's port names to the node's host port and the port the
	// workload listens on (the same for exec depots; a container's own port for oci).
	Ports map[string]PortMapping `json:"ports,omitempty"`
	// Mounts are files or directories of the node the workload sees at their Target
	// (secret files, config files). Each driver shows them its own way (documented per
	// driver) and refuses those it cannot show; none ignores them.
	Mounts []Mount `json:"mounts,omitempty"`
	// Meta is the agent's own small, non-secret data about the depot (its ports, its
	// service and revision). Drivers store it with the depot and return it unchanged
	// with recovered handles, so a restarted agent knows what it had started.
	Meta map[string]string `json:"meta,omitempty"`
}

// Mount shows the node's file or directory Source to a depot's workload at Target.
type Mount struct {
	// Source is an absolute, clean path on the node; it must exist when the depot
	// starts.
	Source string `json:"source"`
	// Target is the absolute, clean path the workload sees it at.
	Target string `json:"target"`
	// ReadOnly keeps the workload from changing it.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Private marks a file for the workload's eyes only (a secret file, mode 0400): a
	// driver whose workload runs as another user than the node's (a container whose
	// image names a user) makes that user the file's owner, so the workload can read it
	// and no other user but root can.
	Private bool `json:"private,omitempty"`
}

// MaxMounts bounds Spec.Mounts.
const MaxMounts = 256

// cleanAbs reports why p cannot be a mount path, or "".
func cleanAbs(p string) string {
	switch {
	case p == "":
		return "is empty"
	case strings.ContainsRune(p, 0):
		return "contains a NUL byte"
	case !strings.HasPrefix(p, "/"):
		return "is not absolute"
	case slices.Contains(strings.Split(p, "/"), ".."):
		return "contains \"..\""
	case p != "/" && path.Clean(p) != p:
		return "is not clean (want " + strconv.Quote(path.Clean(p)) + ")"
	}
	return ""
}

// validateMounts checks s.Mounts: absolute, clean paths without "..", and no target
// shown twice.
func (s Spec) validateMounts() error {
	if len(s.Mounts) > MaxMounts {
		return fmt.Errorf("spec.mounts of depot %q has %d entries: at most %d", s.ID, len(s.Mounts), MaxMounts)
	}
	targets := map[string]int{}
	for i, m := range s.Mounts {
		if why := cleanAbs(m.Source); why != "" {
			return fmt.Errorf("spec.mounts[%d].source %q of depot %q %s: want an absolute, clean path on the node like /var/lib/qnet/configs/web-1/nginx", i, m.Source, s.ID, why)
		}
		if why := cleanAbs(m.Target); why != "" {
			return fmt.Errorf("spec.mounts[%d].target %q of depot %q %s: want an absolute, clean path like /etc/nginx/nginx.conf", i, m.Target, s.ID, why)
		}
		if m.Target == "/" {
			return fmt.Errorf("spec.mounts[%d].target of depot %q is \"/\": a mount cannot replace the whole filesystem", i, s.ID)
		}
		if j, ok := targets[m.Target]; ok {
			return fmt.Errorf("spec.mounts[%d].target %q of depot %q is also spec.mounts[%d].target: one mount per target", i, m.Target, s.ID, j)
		}
		targets[m.Target] = i
	}
	return nil
}

// ImageSpec is an OCI image depot: the image (by manifest digest in the node's depot
// store) and what overrides its configuration.
type ImageSpec struct {
	Digest       string   `json:"digest"`
	Command      []string `json:"command,omitempty"`
	Args         []string `json:"args,omitempty"`
	WorkingDir   string   `json:"workingDir,omitempty"`
	User         string   `json:"user,omitempty"`
	ReadOnlyRoot bool     `json:"readOnlyRoot,omitempty"`
}

// WasmSpec is a WebAssembly depot: the module (by digest in the node's depot store) and
// its arguments.
type WasmSpec struct {
	Digest string   `json:"digest"`
	Args   []string `json:"args,omitempty"`
}

// PortMapping makes a workload's port reachable on the node.
type PortMapping struct {
	Host      int    `json:"host"`
	Container int    `json:"container"`
	Protocol  string `json:"protocol,omitempty"`
}

// Log defaults, applied by WithDefaults.
const (
	DefaultLogMaxBytes = 1 << 20
	DefaultLogMaxFiles = 3
	// NoRotatedLogs as LogMaxFiles keeps only the current log file.
	NoRotatedLogs = -1
)

// MaxIDLen bounds Spec.ID, well inside file-name and cgroup-name limits.
const MaxIDLen = 128

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Validate checks the spec and returns an error naming the first bad field and what
// would be valid.
func (s Spec) Validate() error {
	switch {
	case s.ID == "":
		return errors.New("spec.id is empty: want a depot ID of [a-z0-9-], e.g. \"hello-7f3a9c21-0\"")
	case len(s.ID) > MaxIDLen:
		return fmt.Errorf("spec.id %q is %d characters: at most %d", s.ID, len(s.ID), MaxIDLen)
	case !idPattern.MatchString(s.ID):
		return fmt.Errorf("spec.id %q: want only [a-z0-9-], starting with a letter or digit", s.ID)
	case s.Command == "":
		return fmt.Errorf("spec.command of depot %q is empty: want a program path or name", s.ID)
	case strings.ContainsRune(s.Command, 0):
		return fmt.Errorf("spec.command of depot %q contains a NUL byte", s.ID)
	case s.CPU < 0:
		return fmt.Errorf("spec.cpu of depot %q is %d: want millicores >= 0 (0 = no limit)", s.ID, s.CPU)
	case s.Memory < 0:
		return fmt.Errorf("spec.memory of depot %q is %d: want bytes >= 0 (0 = no limit)", s.ID, s.Memory)
	case s.LogMaxBytes < 0:
		return fmt.Errorf("spec.logMaxBytes of depot %q is %d: want bytes >= 0 (0 = default %d)", s.ID, s.LogMaxBytes, DefaultLogMaxBytes)
	case s.LogMaxFiles < NoRotatedLogs:
		return fmt.Errorf("spec.logMaxFiles of depot %q is %d: want >= 0 (0 = default %d) or %d for none", s.ID, s.LogMaxFiles, DefaultLogMaxFiles, NoRotatedLogs)
	}
	for i, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("spec.args[%d] of depot %q contains a NUL byte", i, s.ID)
		}
	}
	for k, v := range s.Meta {
		if k == "" || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return fmt.Errorf("spec.meta of depot %q has key %q: want non-empty keys and no NUL bytes", s.ID, k)
		}
	}
	for i, e := range s.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsRune(e, 0) {
			// The value may be a secret: the error names the variable only.
			return fmt.Errorf("spec.env[%d] of depot %q (variable %q): want KEY=VALUE with a non-empty KEY and no NUL byte", i, s.ID, k)
		}
	}
	return s.validateMounts()
}

// WithDefaults returns s with the log bounds filled in.
func (s Spec) WithDefaults() Spec {
	if s.LogMaxBytes == 0 {
		s.LogMaxBytes = DefaultLogMaxBytes
	}
	if s.LogMaxFiles == 0 {
		s.LogMaxFiles = DefaultLogMaxFiles
	}
	return s
}

// Driver runs depots of one kind on this node.
type Driver interface {
	// Name returns the driver's name as manifests spell it ("exec", "oci", "wasm").
	Name() string
	// Start starts the depot and returns once its workload runs (its PID is known and
	// the program was executed). A program that cannot be started is an error from Start
	// that says why (for instance a command not found, naming the PATH searched).
	Start(ctx context.Context, s Spec) (Handle, error)
	// Recover finds the depots this driver started before the agent restarted: those
	// still running are re-adopted (never started again), those that exited since are
	// returned with their exit status, and those whose supervisor died without recording
	// one are returned as exited with a Reason starting "lost:".
	Recover(ctx context.Context) ([]Handle, error)
	// Logs returns the paths of the depot's current stdout and stderr log files; rotated
	// ones are beside them with suffixes .1, .2, … (see package logfile).
	Logs(id string) (stdout, stderr string)
	// Remove deletes a stopped depot's runtime state and logs. It fails with ErrRunning
	// while the depot runs.
	Remove(id string) error
}

// Handle is one depot started or recovered by a Driver.
type Handle interface {
	ID() string
	// PID returns the workload's process ID (in the node's PID namespace).
	PID() int
	Spec() Spec
	// StartedAt returns when the workload was started.
	StartedAt() time.Time
	// Wait blocks until the workload has exited or ctx ends; any number of callers may
	// wait, and all see the same ExitStatus.
	Wait(ctx context.Context) (ExitStatus, error)
	// Signal sends sig to the workload's main process.
	Signal(sig os.Signal) error
	// Stop sends SIGTERM to the workload's process group, then SIGKILL to every process of
	// the depot once grace has passed, and waits for the exit (or ctx). Stopping an exited
	// depot returns its status.
	Stop(ctx context.Context, grace time.Duration) (ExitStatus, error)
	// Limits says which resource limits are enforced and, when one is not, why.
	Limits() LimitReport
}

// ExitStatus says how a depot ended.
type ExitStatus struct {
	// Code is the exit code; when the workload was killed by a signal it is 128 plus the
	// signal number, as shells report it.
	Code int `json:"code"`
	// Signal names the signal that killed the workload ("SIGKILL"), or is empty.
	Signal string `json:"signal,omitempty"`
	// OOMKilled reports that the kernel's OOM killer killed a process of the depot
	// because the depot reached its memory limit.
	OOMKilled bool `json:"oomKilled,omitempty"`
	// Reason says in words what happened: "exited with code 1", "killed by SIGKILL",
	// "stopped", "oom killed: ..." or "lost: ..." when the outcome is unknown.
	Reason     string    `json:"reason"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Lost reports whether the exit could not be observed (the supervisor died first).
func (e ExitStatus) Lost() bool { return strings.HasPrefix(e.Reason, "lost:") }

// LimitReport says which limits a depot actually runs under.
type LimitReport struct {
	CPUEnforced    bool   `json:"cpuEnforced"`
	MemoryEnforced bool   `json:"memoryEnforced"`
	Mechanism      string `json:"mechanism"` // "cgroup v1", "cgroup v2" or "none"
	// Reason says, for each limit not enforced, why (including "no CPU limit requested").
	Reason string `json:"reason,omitempty"`
}

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound: the driver knows no depot with that ID.
	ErrNotFound = errors.New("depot not found")
	// ErrExists: Start was asked for an ID that already has runtime state on the node.
	ErrExists = errors.New("depot already exists")
	// ErrRunning: the operation needs a stopped depot.
	ErrRunning = errors.New("depot is running")
	// ErrCommandNotFound: the program could not be found or is not executable.
	ErrCommandNotFound = errors.New("command not found")
	// ErrBadSpec: the spec is invalid (the error says which field and why).
	ErrBadSpec = errors.New("invalid depot spec")
	// ErrLimitsUnavailable: the driver was told to require limits it cannot enforce.
	ErrLimitsUnavailable = errors.New("resource limits cannot be enforced")
)
