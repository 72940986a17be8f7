package node

import (
	"context"
	"crypto/tls"
	"encoding/hex"
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

	"qnet.dev/qnet/agent"
	"qnet.dev/qnet/api"
	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/controller"
	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
	execdriver "qnet.dev/qnet/driver/exec"
	"qnet.dev/qnet/driver/oci"
	"qnet.dev/qnet/driver/wasm"
	"qnet.dev/qnet/gossip"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/netsvc/dns"
	"qnet.dev/qnet/netsvc/ingress"
	"qnet.dev/qnet/netsvc/proxy"
	"qnet.dev/qnet/netsvc/receipt"
	"qnet.dev/qnet/orderer"
	"qnet.dev/qnet/portalloc"
	"qnet.dev/qnet/state"
	"qnet.dev/qnet/swarm"
	"qnet.dev/qnet/tunnel"
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
	// MeshAddr is where the node's tunnels are accepted. Empty means the address the
	// ledger records for this node, else DefaultMeshAddr.
	MeshAddr string
	// Join, with Token, admits a new node (an empty data dir) to an existing network
	// through the node at this mesh address.
	Join, Token string
	// Name names a joining node (default: the host name).
	Name string
	// Labels are a joining node's labels.
	Labels map[string]string
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
	// Gossip is the failure detector's profile: gossip.LAN (default) or gossip.WAN.
	Gossip gossip.Profile
	// Stabilize is how long a validator must be down before another replaces it.
	Stabilize time.Duration
	// Tunnel tunes the tunnels (rekey interval and bytes); zero values take
	// tunnel.DefaultConfig's.
	Tunnel tunnel.Config
	// Orderer tunes ordering; zero values take orderer.DefaultConfig's.
	Orderer orderer.Config
	// Agent tunes the agent; zero values take agent.DefaultConfig's.
	Agent agent.Config
	// DNSAddr is where the node answers DNS for SERVICE.NETWORK.qnet (UDP and TCP; port
	// 0 picks one); empty means no DNS server.
	DNSAddr string
	// IngressAddr is where the node takes HTTP traffic from outside for exposed
	// services (port 0 picks one); empty means no ingress. Other exposed tcp ports
	// listen on the same host, on their own port numbers.
	IngressAddr string
	// ReceiptCommit is how often the node commits its transfer receipts to the ledger
	// as a batch root (default 10s).
	ReceiptCommit time.Duration
	// ProxyBind, when set, says where the proxy listens for a service port instead of
	// the service's VIP and port (tests that run several nodes on one loopback).
	ProxyBind func(netsvc.ServicePort) string
	// UDPIdleTimeout ends a UDP session of the proxy that carried no datagram for that
	// long; 0 means the proxy's default (proxy.DefaultUDPIdleTimeout).
	UDPIdleTimeout time.Duration
	Logger         *slog.Logger
}

// Default addresses of a node.
const (
	DefaultAPIAddr  = "127.0.0.1:7700"
	DefaultMeshAddr = "127.0.0.1:7701"
	DefaultDNSAddr  = "127.0.0.1:7753"
	// DefaultIngressAddr takes outside traffic on every interface, as every node's
	// ingress should.
	DefaultIngressAddr = ":7780"
)

// DefaultConfig returns a configuration for the data dir.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, APIAddr: DefaultAPIAddr, DNSAddr: DefaultDNSAddr, IngressAddr: DefaultIngressAddr, Host: "127.0.0.1", PortLo: 20000, PortHi: 32767,
		Stabilize: 10 * time.Second, Logger: slog.Default()}
}

// Node is a running node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	key    *identity.Current
	id     string
	name   string
	store  *state.Store
	mesh   *mesh.Mesh
	gossip *gossip.Gossip
	ord    *orderer.Orderer
	agent  *agent.Agent
	drv    *execdriver.Driver
	api    *apiserver.Server
	http   *http.Server
	ln     net.Listener
	limit  string
	peers  *peers
	member *membership
	depots *depot.Store
	swarm  *swarm.Swarm
	raftLn *mesh.ServiceListener
	oci    *oci.Driver
	// Network services: what the ledger says of services and replicas, the proxy of
	// their stable addresses, DNS.
	catalog  *catalog
	proxy    *proxy.Proxy
	dns      *dns.Server
	ingress  *ingress.Ingress
	receipts *receipt.Log
	wasm     *wasm.Driver
	// rotateMu serialises key rotations.
	rotateMu sync.Mutex
	// secrets holds the network key (on validators) and the depots' secret mounts.
	secrets *secrets

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// ErrNotInitialised is returned by Start for a data dir without a network.
var ErrNotInitialised = errors.New("data dir holds no network")

