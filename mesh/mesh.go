// Package mesh connects a node to the others: one post-quantum tunnel (package tunnel)
// per peer, dialled when first needed and accepted from peers, with named services
// multiplexed over its streams. Raft, RPC, gossip and blob transfer all ride on it, so
// every byte between nodes is inside an authenticated tunnel whose keys rotate.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/tunnel"
)

// Peer is the node at the other end of a stream.
type Peer struct {
	NodeID string
	// Key is the peer's public key, as the tunnel's handshake proved it.
	Key identity.PublicKey
	// Registered is false on an admission tunnel: a newcomer the ledger does not know
	// yet, which may use only the services that allow it (joining).
	Registered bool
}

// Handler serves one stream of a service. The stream is closed when it returns.
type Handler func(ctx context.Context, conn net.Conn, peer Peer)

type service struct {
	h            Handler
	unregistered bool
}

// Config configures a Mesh.
type Config struct {
	NodeID string
	// Tunnel configures the tunnels (identity, peers, rekeying).
	Tunnel tunnel.Config
	// Resolve gives the mesh address of a node, from the ledger.
	Resolve func(nodeID string) (addr string, ok bool)
	// DialTimeout bounds dialling a peer's tunnel.
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// ErrUnknownNode is returned when a node has no known mesh address.
var ErrUnknownNode = errors.New("no mesh address known for node")

// Mesh is this node's side of the mesh.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	ln     *tunnel.Listener
	dialer *tunnel.Dialer
	raw    net.Listener

	mu       sync.Mutex
	tunnels  map[string][]*tunnel.Tunnel // by peer node ID
	dialing  map[string]*dialCall
	services map[string]service
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type dialCall struct {
	done chan struct{}
	t    *tunnel.Tunnel
	err  error
}

// New listens on addr and returns the mesh; Run serves it.
func New(cfg Config, addr string) (*Mesh, error) {
	if cfg.NodeID == "" || cfg.Resolve == nil {
		return nil, errors.New("mesh: NodeID and Resolve are required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen on %s: %w (choose another with --mesh-addr)", addr, err)
	}
	ln, err := tunnel.Listen(cfg.Tunnel, raw)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("mesh: %w", err)
	}
	dialer, err := tunnel.NewDialer(cfg.Tunnel)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("mesh: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{
		cfg: cfg, log: cfg.Logger.With("part", "mesh"), ln: ln, dialer: dialer, raw: raw,
		tunnels: map[string][]*tunnel.Tunnel{}, dialing: map[string]*dialCall{},
		services: map[string]service{}, ctx: ctx, cancel: cancel,
	}
	m.wg.Go(m.acceptTunnels)
	return m, nil
}

// Addr is where the mesh listens.
func (m *Mesh) Addr() string { return m.raw.Addr().String() }

// Handle registers the handler of a service. Unless allowUnregistered, only peers the
// ledger knows reach it.
func (m *Mesh) Handle(name string, allowUnregistered bool, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services[name] = service{h: h, unregistered: allowUnregistered}
}

func (m *Mesh) acceptTunnels() {
	for {
		t, err := m.ln.Accept(m.ctx)
		if err != nil {
			if m.ctx.Err() != nil {
				return
			}
			m.log.Warn("tunnel not accepted", "err", err)
			continue
		}
		m.add(t)
	}
}

// add tracks a tunnel and serves the streams its peer opens.
func (m *Mesh) add(t *tunnel.Tunnel) {
	id, key := t.Peer()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		t.Close()
		return
	}
	if t.Registered() {
		m.tunnels[id] = append(m.tunnels[id], t)
	}
	m.mu.Unlock()
	m.log.Debug("tunnel up", "peer", id, "registered", t.Registered())
	m.wg.Go(func() {
		defer m.remove(id, t)
		m.serveStreams(t, Peer{NodeID: id, Key: key, Registered: t.Registered()})
	})
}

