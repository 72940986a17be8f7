// Package proto is what the wasm driver (in the agent) and its per-depot supervisor (the
// wasm shim) share: the layout of a depot's runtime directory, the messages they
// exchange and the path of the supervisor's control socket.
//
// The agent and a supervisor talk over a Unix stream socket, one JSON object per line.
// The agent that starts a supervisor hands it one end of a socket pair as file
// descriptor ConnFD and sends Init; the supervisor answers with a Status of phase Warm
// once its runtime is built (and the module it was asked to prime is compiled); the
// agent sends Launch (at once, or later for a supervisor started in advance). A supervisor that runs a depot also listens on its control socket,
// where an agent that restarted connects again. On every connection the supervisor
// sends its Status at once and again whenever it changes, and the connection closes
// when the supervisor exits: that end of file is how an agent learns that a depot has
// ended, with no polling and no process IDs that the kernel could reuse. The agent
// sends Commands.
//
// The workload's environment may hold secrets and is never written to disk: spec.json
// has the spec without Env, and the full Launch travels only over the socket.
package proto

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
)

// Names in a depot's runtime directory (<root>/<depot-id>/). Its records and markers are
// read and written with package statefile.
const (
	SpecFile       = "spec.json"      // Launch without Env, written by the agent
	StateFile      = "state.json"     // State, written by the supervisor
	ExitFile       = "exit.json"      // driver.ExitStatus, by the supervisor (or the agent when it was lost)
	StopFile       = "stop-requested" // present once the agent asked the depot to stop
	KillFile       = "kill-requested" // present once the agent killed the supervisor after the grace
	SupervisorLog  = "supervisor.log" // the supervisor's own log
	Stdout         = "stdout.log"     // the module's standard output (package logfile)
	Stderr         = "stderr.log"     // the module's standard error
	DataDir        = "data"           // preopened as /data; kept across restarts of the depot
	GuestDataPath  = "/data"          // where the module sees DataDir
	CacheDirName   = ".cache"         // <root>/.cache: compiled modules, shared by all depots
	SocketDirName  = ".s"             // <root>/.s: control sockets (short paths, see SocketPath)
	WarmLogName    = ".warm.log"      // <root>/.warm.log: output of supervisors before their launch
	MaxSocketPath  = 103              // sun_path holds 104 bytes on Darwin and the BSDs, NUL included
	socketHashSize = 6                // bytes of SHA-256 in a socket name: 12 hex characters
)

// ConnFD is the file descriptor on which a supervisor finds its end of the socket pair
// from the agent that started it.
const ConnFD = 3

// SocketPath returns the control socket of depot id under root. It lives in a directory
// of its own with a short, hashed name, because a socket path must fit in 104 bytes and
// depot IDs may be 128 characters long.
func SocketPath(root, id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(root, SocketDirName, hex.EncodeToString(sum[:socketHashSize])+".sock")
}

// Init configures a supervisor before it knows its depot, so a supervisor started in
// advance can set up its runtime while it waits.
type Init struct {
	// CacheDir holds compiled modules (wazero's compilation cache), shared by depots.
	CacheDir string `json:"cacheDir"`
	// Prime is a module file the supervisor compiles while it waits, because the agent
	// expects to start it next; empty means none.
	Prime string `json:"prime,omitempty"`
	// Cgroup and Group, when Group is set, have the supervisor join the group of that
	// name (made with no limits) as soon as it starts, so that when its depot starts
	// with a CPU limit the group only needs the depot's name and the limit (a rename and
	// a write), not the migration of a running process into it (milliseconds). Set on
	// cgroup v1 only, which renames groups.
	Cgroup cgroup.Hierarchy `json:"cgroup"`
	Group  string           `json:"group,omitempty"`
}

// WarmGroupPrefix starts the names of the groups of supervisors waiting for a launch.
// Depot IDs never start with a dot, so these names cannot clash with a depot's group.
const WarmGroupPrefix = ".warm-"