// Start opens the node's data dir and starts every part. A node with an empty data dir
// and a join token first joins its network. It returns once the API listens and an
// ordering leader is known.
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
	if cfg.Stabilize == 0 {
		cfg.Stabilize = 10 * time.Second
	}
	joining := false
	if _, err := os.Stat(filepath.Join(cfg.DataDir, StateFile)); err != nil {
		if cfg.Join == "" && cfg.Token == "" {
			return nil, fmt.Errorf("start node: %w: %s has no %s (create a network with qnet init --data-dir %s, join one with --join ADDR --token T, or run qnet dev)", ErrNotInitialised, cfg.DataDir, StateFile, cfg.DataDir)
		}
		if cfg.Token == "" {
			return nil, errors.New("start node: --join needs --token (create one on a member with qnet token create)")
		}
		joining = true
	}
	var key *identity.Key
	if joining {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
		key, err = identity.LoadOrGenerate(filepath.Join(cfg.DataDir, NodeKeyFile), true)
	} else {
		key, err = identity.Load(filepath.Join(cfg.DataDir, NodeKeyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	n := &Node{cfg: cfg, key: identity.NewCurrent(key), id: key.ID(), log: cfg.Logger}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			if joining {
				// A failed join leaves no half-made state behind: the next try starts clean.
				os.Remove(filepath.Join(cfg.DataDir, StateFile))
			}
		}
	}()

	if n.store, err = state.Open(filepath.Join(cfg.DataDir, StateFile)); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.store.Close() })
	// A rotation that a crash interrupted is finished (or dropped) before the key is used.
	err = adoptRotation(cfg.DataDir, func(id string) bool { _, ok, _ := n.store.Key(id); return ok })
	if err == nil && !joining {
		key, err = identity.Load(filepath.Join(cfg.DataDir, NodeKeyFile))
		n.key.Set(key)
	}
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	// A node keeps its ID when its keys rotate: the ledger knows it as the owner of the
	// key it holds now.
	if info, ok, _ := n.store.Key(key.ID()); ok {
		n.id = info.Owner
	}
	n.log = cfg.Logger.With("node", n.id)
	var self state.Node
	if !joining {
		var ok bool
		if self, ok, err = n.store.Node(n.id); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		} else if !ok {
			tip, _, _ := n.store.Tip()
			return nil, fmt.Errorf("start node: this node (%s) is not a member of network %s (it was removed, or its data dir is from another network)", n.id, tip.Name)
		}
		n.name = self.Name
		if cfg.APIAddr == "" {
			cfg.APIAddr = orDefault(self.Addr, DefaultAPIAddr)
		}
		if cfg.MeshAddr == "" {
			cfg.MeshAddr = orDefault(self.Mesh, DefaultMeshAddr)
		}
	} else {
		n.name = cfg.Name
		if n.name == "" {
			n.name, _ = os.Hostname()
		}
		cfg.APIAddr = orDefault(cfg.APIAddr, DefaultAPIAddr)
		cfg.MeshAddr = orDefault(cfg.MeshAddr, DefaultMeshAddr)
	}
	n.cfg = cfg

	n.ln, err = net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("start node: API address %s: %w (is another qnet running? choose another with --api-addr)", cfg.APIAddr, err)
	}
	closers = append(closers, func() { n.ln.Close() })

	n.peers = &peers{st: n.store}
	n.mesh, err = mesh.New(mesh.Config{
		NodeID: n.id, Tunnel: n.tunnelConfig(), Resolve: resolveMesh(n.store), Logger: n.log,
	}, cfg.MeshAddr)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.mesh.Close() })

	if joining {
		if err := n.join(ctx, cfg.Join, cfg.Token); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
		if self, _, err = n.store.Node(n.id); err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
	}
	tip, _, err := n.store.Tip()
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}

	oc := orderer.DefaultConfig()
	if cfg.Orderer.MaxBlockTxs != 0 {
		oc.MaxBlockTxs = cfg.Orderer.MaxBlockTxs
	}
	oc.NodeID, oc.Dir, oc.Key, oc.Store, oc.Logger = n.id, filepath.Join(cfg.DataDir, RaftDir), n.key, n.store, n.log
	// Only the network's first validator starts the ordering layer; every other node is
	// added to it by the leader once the ledger admits it.
	oc.Bootstrap = self.Validator && self.Height == 0
	n.raftLn = n.mesh.Listen("raft")
	oc.Transport = orderer.NewTransport(n.raftLn, n.log)
	if n.ord, err = orderer.New(oc); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.ord.Close() })

	n.member = &membership{n: n, stabilize: cfg.Stabilize, kick: make(chan struct{}, 1), downSince: map[string]time.Time{}}
	n.gossip, err = gossip.New(gossip.Config{
		NodeID: n.id, Mesh: n.mesh, Resolve: resolveMesh(n.store), ResolveAddr: resolveMeshAddr(n.store),
		Profile: cfg.Gossip, OnChange: n.member.wake, Logger: n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	closers = append(closers, func() { n.gossip.Shutdown() })

	if n.depots, err = depot.Open(filepath.Join(cfg.DataDir, StoreDir)); err != nil {
		return nil, fmt.Errorf("start node: depot store: %w", err)
	}
	n.swarm = swarm.New(swarm.Config{Mesh: n.mesh, Store: n.depots, Peers: n.livePeers, Logger: n.log})

	n.mesh.HandleRPC("join", true, n.handleJoin)
	n.mesh.HandleRPC("submit", false, n.handleSubmit)
	n.mesh.Handle("logs", false, n.serveLogs)

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
	if cfg.Agent.DrainDelay != 0 {
		ac.DrainDelay = cfg.Agent.DrainDelay
	}
	ac.NodeID, ac.Store, ac.Host, ac.PathDirs, ac.Log = n.id, n.store, cfg.Host, pathDirs, n.log
	ac.Drivers = map[string]driver.Driver{manifest.DepotExec: drv}
	// Containers need runc and root; a node without them runs exec and wasm depots, and
	// says why image depots cannot run here.
	if od, err := oci.New(oci.Config{
		Dir: filepath.Join(cfg.DataDir, "oci"), Images: n.depots, ShimBinary: shim, Logger: n.log,
		CgroupParent: "qnet-" + n.id,
	}); err != nil {
		n.log.Warn("image depots cannot run on this node", "err", err)
	} else {
		n.oci = od
		ac.Drivers[manifest.DepotImage] = od
	}
	// WebAssembly modules run wherever the node does (no root, any OS); the driver's
	// directory must be short enough for its control sockets.
	if wd, err := wasm.New(wasm.Config{
		Dir: filepath.Join(cfg.DataDir, "wasm"), ShimBinary: shim, Logger: n.log,
		CgroupParent: "qnet-" + n.id,
	}); err != nil {
		n.log.Warn("wasm depots cannot run on this node", "err", err)
	} else {
		n.wasm = wd
		ac.Drivers[manifest.DepotWasm] = wd
	}
	if ac.Ports, err = portalloc.New(cfg.PortLo, cfg.PortHi); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	ac.Report = n.reportStatus
	ac.Prepare = n.prepareDepot
	ac.Ready = n.caughtUp
	ac.DNS = n.DNSAddr
	n.initSecrets(&ac)
	if n.agent, err = agent.New(ac); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}

	n.api = apiserver.New(n, n.log)
	closers = append(closers, n.api.Close)
	n.http = &http.Server{
		Handler:           n.api,
		TLSConfig:         serverTLS(n.key, n.name),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}

	rctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if err := n.startNetServices(rctx); err != nil {
		cancel()
		return nil, fmt.Errorf("start node: %w", err)
	}
	n.wg.Go(func() {
		if err := n.http.ServeTLS(n.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server stopped", "err", err)
		}
	})
	runner := &controller.Runner{Store: n.store, IsLeader: n.ord.IsLeader, Alive: n.Alive, Propose: n.proposePlacements, Log: n.log, Settle: 5 * time.Millisecond,
		ProposeRollout: func(ctx context.Context, st ledger.RolloutStatus) error {
			return n.propose(ctx, ledger.TxRolloutStatus, st)
		}}
	n.wg.Go(func() { runner.Run(rctx) })
	n.wg.Go(func() { n.member.run(rctx) })
	n.wg.Go(func() { n.watchRevocations(rctx) })
	n.wg.Go(func() { n.keepGossiping(rctx) })
	n.wg.Go(func() { n.collectDepots(rctx) })
	n.wg.Go(func() { n.keepNetworkKey(rctx) })
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
	n.log.Info("node started", "network", tip.Name, "api", n.APIAddr(), "mesh", n.mesh.Addr(), "validator", self.Validator)
	return n, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tunnelConfig is the configuration of this node's tunnels.
func (n *Node) tunnelConfig() tunnel.Config {
	c := tunnel.DefaultConfig()
	if n.cfg.Tunnel.RekeyInterval != 0 {
		c.RekeyInterval = n.cfg.Tunnel.RekeyInterval
	}
	if n.cfg.Tunnel.RekeyBytes != 0 {
		c.RekeyBytes = n.cfg.Tunnel.RekeyBytes
	}
	c.Key, c.NodeID, c.Peers, c.AllowUnregistered, c.Logger = n.key.Get(), n.id, n.peers, true, n.log
	return c
}

// keepGossiping joins the gossip ring through the other nodes the ledger knows, and
// again whenever this node finds itself alone while others exist.
func (n *Node) keepGossiping(ctx context.Context) {
	for {
		nodes, err := n.store.Nodes()
		if err == nil && len(n.gossip.Members()) < 2 && len(nodes) > 1 {
			var others []string
			for _, nd := range nodes {
				if nd.ID != n.id {
					others = append(others, nd.ID)
				}
			}
			if _, err := n.gossip.Join(others); err != nil {
				n.log.Debug("gossip join", "err", err)
			}
		}
		if !ctxtime.Sleep(ctx, time.Second) {
			return
		}
	}
}

// updateSelf records this node's address and capacity when they changed since it was
// last recorded.
func (n *Node) updateSelf(ctx context.Context, self state.Node) error {
	info := self.NodeInfo
	info.Addr, info.Mesh = n.APIAddr(), n.mesh.Addr()
	info.OS, info.Arch = runtime.GOOS, runtime.GOARCH
	info.CPU, info.Memory = n.cfg.CPU, n.cfg.Memory
	fillCapacity(&info)
	if reflect.DeepEqual(info, self.NodeInfo) {
		return nil
	}
	return n.propose(ctx, ledger.TxNodeUpdate, ledger.NodeUpdate{Node: info})
}

// ID is the node's ID.
func (n *Node) ID() string { return n.id }

// APIAddr is where the API listens.
func (n *Node) APIAddr() string { return n.ln.Addr().String() }

// Key is the node's identity now.
func (n *Node) Key() *identity.Key { return n.key.Get() }

// Mesh is the node's mesh.
func (n *Node) Mesh() *mesh.Mesh { return n.mesh }

// Gossip is the node's membership.
func (n *Node) Gossip() *gossip.Gossip { return n.gossip }

// Depots is the node's depot store.
func (n *Node) Depots() *depot.Store { return n.depots }

// Swarm is the node's part in depot distribution.
func (n *Node) Swarm() *swarm.Swarm { return n.swarm }

// livePeers lists the other nodes gossip sees alive.
func (n *Node) livePeers() []string {
	var out []string
	for _, id := range n.gossip.Members() {
		if id != n.id {
			out = append(out, id)
		}
	}
	return out
}

// Store implements apiserver.Backend.
func (n *Node) Store() *state.Store { return n.store }

// Agent is the node's agent.
func (n *Node) Agent() *agent.Agent { return n.agent }

// Alive implements apiserver.Backend: gossip's view of the node.
func (n *Node) Alive(id string) bool { return n.gossip.Alive(id) }

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
	fp := n.key.Get().Public().Fingerprint()
	nodes, _ := n.store.Nodes()
	return api.Status{
		Node: n.id, NodeName: n.name, Network: tip.Name, NetworkID: tip.Network.String(),
		Version: version.Version, Leader: leader, IsLeader: leader == n.id,
		Height: tip.Height, Tip: tip.Hash.String(), TipTime: tip.Time, APIAddr: n.APIAddr(),
		MeshAddr: n.mesh.Addr(), DNSAddr: n.DNSAddr(), IngressAddr: n.IngressAddr(), Fingerprint: hex.EncodeToString(fp[:]),
		CgroupLimit: n.limit, Validators: validatorSet(nodes),
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
	res, err := n.order(ctx, ok)
	if err != nil {
		return nil, err
	}
	var top uint64
	for j, r := range res {
		out[idx[j]] = r
		top = max(top, r.Height)
	}
	// Read your writes: answer once this node's replica holds what was committed, so a
	// client that reads from this node next sees its own change.
	return out, n.waitHeight(ctx, top)
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
	if err := t.Sign(n.key.Get()); err != nil {
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
		// Raft's calls to unreachable peers wait for them; end them before raft stops.
		n.raftLn.Close()
		if n.receipts != nil {
			errs = append(errs, n.receipts.Close())
		}
		errs = append(errs, n.gossip.Shutdown(), n.ord.Close(), n.mesh.Close(), n.store.Close(), n.drv.Close())
		if n.oci != nil {
			errs = append(errs, n.oci.Close())
		}
		if n.wasm != nil {
			errs = append(errs, n.wasm.Close())
		}
	})
	return errors.Join(errs...)
}

// WasmDriver returns the node's wasm driver, or nil where wasm depots cannot run.
func (n *Node) WasmDriver() *wasm.Driver { return n.wasm }

// ServerTLS is the API's TLS configuration for a node with key: TLS 1.3 with a
// self-signed certificate of its Ed25519 key, which clients pin (see APIKeyPin).
func ServerTLS(key *identity.Key, name string) *tls.Config {
	return serverTLS(identity.NewCurrent(key), name)
}

// serverTLS is ServerTLS for a key that may rotate: the certificate follows it.
func serverTLS(key *identity.Current, name string) *tls.Config {
	var (
		mu   sync.Mutex
		cert *tls.Certificate
		of   *identity.Key
		cerr error
	)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Hybrid post-quantum first; X25519 stays for API clients (curl) that lack it.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			if k := key.Get(); k != of {
				cert, cerr = selfSigned(k, name)
				of = k
			}
			return cert, cerr
		},
	}
}