func (m *Mesh) remove(id string, t *tunnel.Tunnel) {
	t.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := m.tunnels[id]
	for i, x := range ts {
		if x == t {
			ts = append(ts[:i], ts[i+1:]...)
			break
		}
	}
	if len(ts) == 0 {
		delete(m.tunnels, id)
	} else {
		m.tunnels[id] = ts
	}
}

func (m *Mesh) serveStreams(t *tunnel.Tunnel, peer Peer) {
	var streams sync.WaitGroup
	defer streams.Wait()
	for {
		conn, err := t.Accept(m.ctx)
		if err != nil {
			return
		}
		streams.Go(func() { m.serveStream(conn, peer) })
	}
}

// MaxServiceName bounds a service name in a stream header.
const MaxServiceName = 64

func (m *Mesh) serveStream(conn net.Conn, peer Peer) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	name, err := readHeader(conn)
	if err != nil {
		m.log.Warn("bad stream header", "peer", peer.NodeID, "err", err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	m.mu.Lock()
	svc, ok := m.services[name]
	m.mu.Unlock()
	if !ok {
		m.log.Warn("stream for an unknown service", "peer", peer.NodeID, "service", name)
		return
	}
	if !peer.Registered && m.cfg.Tunnel.Peers != nil {
		// The ledger may have admitted the peer since its tunnel was made (a newcomer's
		// tunnel from its leader can predate the newcomer's copy of the chain).
		if id, key, ok := m.cfg.Tunnel.Peers.ByEd25519(peer.Key.Ed25519); ok && key.Equal(peer.Key) {
			peer.NodeID, peer.Registered = id, true
		}
	}
	if !peer.Registered && !svc.unregistered {
		m.log.Warn("unregistered peer asked for a service it may not use", "peer", peer.NodeID, "service", name)
		return
	}
	svc.h(m.ctx, conn, peer)
}

// readHeader reads a stream's service name: one length byte, then the name.
func readHeader(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("read service name: %w", err)
	}
	if n[0] == 0 || int(n[0]) > MaxServiceName {
		return "", fmt.Errorf("service name of %d bytes: want 1 to %d", n[0], MaxServiceName)
	}
	name := make([]byte, n[0])
	if _, err := io.ReadFull(r, name); err != nil {
		return "", fmt.Errorf("read service name: %w", err)
	}
	return string(name), nil
}

func writeHeader(w io.Writer, name string) error {
	if len(name) == 0 || len(name) > MaxServiceName {
		return fmt.Errorf("service name %q: want 1 to %d bytes", name, MaxServiceName)
	}
	_, err := w.Write(append([]byte{byte(len(name))}, name...))
	return err
}

// Open opens a stream to a service on a node, dialling its tunnel if there is none.
func (m *Mesh) Open(ctx context.Context, nodeID, name string) (net.Conn, error) {
	if nodeID == m.cfg.NodeID {
		return nil, fmt.Errorf("mesh: a node does not open streams to itself (%s)", name)
	}
	t, err := m.tunnel(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	conn, err := t.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", name, nodeID, err)
	}
	if err := writeHeader(conn, name); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s stream to %s: %w", name, nodeID, err)
	}
	return conn, nil
}

