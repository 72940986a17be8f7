package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// StateFile is the name of the state file in a testnet's directory.
const StateFile = "testnet.json"

// stateVersion is the version of the state file's format this code writes and reads.
const stateVersion = 1

// MaxNodes bounds the size of a testnet: gids and addresses are numbered per node, and
// a /24 holds at most 253 of them besides the bridge.
const MaxNodes = 200

// State is what a testnet records about itself in StateFile, so that later commands,
// run by other processes, find its nodes, their processes and its network set-up.
type State struct {
	Version int `json:"version"`
	// Name names the testnet; its context in the user's context file is "testnet-"+Name.
	Name string `json:"name"`
	// Network is the QNet network's name (qnet init --network).
	Network string `json:"network"`
	// Binary is the qnet executable the agents run.
	Binary string `json:"binary"`
	// UserConfig is the user's context file that holds the testnet's context.
	UserConfig string `json:"userConfig,omitempty"`
	// NetNS is set when every node runs in a network namespace of its own.
	NetNS *NetNS `json:"netns,omitempty"`
	// Partition is the partition in place, if any.
	Partition *Partition `json:"partition,omitempty"`
	Nodes     []Node     `json:"nodes"`
}

// NetNS is the network set-up of a testnet whose nodes have namespaces of their own:
// a bridge in the root namespace with an address of the subnet, and one veth pair per
// node.
type NetNS struct {
	Bridge string `json:"bridge"`
	// Subnet is the nodes' /24, e.g. 10.77.0.0/24; the bridge has its .254.
	Subnet string `json:"subnet"`
}

// Partition is a cut between two groups of nodes (their indexes).
type Partition struct {
	Groups [2][]int `json:"groups"`
}

// Node is one node of a testnet.
type Node struct {
	// Index numbers the node from 1; Name is "node<Index>".
	Index int    `json:"index"`
	Name  string `json:"name"`
	// ID is the node's ID, known once its key exists.
	ID      string `json:"id,omitempty"`
	DataDir string `json:"dataDir"`
	Log     string `json:"log"`
	API     string `json:"api"`
	Mesh    string `json:"mesh"`
	// PID and PIDStart (clock ticks after boot) identify the agent process, so that a
	// reused PID is never taken for it.
	PID      int    `json:"pid,omitempty"`
	PIDStart uint64 `json:"pidStart,omitempty"`
	// GID is the group ID the agent runs with, by which partitions on the loopback
	// tell its connections apart (0: it runs with the caller's).
	GID uint32 `json:"gid,omitempty"`
	// Namespace and Veth name the node's network namespace and the root side of its
	// veth pair (with --netns).
	Namespace string `json:"namespace,omitempty"`
	Veth      string `json:"veth,omitempty"`
}

// namePattern is what testnet names may look like: they become parts of context,
// namespace and nftables table names.
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// ValidateName checks a testnet name.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("testnet name %q: want 1 to 32 lower-case letters, digits and inner '-', e.g. local", name)
	}
	return nil
}

