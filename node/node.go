package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"qnet.dev/qnet/agent"
	"qnet.dev/qnet/api"
	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/controller"
	execdriver "qnet.dev/qnet/driver/exec"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/orderer"
	"qnet.dev/qnet/portalloc"
	"qnet.dev/qnet/state"
	"qnet.dev/qnet/version"
)

// Config configures a running node.
type Config struct {
	DataDir string
	// APIAddr is where the HTTP API listens ("127.0.0.1:7700"; port 0 picks one). Empty
	// means the address the ledger records for this node (the one given to qnet init, or
	// where it last listened), else DefaultAPIAddr: the address the operator's context
	// names.
	APIAddr string
	// Host is the address depots are reached at.
	Host string
	// ShimBinary is the executable with the `shim` subcommand (default: this one).
	ShimBinary string
	// PathDirs go before PATH for depots (default: the directory of this executable).
	PathDirs []string
	// CPU and Memory override what the node offers (zero: the whole machine).
	CPU, Memory int64
	// PortRange is where depot ports are allocated.
	PortLo, PortHi int
	// Orderer tunes ordering; zero values take orderer.DefaultConfig's.
	Orderer orderer.Config
	// Agent tunes the agent; zero values take agent.DefaultConfig's.
	Agent  agent.Config
	Logger *slog.Logger
}

// DefaultAPIAddr is where a node's API listens unless told otherwise.
const DefaultAPIAddr = "127.0.0.1:7700"

// DefaultConfig returns a configuration for the data dir.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, APIAddr: DefaultAPIAddr, Host: "127.0.0.1", PortLo: 20000, PortHi: 32767, Logger: slog.Default()}
}

// Node is a running node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	key   *identity.Key
	id    string
	name  string
	store *state.Store
	ord   *orderer.Orderer
	agent *agent.Agent
	drv   *execdriver.Driver
	api   *apiserver.Server
	http  *http.Server
	ln    net.Listener
	limit string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// ErrNotInitialised is returned by Start for a data dir without a network.
var ErrNotInitialised = errors.New("data dir holds no network")

// Start opens the node's data dir and starts every part. It returns once the API
// listens and an ordering leader is known.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.PortLo == 0 {
		cfg.PortLo, cfg.PortHi = 20000, 32767
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, StateFile)); err != nil {
		return nil, fmt.Errorf("start node: %w: %s has no %s (create a network with qnet init --data-dir %s, or run qnet dev)", ErrNotInitialised, cfg.DataDir, StateFile, cfg.DataDir)
	}
	key, err := identity.Load(filepath.Join(cfg.DataDir, NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	n := &Node{cfg: cfg, key: key, id: key.ID(), log: cfg.Logger.With("node", key.ID())}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if n.store, err = state.Open(filepath.Join(cfg.DataDir, StateFile)); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.store.Close() })
	tip, ok, err := n.store.Tip()
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("start node: %w: the state store has no genesis block", ErrNotInitialised)
	}
	self, ok, err := n.store.Node(n.id)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("start node: this node (%s) is not a member of network %s", n.id, tip.Name)
	}
	n.name = self.Name
	if cfg.APIAddr == "" {
		cfg.APIAddr = self.Addr
		if cfg.APIAddr == "" {
			cfg.APIAddr = DefaultAPIAddr
		}
		n.cfg.APIAddr = cfg.APIAddr
	}

	n.ln, err = net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("start node: API address %s: %w (is another qnet running? choose another with --api-addr)", cfg.APIAddr, err)
	}
	closers = append(closers, func() { n.ln.Close() })

	oc := orderer.DefaultConfig()
	if cfg.Orderer.MaxBlockTxs != 0 {
		oc.MaxBlockTxs = cfg.Orderer.MaxBlockTxs
	}
	oc.NodeID, oc.Dir, oc.Key, oc.Store, oc.Logger = n.id, filepath.Join(cfg.DataDir, RaftDir), key, n.store, n.log
	oc.Bootstrap = self.Validator
	// A network of one has no peer to talk to; the mesh gives multi-node networks their
	// transport.
	_, oc.Transport = raft.NewInmemTransport(raft.ServerAddress(n.id))
	if n.ord, err = orderer.New(oc); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.ord.Close() })

	shim := cfg.ShimBinary
	if shim == "" {
		if shim, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start node: find own executable for the depot shim: %w", err)
		}
	}
	pathDirs := cfg.PathDirs
	if pathDirs == nil {
		if exe, err := os.Executable(); err == nil {
			pathDirs = []string{filepath.Dir(exe)}
		}
	}
	// Each node has its own cgroup parent, so several nodes can share a machine (testnet).
	drv, err := execdriver.New(execdriver.Config{
		Dir: filepath.Join(cfg.DataDir, DepotDir), ShimBinary: shim, Logger: n.log,
		CgroupParent: "qnet-" + n.id,
	})
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	n.drv = drv
	n.limit = drv.LimitSupport()

	ac := agent.DefaultConfig()
	if cfg.Agent.ReportInterval != 0 {
		ac.ReportInterval = cfg.Agent.ReportInterval
	}
	if cfg.Agent.StopGrace != 0 {
		ac.StopGrace = cfg.Agent.StopGrace
	}
	ac.NodeID, ac.Store, ac.Driver, ac.Host, ac.PathDirs, ac.Log = n.id, n.store, drv, cfg.Host, pathDirs, n.log
	if ac.Ports, err = portalloc.New(cfg.PortLo, cfg.PortHi); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	ac.Report = n.reportStatus
	if n.agent, err = agent.New(ac); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}

	n.api = apiserver.New(n, n.log)
	closers = append(closers, n.api.Close)
	n.http = &http.Server{
		Handler:           n.api,
		TLSConfig:         ServerTLS(key, n.name),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}

	rctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() {
		if err := n.http.ServeTLS(n.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server stopped", "err", err)
		}
	})
	runner := &controller.Runner{Store: n.store, IsLeader: n.ord.IsLeader, Propose: n.proposePlacements, Log: n.log, Settle: 5 * time.Millisecond}
	n.wg.Go(func() { runner.Run(rctx) })
	n.wg.Go(func() {
		if err := n.agent.Run(rctx); err != nil {
			n.log.Error("agent stopped", "err", err)
		}
	})
	closers = append(closers, func() { n.stopLoops() })

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := n.ord.WaitLeader(wctx); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if err := n.updateSelf(ctx, self); err != nil {
		n.log.Warn("could not record this node's address and capacity", "err", err)
	}
	n.log.Info("node started", "network", tip.Name, "api", n.APIAddr(), "validator", self.Validator)
	return n, nil
}