// tunnel returns a live tunnel to the node, dialling one (once, for all callers) if
// needed.
func (m *Mesh) tunnel(ctx context.Context, nodeID string) (*tunnel.Tunnel, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("mesh closed")
	}
	for _, t := range m.tunnels[nodeID] {
		select {
		case <-t.Done():
		default:
			m.mu.Unlock()
			return t, nil
		}
	}
	call, ok := m.dialing[nodeID]
	if !ok {
		call = &dialCall{done: make(chan struct{})}
		m.dialing[nodeID] = call
		m.wg.Go(func() {
			call.t, call.err = m.dial(nodeID)
			m.mu.Lock()
			delete(m.dialing, nodeID)
			m.mu.Unlock()
			if call.err == nil {
				m.add(call.t)
			}
			close(call.done)
		})
	}
	m.mu.Unlock()
	select {
	case <-call.done:
		return call.t, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Mesh) dial(nodeID string) (*tunnel.Tunnel, error) {
	addr, ok := m.cfg.Resolve(nodeID)
	if !ok || addr == "" {
		return nil, fmt.Errorf("%w %s", ErrUnknownNode, nodeID)
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.DialTimeout)
	defer cancel()
	t, err := m.dialer.Dial(ctx, addr, tunnel.Expect{NodeID: nodeID})
	if err != nil {
		return nil, fmt.Errorf("tunnel to node %s at %s: %w", nodeID, addr, err)
	}
	return t, nil
}

// SetKey makes key this node's identity in every handshake from now on, and closes the
// tunnels made with the old one: they are made again, with the new key, when next used.
func (m *Mesh) SetKey(key *identity.Key) error {
	if err := m.dialer.SetKey(key); err != nil {
		return err
	}
	if err := m.ln.SetKey(key); err != nil {
		return err
	}
	for _, id := range m.Connected() {
		m.CloseNode(id)
	}
	return nil
}

// CloseNode closes every tunnel to a node at once (its keys were revoked or rotated).
func (m *Mesh) CloseNode(nodeID string) {
	m.mu.Lock()
	ts := append([]*tunnel.Tunnel(nil), m.tunnels[nodeID]...)
	delete(m.tunnels, nodeID)
	m.mu.Unlock()
	for _, t := range ts {
		t.Close()
	}
	if len(ts) > 0 {
		m.log.Info("closed tunnels of node", "peer", nodeID, "count", len(ts))
	}
}

// CloseStale closes the tunnels to a node that were made with a key other than keep:
// after the node rotated its keys, its old tunnels go and its new ones stay.
func (m *Mesh) CloseStale(nodeID string, keep identity.PublicKey) {
	m.mu.Lock()
	var stale, live []*tunnel.Tunnel
	for _, t := range m.tunnels[nodeID] {
		if _, key := t.Peer(); key.Equal(keep) {
			live = append(live, t)
		} else {
			stale = append(stale, t)
		}
	}
	if len(live) == 0 {
		delete(m.tunnels, nodeID)
	} else {
		m.tunnels[nodeID] = live
	}
	m.mu.Unlock()
	for _, t := range stale {
		t.Close()
	}
	if len(stale) > 0 {
		m.log.Info("closed tunnels made with a rotated-out key", "peer", nodeID, "count", len(stale))
	}
}

// Connected lists the nodes with a live tunnel.
func (m *Mesh) Connected() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.tunnels))
	for id := range m.tunnels {
		out = append(out, id)
	}
	return out
}

// TunnelStats describes the tunnels to one node.
type TunnelStats struct {
	Node    string
	Tunnels int
	Stats   []tunnel.Stats
}

// Stats describes every tunnel.
func (m *Mesh) Stats() []TunnelStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TunnelStats
	for id, ts := range m.tunnels {
		s := TunnelStats{Node: id, Tunnels: len(ts)}
		for _, t := range ts {
			s.Stats = append(s.Stats, t.Stats())
		}
		out = append(out, s)
	}
	return out
}

// Close closes the listener and every tunnel, and waits for the mesh's goroutines.
func (m *Mesh) Close() error {
	m.mu.Lock()
	m.closed = true
	var all []*tunnel.Tunnel
	for _, ts := range m.tunnels {
		all = append(all, ts...)
	}
	m.tunnels = map[string][]*tunnel.Tunnel{}
	m.mu.Unlock()
	m.cancel()
	err := m.ln.Close()
	for _, t := range all {
		t.Close()
	}
	m.wg.Wait()
	return err
}

// ID is this node's ID.
func (m *Mesh) ID() string { return m.cfg.NodeID }
