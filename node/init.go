// Package node assembles a QNet node from its parts: identity, state store, ordering
// (raft), the agent that runs depots, the controllers, and the HTTP API. `qnet agent`
// and `qnet dev` run a Node; tests start several in one process.
package node

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// Files in a node's data dir.
const (
	NodeKeyFile     = "node.key"
	OperatorKeyFile = "operator.key"
	StateFile       = "state.db"
	RaftDir         = "raft"
	DepotDir        = "depots"
	StoreDir        = "store"
)

// InitOptions say how to create a new network.
type InitOptions struct {
	DataDir  string
	Network  string
	Operator string
	NodeName string
	// APIAddr is where this node's API will listen; it is recorded for other nodes.
	APIAddr string
	// MeshAddr is where this node's tunnels will be accepted.
	MeshAddr string
	// CPU (millicores) and Memory (bytes) offered to depots; zero means all of the machine.
	CPU, Memory int64
	Labels      map[string]string
}

// InitResult is what `qnet init` tells the operator. Token is shown once and kept
// nowhere else but in the operator's context file.
type InitResult struct {
	NodeID      string
	NetworkID   ledger.Hash
	Token       string
	OperatorKey string
}

// ErrInitialised is returned by Init for a data dir that already holds a network.
var ErrInitialised = errors.New("data dir already holds a network")

// Init creates a new network of one node in opts.DataDir: the node's keys, the first
// operator's keys and token, and the genesis block, applied to a new state store.
func Init(opts InitOptions) (*InitResult, error) {
	if opts.DataDir == "" || opts.Network == "" || opts.Operator == "" {
		return nil, errors.New("init: data dir, network name and operator name are required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if _, err := os.Stat(filepath.Join(opts.DataDir, StateFile)); err == nil {
		return nil, fmt.Errorf("init %s: %w (start it with qnet agent --data-dir %s, or choose an empty dir)", opts.DataDir, ErrInitialised, opts.DataDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("init: %w", err)
	}
	nodeKey, err := identity.LoadOrGenerate(filepath.Join(opts.DataDir, NodeKeyFile), true)
	if err != nil {
		return nil, fmt.Errorf("init: node key: %w", err)
	}
	opPath := filepath.Join(opts.DataDir, OperatorKeyFile)
	opKey, err := identity.LoadOrGenerate(opPath, false)
	if err != nil {
		return nil, fmt.Errorf("init: operator key: %w", err)
	}
	token, err := NewToken()
	if err != nil {
		return nil, err
	}
	name := opts.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	info := ledger.NodeInfo{
		ID: nodeKey.ID(), Name: name, Key: nodeKey.Public(), Addr: opts.APIAddr, Mesh: opts.MeshAddr,
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPU: opts.CPU, Memory: opts.Memory, Labels: opts.Labels,
	}
	fillCapacity(&info)
	g := &ledger.Genesis{
		Network: opts.Network, Created: time.Now().UTC(),
		Operators:  []ledger.Operator{{Name: opts.Operator, Key: opKey.Public(), TokenHash: apiserver.TokenHash(token)}},
		Nodes:      []ledger.NodeInfo{info},
		Validators: []string{info.ID},
	}
	gb, err := ledger.NewGenesis(g, opKey, nodeKey)
	if err != nil {
		return nil, fmt.Errorf("init: genesis: %w", err)
	}
	data, err := gb.Encode()
	if err != nil {
		return nil, err
	}
	st, err := state.Open(filepath.Join(opts.DataDir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	defer st.Close()
	if _, err := st.ApplyBlock(data, 0); err != nil {
		return nil, fmt.Errorf("init: apply genesis: %w", err)
	}
	if err := initSecretKey(st, gb.Hash, nodeKey, time.Now()); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return &InitResult{NodeID: info.ID, NetworkID: gb.Hash, Token: token, OperatorKey: opPath}, nil
}

// NewToken makes an operator API token: 256 random bits.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return "qnet_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// fillCapacity sets CPU and memory to the machine's when they were not given.
func fillCapacity(n *ledger.NodeInfo) {
	if n.CPU == 0 {
		n.CPU = int64(runtime.NumCPU()) * 1000
	}
	if n.Memory == 0 {
		n.Memory = totalMemory()
	}
}