// Launch is everything a supervisor needs to run one depot.
type Launch struct {
	Spec driver.Spec `json:"spec"`
	// Root is the driver's runtime directory; the depot's own is Root/Spec.ID.
	Root string `json:"root"`
	// Module is the module file, resolved to an absolute path by the agent.
	Module string `json:"module"`
	// Preopens are the directories the module gets for Spec.Mounts, in file descriptor
	// order after DataFD (see Preopens).
	Preopens []Preopen `json:"preopens,omitempty"`
	// Listeners are the TCP listeners the module gets, in file descriptor order from
	// FirstListenerFDAfter(len(Preopens)).
	Listeners []Listener `json:"listeners,omitempty"`
	// Cgroup is the node's hierarchy as the agent detected it; Version None means no
	// group (and no CPU limit).
	Cgroup cgroup.Hierarchy `json:"cgroup"`
	// RequireLimits makes the start fail when a requested limit cannot be enforced.
	RequireLimits bool `json:"requireLimits,omitempty"`
}

// Dir returns the depot's runtime directory.
func (l Launch) Dir() string { return filepath.Join(l.Root, l.Spec.ID) }

// Redacted returns l without the workload's environment, for spec.json.
func (l Launch) Redacted() Launch {
	l.Spec.Env = nil
	return l
}

// Listener is one TCP listener opened for the module.
type Listener struct {
	// Env names the variable that gave the port ("PORT", "QNET_PORT_HTTP").
	Env  string `json:"env"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// File descriptors the module finds open (WASI preview 1 numbers them in this order).
const (
	DataFD          = 3 // the preopened directory GuestDataPath
	FirstListenerFD = 4 // the first of Launch.Listeners when there are no Launch.Preopens; the others follow
)

// Phase says how far a supervisor got.
type Phase string

// The phases of a depot.
const (
	Warm     Phase = "warm"     // the supervisor has its runtime (and its primed module) and waits for a launch
	Starting Phase = "starting" // the supervisor has its launch and is loading the module
	Running  Phase = "running"  // the module's _start function was entered
	Failed   Phase = "failed"   // the module could not be started; Error says why
	Exited   Phase = "exited"   // the module ended; Exit says how
)

// State is a supervisor's identity and what it reports about its depot.
type State struct {
	Phase     Phase              `json:"phase"`
	PID       int                `json:"pid"`
	StartedAt time.Time          `json:"startedAt,omitzero"`
	Limits    driver.LimitReport `json:"limits"`
	// Cgroup is true when the supervisor runs in a cgroup named after the depot.
	Cgroup bool `json:"cgroup,omitempty"`
}

// Status is the message a supervisor sends on each connection: its state, and why the
// start failed or how the module ended.
type Status struct {
	State State `json:"state"`
	// Error says why the module could not be started (Phase Failed), and Kind
	// classifies it (one of the Kind constants).
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Exit is set with Phase Exited.
	Exit *driver.ExitStatus `json:"exit,omitempty"`
}

// Kinds of start failure, which the agent maps to driver errors.
const (
	KindModule  = "module"  // not a valid WASI command module, or imports what is not provided
	KindMissing = "missing" // the module file cannot be read
	KindMemory  = "memory"  // the module needs more memory at start than its limit
	KindLimits  = "limits"  // limits are required but cannot be enforced
	KindListen  = "listen"  // a listener could not be opened (port in use)
)

// Message is one line from the agent to a supervisor; exactly one field is set.
type Message struct {
	Init    *Init    `json:"init,omitempty"`
	Launch  *Launch  `json:"launch,omitempty"`
	Command *Command `json:"command,omitempty"`
}

// Command asks a supervisor to act on its running module.
type Command struct {
	// Op is "stop" (end the module; the exit is recorded as stopped) or "signal".
	Op string `json:"op"`
	// Signal is the signal name for Op "signal": SIGTERM or SIGINT end the module.
	Signal string `json:"signal,omitempty"`
}

// Writer writes JSON lines to a connection.
type Writer struct{ w io.Writer }

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes v as one line.
func (w *Writer) Send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	data = append(data, '\n')
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	return nil
}

// MaxLine bounds one message, so a confused peer cannot make the other side buffer
// without end. A Launch with a large environment is the biggest message.
const MaxLine = 4 << 20

// Reader reads JSON lines from a connection.
type Reader struct{ s *bufio.Scanner }

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), MaxLine)
	return &Reader{s: s}
}

// Next decodes the next line into v. It returns io.EOF when the peer closed the
// connection between messages.
func (r *Reader) Next(v any) error {
	if !r.s.Scan() {
		if err := r.s.Err(); err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		return io.EOF
	}
	if err := json.Unmarshal(r.s.Bytes(), v); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}
