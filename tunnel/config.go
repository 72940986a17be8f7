package tunnel

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/identity"
)

// Peers tells which node, if any, holds an Ed25519 key. The node implements it from
// its state store: a key is known while its node is registered and not revoked. It is
// consulted on every handshake, including each rekey, so a revoked node loses its
// tunnels at their next epoch at the latest. It must be safe for concurrent use.
type Peers interface {
	// ByEd25519 returns the node that holds pub and its full public key.
	ByEd25519(pub ed25519.PublicKey) (nodeID string, key identity.PublicKey, ok bool)
}

// RevokedPeers is implemented by Peers that also know keys the ledger revoked. A
// listener that admits unregistered peers (newcomers) still refuses a revoked key: a
// removed or rotated-out key gets no tunnel at all.
type RevokedPeers interface {
	Peers
	Revoked(pub ed25519.PublicKey) bool
}

// Config is the configuration of a tunnel endpoint, dialer or listener. Start from
// DefaultConfig and set Key and Peers.
type Config struct {
	// Key is this node's identity: its Ed25519 half makes the TLS certificate and both
	// halves sign the channel binding.
	Key *identity.Key
	// NodeID names this node in logs; empty means Key.ID().
	NodeID string
	// Peers are the nodes the ledger knows. Nil knows no one: a newcomer dials with a
	// pinned fingerprint (Expect.Fingerprint) and nothing else.
	Peers Peers
	// AllowUnregistered lets a listener accept peers whose key is not registered, on
	// the key they present; their tunnels report Registered() == false.
	AllowUnregistered bool
	// RekeyInterval is the longest an epoch lasts before a fresh handshake.
	RekeyInterval time.Duration
	// RekeyBytes is the most bytes an epoch carries in either direction before a
	// fresh handshake.
	RekeyBytes int64
	// HandshakeTimeout bounds one handshake: TCP, TLS and the binding exchange.
	HandshakeTimeout time.Duration
	// MaxClockSkew is how far the peer's clock may be from ours.
	MaxClockSkew time.Duration
	// StreamWindow is the most bytes a stream may have in flight (yamux's maximum
	// window); larger windows go faster over long paths and cost memory per stream.
	StreamWindow uint32
	// MaxPendingHandshakes caps the handshakes a listener runs at once; more
	// connections are closed at once, so a flood cannot exhaust the node.
	MaxPendingHandshakes int
	// AcceptBacklog is how many new tunnels a listener holds for Accept.
	AcceptBacklog int
	// Logger receives refusals and failures; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock signed into bindings and compared with the peer's; nil means
	// time.Now.
	Now func() time.Time
	// DialContext opens the TCP connections of Dial and of every rekey; nil means a
	// net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultConfig returns the defaults: an epoch of 2 minutes or 1 GiB, handshakes of
// at most 10 seconds, clocks at most 5 minutes apart.
func DefaultConfig() Config {
	return Config{
		RekeyInterval:        2 * time.Minute,
		RekeyBytes:           1 << 30,
		HandshakeTimeout:     10 * time.Second,
		MaxClockSkew:         5 * time.Minute,
		StreamWindow:         1 << 20,
		MaxPendingHandshakes: 64,
		AcceptBacklog:        32,
	}
}

// minStreamWindow is yamux's initial window; a smaller maximum is refused by yamux.
const minStreamWindow = 256 << 10

// Validate reports every field that is missing or out of range, by name.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Key == nil {
		bad("Key is required: the node's identity key")
	}
	if c.RekeyInterval <= 0 {
		bad("RekeyInterval is %s: want a positive duration such as 2m", c.RekeyInterval)
	}
	if c.RekeyBytes <= 0 {
		bad("RekeyBytes is %d: want a positive byte count such as %d (1 GiB)", c.RekeyBytes, int64(1<<30))
	}
	if c.HandshakeTimeout <= 0 {
		bad("HandshakeTimeout is %s: want a positive duration such as 10s", c.HandshakeTimeout)
	}
	if c.MaxClockSkew <= 0 {
		bad("MaxClockSkew is %s: want a positive duration such as 5m", c.MaxClockSkew)
	}
	if c.StreamWindow < minStreamWindow {
		bad("StreamWindow is %d: want at least %d bytes", c.StreamWindow, minStreamWindow)
	}
	if c.MaxPendingHandshakes <= 0 {
		bad("MaxPendingHandshakes is %d: want a positive count such as 64", c.MaxPendingHandshakes)
	}
	if c.AcceptBacklog <= 0 {
		bad("AcceptBacklog is %d: want a positive count such as 32", c.AcceptBacklog)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tunnel config: %w", err)
	}
	return nil
}

// withDefaults fills the optional fields that have a natural default.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NodeID == "" && c.Key != nil {
		c.NodeID = c.Key.ID()
	}
	if c.DialContext == nil {
		var d net.Dialer
		c.DialContext = d.DialContext
	}
	return c
}

// lookup asks Peers about pub; a nil Peers knows no one.
func (c *Config) lookup(pub ed25519.PublicKey) (string, identity.PublicKey, bool) {
	if c.Peers == nil {
		return "", identity.PublicKey{}, false
	}
	return c.Peers.ByEd25519(pub)
}

// Expect names the node a dialer wants to reach. The zero Expect accepts any
// registered node.
type Expect struct {
	// NodeID, when set, must be the peer's node ID: the registered node its key
	// belongs to (or, for a pinned peer that is not registered, its key's ID).
	NodeID string
	// Fingerprint, when not zero, must be the fingerprint of the peer's full public
	// key (identity.PublicKey.Fingerprint). A pinned peer need not be registered: this
	// is how a newcomer holding a join token reaches the node that issued it.
	Fingerprint [32]byte
}

// PeerSet is an in-memory Peers, for tests and for tools with a fixed set of nodes.
// It is safe for concurrent use.
type PeerSet struct {
	mu    sync.RWMutex
	byKey map[string]peerEntry
}

type peerEntry struct {
	nodeID string
	key    identity.PublicKey
}

// NewPeerSet returns an empty PeerSet.
func NewPeerSet() *PeerSet { return &PeerSet{byKey: make(map[string]peerEntry)} }

// Add registers key as node nodeID, replacing what the set held for its Ed25519 key.
func (s *PeerSet) Add(nodeID string, key identity.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[string(key.Ed25519)] = peerEntry{nodeID: nodeID, key: key}
}

// Remove forgets every key of node nodeID, as a revocation does.
func (s *PeerSet) Remove(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.byKey {
		if e.nodeID == nodeID {
			delete(s.byKey, k)
		}
	}
}

// ByEd25519 implements Peers.
func (s *PeerSet) ByEd25519(pub ed25519.PublicKey) (string, identity.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byKey[string(pub)]
	return e.nodeID, e.key, ok
}