// Validate checks a state read from disk, so that no later step acts on nonsense
// (killing PID 0, a node without a data dir).
func (s *State) Validate() error {
	if s.Version != stateVersion {
		return fmt.Errorf("version %d: this qnet reads version %d", s.Version, stateVersion)
	}
	if err := ValidateName(s.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if s.Network == "" {
		return errors.New("network: empty")
	}
	if !filepath.IsAbs(s.Binary) {
		return fmt.Errorf("binary %q: want an absolute path", s.Binary)
	}
	if len(s.Nodes) == 0 || len(s.Nodes) > MaxNodes {
		return fmt.Errorf("nodes: %d, want 1 to %d", len(s.Nodes), MaxNodes)
	}
	if s.NetNS != nil {
		if s.NetNS.Bridge == "" {
			return errors.New("netns.bridge: empty")
		}
		if _, _, err := net.ParseCIDR(s.NetNS.Subnet); err != nil {
			return fmt.Errorf("netns.subnet: %w", err)
		}
	}
	seenID := map[string]bool{}
	for i, n := range s.Nodes {
		where := fmt.Sprintf("nodes[%d]", i)
		if n.Index != i+1 {
			return fmt.Errorf("%s.index: %d, want %d (nodes are numbered from 1 in order)", where, n.Index, i+1)
		}
		if n.Name != nodeName(n.Index) {
			return fmt.Errorf("%s.name: %q, want %q", where, n.Name, nodeName(n.Index))
		}
		if n.ID != "" {
			if seenID[n.ID] {
				return fmt.Errorf("%s.id: %s appears twice", where, n.ID)
			}
			seenID[n.ID] = true
		}
		if !filepath.IsAbs(n.DataDir) || !filepath.IsAbs(n.Log) {
			return fmt.Errorf("%s: dataDir %q and log %q must be absolute paths", where, n.DataDir, n.Log)
		}
		if _, err := splitPort(n.API); err != nil {
			return fmt.Errorf("%s.api: %w", where, err)
		}
		if _, err := splitPort(n.Mesh); err != nil {
			return fmt.Errorf("%s.mesh: %w", where, err)
		}
		if n.PID < 0 {
			return fmt.Errorf("%s.pid: %d", where, n.PID)
		}
		if (s.NetNS != nil) != (n.Namespace != "") {
			return fmt.Errorf("%s.namespace: %q does not fit a testnet with netns %v", where, n.Namespace, s.NetNS != nil)
		}
	}
	if p := s.Partition; p != nil {
		seen := map[int]bool{}
		for g, group := range p.Groups {
			if len(group) == 0 {
				return fmt.Errorf("partition.groups[%d]: empty", g)
			}
			for _, idx := range group {
				if idx < 1 || idx > len(s.Nodes) || seen[idx] {
					return fmt.Errorf("partition.groups[%d]: node %d is not a node of the testnet, or is in both groups", g, idx)
				}
				seen[idx] = true
			}
		}
	}
	return nil
}

// nodeName is the name of the node with index i.
func nodeName(i int) string { return "node" + strconv.Itoa(i) }

// splitPort checks a host:port address with a literal IP and returns its port.
func splitPort(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return 0, fmt.Errorf("address %q: want an IP address, not %q", addr, host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("address %q: port %q, want 1 to 65535", addr, port)
	}
	return p, nil
}

// DecodeState decodes and validates a state file's content. Unknown fields are
// refused: a state file is only ever written by qnet testnet.
func DecodeState(data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode: data after the state object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// ErrNoTestnet is returned when a directory holds no testnet.
var ErrNoTestnet = errors.New("no testnet")

// LoadState reads the state file of the testnet in dir.
func LoadState(dir string) (*State, error) {
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (no %s; start one with qnet testnet up)", ErrNoTestnet, dir, StateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read testnet state: %w", err)
	}
	s, err := DecodeState(data)
	if err != nil {
		return nil, fmt.Errorf("testnet state %s: %w", path, err)
	}
	return s, nil
}

// SaveState writes the state file of the testnet in dir, atomically: a reader sees the
// old file or the new one, whichever process dies when.
func SaveState(dir string, s *State) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("save testnet state: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save testnet state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".testnet-*.json")
	if err != nil {
		return fmt.Errorf("save testnet state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, StateFile))
	}
	if err != nil {
		return fmt.Errorf("save testnet state: %w", err)
	}
	return nil
}

// Lookup finds a node by its index ("3"), name ("node3") or ID.
func (s *State) Lookup(ref string) (*Node, error) {
	ref = strings.TrimSpace(ref)
	if i, err := strconv.Atoi(ref); err == nil {
		if i < 1 || i > len(s.Nodes) {
			return nil, fmt.Errorf("node %d: the testnet has nodes 1 to %d", i, len(s.Nodes))
		}
		return &s.Nodes[i-1], nil
	}
	for i := range s.Nodes {
		if n := &s.Nodes[i]; n.Name == ref || (n.ID != "" && n.ID == ref) {
			return n, nil
		}
	}
	return nil, fmt.Errorf("node %q: not a node of testnet %q (give an index 1 to %d, a name such as node1, or a node ID)", ref, s.Name, len(s.Nodes))
}
