// Package gossip is QNet's membership and failure detection: hashicorp/memberlist, with
// a transport that carries its packets and streams through the mesh's post-quantum
// tunnels instead of plain UDP and TCP. Tunnels already authenticate and encrypt, so
// memberlist needs no keyring of its own, and a node the ledger does not know cannot
// take part.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"qnet.dev/qnet/mesh"
)

// Services on the mesh.
const (
	packetService = "gossip.packet"
	streamService = "gossip.stream"
)

// MaxPacket bounds one gossip packet.
const MaxPacket = 64 << 10

// Profile is a set of memberlist timings.
type Profile string

// Profiles.
const (
	// LAN detects a killed node in about 2 s at small sizes.
	LAN Profile = "lan"
	// WAN tolerates the latency and loss of wide-area links.
	WAN Profile = "wan"
)

// Config configures gossip.
type Config struct {
	NodeID string
	Mesh   *mesh.Mesh
	// Resolve gives a node's mesh address (host:port), from the ledger.
	Resolve func(nodeID string) (string, bool)
	// ResolveAddr gives the node at a mesh address, for joins by address.
	ResolveAddr func(addr string) (string, bool)
	Profile     Profile
	// OnChange is called, on its own goroutine, whenever a member comes, goes or changes.
	OnChange func()
	Logger   *slog.Logger
}

// Gossip is this node's member of the gossip ring.
type Gossip struct {
	ml  *memberlist.Memberlist
	tr  *transport
	log *slog.Logger

	mu    sync.Mutex
	alive map[string]bool
}

// New starts gossip; Join connects it to others.
func New(cfg Config) (*Gossip, error) {
	host, portStr, err := net.SplitHostPort(cfg.Mesh.Addr())
	if err != nil {
		return nil, fmt.Errorf("gossip: mesh address: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gossip{log: cfg.Logger.With("part", "gossip"), alive: map[string]bool{}}
	g.tr = newTransport(cfg, host, port, g.log)

	var mc *memberlist.Config
	switch cfg.Profile {
	case WAN:
		mc = memberlist.DefaultWANConfig()
	case LAN, "":
		mc = memberlist.DefaultLANConfig()
		// Faster than memberlist's LAN defaults, so a killed node is declared dead in
		// under two seconds on small networks: a probe every 400 ms with 200 ms to
		// answer, and suspicion for two probe intervals (a suspected node that lives
		// refutes it by gossip, every 100 ms, long before).
		mc.ProbeInterval = 400 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 100 * time.Millisecond
	default:
		return nil, fmt.Errorf("gossip: profile %q: want lan or wan", cfg.Profile)
	}
	mc.Name = cfg.NodeID
	// A node that comes back at another mesh address (restarted with another port, or
	// moved to another network) is the same node: the tunnels prove who it is and the
	// transport finds it by name, so the address memberlist keeps says nothing about
	// identity. Without this, memberlist refuses the returning node as a conflicting
	// address until it reaps the dead entry (GossipToTheDeadTime, then a push-pull):
	// the node counted dead for about a minute while it runs.
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Transport = g.tr
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Events = &events{g: g, onChange: cfg.OnChange}
	mc.LogOutput = logWriter{g.log}
	ml, err := memberlist.Create(mc)
	if err != nil {
		g.tr.Shutdown()
		return nil, fmt.Errorf("gossip: %w", err)
	}
	g.ml = ml
	return g, nil
}

// Join contacts the given nodes (by ID) and joins their ring; it reports how many
// answered.
func (g *Gossip) Join(nodeIDs []string) (int, error) {
	var addrs []string
	for _, id := range nodeIDs {
		if a, ok := g.tr.cfg.Resolve(id); ok {
			addrs = append(addrs, id+"/"+a)
		}
	}
	if len(addrs) == 0 {
		return 0, errors.New("gossip: no known node to join")
	}
	return g.ml.Join(addrs)
}

// Alive reports whether a node is a live member (this node always is).
func (g *Gossip) Alive(nodeID string) bool {
	if nodeID == g.tr.cfg.NodeID {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.alive[nodeID]
}

// Members lists the live members.
func (g *Gossip) Members() []string {
	var out []string
	for _, m := range g.ml.Members() {
		if m.State == memberlist.StateAlive {
			out = append(out, m.Name)
		}
	}
	return out
}

// Leave announces this node's departure and stops gossip.
func (g *Gossip) Leave(timeout time.Duration) error {
	err := g.ml.Leave(timeout)
	return errors.Join(err, g.Shutdown())
}

// Shutdown stops gossip without a word to the others (as a crash would).
func (g *Gossip) Shutdown() error { return g.ml.Shutdown() }

type events struct {
	g        *Gossip
	onChange func()
}

func (e *events) set(n *memberlist.Node, alive bool) {
	e.g.mu.Lock()
	e.g.alive[n.Name] = alive
	e.g.mu.Unlock()
	e.g.log.Info("member change", "node", n.Name, "alive", alive)
	if e.onChange != nil {
		go e.onChange()
	}
}

func (e *events) NotifyJoin(n *memberlist.Node)   { e.set(n, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.set(n, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.set(n, true) }

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(msg, "[ERR]"), strings.Contains(msg, "[WARN]"):
		w.l.Debug(msg)
	default:
		w.l.Log(context.Background(), slog.LevelDebug-4, msg)
	}
	return len(p), nil
}

var _ io.Writer = logWriter{}