// updateSelf records this node's address and capacity when they changed since it was
// last recorded.
func (n *Node) updateSelf(ctx context.Context, self state.Node) error {
	info := self.NodeInfo
	info.Addr = n.APIAddr()
	info.OS, info.Arch = runtime.GOOS, runtime.GOARCH
	info.CPU, info.Memory = n.cfg.CPU, n.cfg.Memory
	fillCapacity(&info)
	if reflect.DeepEqual(info, self.NodeInfo) || !n.ord.IsLeader() {
		return nil
	}
	return n.propose(ctx, ledger.TxNodeUpdate, ledger.NodeUpdate{Node: info})
}

// ID is the node's ID.
func (n *Node) ID() string { return n.id }

// APIAddr is where the API listens.
func (n *Node) APIAddr() string { return n.ln.Addr().String() }

// Key is the node's identity.
func (n *Node) Key() *identity.Key { return n.key }

// Store implements apiserver.Backend.
func (n *Node) Store() *state.Store { return n.store }

// Agent is the node's agent.
func (n *Node) Agent() *agent.Agent { return n.agent }

// Alive implements apiserver.Backend. A network of one knows only itself.
func (n *Node) Alive(id string) bool { return true }

// Leader implements apiserver.Backend.
func (n *Node) Leader() string {
	_, id := n.ord.Raft().LeaderWithID()
	return string(id)
}

// LogPaths implements apiserver.Backend.
func (n *Node) LogPaths(id string) (string, string, bool) { return n.agent.LogPaths(id) }

// Status implements apiserver.Backend.
func (n *Node) Status() api.Status {
	tip, _, _ := n.store.Tip()
	leader := n.Leader()
	return api.Status{
		Node: n.id, NodeName: n.name, Network: tip.Name, NetworkID: tip.Network.String(),
		Version: version.Version, Leader: leader, IsLeader: leader == n.id,
		Height: tip.Height, Tip: tip.Hash.String(), TipTime: tip.Time, APIAddr: n.APIAddr(),
		CgroupLimit: n.limit,
	}
}

// Submit implements apiserver.Backend: every transaction is checked at the door, and
// those that pass are ordered.
func (n *Node) Submit(ctx context.Context, txs []*ledger.Tx) ([]orderer.Result, error) {
	out := make([]orderer.Result, len(txs))
	var ok []*ledger.Tx
	var idx []int
	now := time.Now()
	for i, t := range txs {
		out[i].ID = t.ID()
		if err := n.store.CheckTx(t, now); err != nil {
			out[i].Err = err
			continue
		}
		ok = append(ok, t)
		idx = append(idx, i)
	}
	if len(ok) == 0 {
		return out, nil
	}
	res, err := n.ord.Submit(ctx, ok)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[idx[j]] = r
	}
	return out, nil
}

// propose signs a transaction with the node's key and orders it.
func (n *Node) propose(ctx context.Context, typ ledger.TxType, payload any) error {
	tip, _, err := n.store.Tip()
	if err != nil {
		return err
	}
	t, err := ledger.NewTx(typ, tip.Network, payload, time.Now().Add(10*time.Minute))
	if err != nil {
		return err
	}
	if err := t.Sign(n.key); err != nil {
		return err
	}
	res, err := n.Submit(ctx, []*ledger.Tx{t})
	if err != nil {
		return err
	}
	return res[0].Err
}

func (n *Node) proposePlacements(ctx context.Context, set ledger.PlacementSet) error {
	return n.propose(ctx, ledger.TxPlacement, set)
}

func (n *Node) reportStatus(ctx context.Context, changes []ledger.DepotStatus) error {
	return n.propose(ctx, ledger.TxDepotStatus, ledger.DepotStatusReport{Node: n.id, Depots: changes})
}

// StopDepots stops every depot on this node and keeps it from starting more; `qnet dev`
// calls it on Ctrl-C so nothing is left running.
func (n *Node) StopDepots(ctx context.Context) error { return n.agent.Shutdown(ctx) }

func (n *Node) stopLoops() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
}

// Close stops the node. Depots keep running unless StopDepots was called first; the
// next start of the node adopts them.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	n.once.Do(func() {
		if err := n.http.Shutdown(ctx); err != nil {
			n.http.Close()
		}
		n.api.Close()
		n.stopLoops()
		errs = append(errs, n.ord.Close(), n.store.Close(), n.drv.Close())
	})
	return errors.Join(errs...)
}

// ServerTLS is the API's TLS configuration: TLS 1.3 with a self-signed certificate of
// the node's Ed25519 key, which clients pin (see client.PinKey).
func ServerTLS(key *identity.Key, name string) *tls.Config {
	cert, err := selfSigned(key, name)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Hybrid post-quantum first; X25519 stays for API clients (curl) that lack it.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert, err
		},
	}
}
