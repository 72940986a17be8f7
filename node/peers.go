package node

import (
	"crypto/ed25519"
	"sync"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// peers tells the tunnels which node keys the ledger knows: a node key that is
// registered and not revoked. It is rebuilt from the state store whenever the store
// changed, so a revoked or rotated key is refused from the next handshake on.
type peers struct {
	st *state.Store

	mu      sync.Mutex
	version uint64
	built   bool
	byKey   map[string]ledger.KeyInfo // by Ed25519 public key bytes
}

func (p *peers) ByEd25519(pub ed25519.PublicKey) (string, identity.PublicKey, bool) {
	v, _ := p.st.Watch()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.built || v != p.version {
		keys, err := p.st.Keys()
		if err != nil {
			return "", identity.PublicKey{}, false
		}
		p.byKey = make(map[string]ledger.KeyInfo, len(keys))
		for _, k := range keys {
			if k.Role == ledger.RoleNode {
				p.byKey[string(k.Public.Ed25519)] = k
			}
		}
		p.version, p.built = v, true
	}
	k, ok := p.byKey[string(pub)]
	return k.Owner, k.Public, ok
}

// resolveMesh is the mesh address the ledger records for a node.
func resolveMesh(st *state.Store) func(string) (string, bool) {
	return func(id string) (string, bool) {
		n, ok, err := st.Node(id)
		if err != nil || !ok || n.Mesh == "" {
			return "", false
		}
		return n.Mesh, true
	}
}

// resolveMeshAddr is the node the ledger records at a mesh address.
func resolveMeshAddr(st *state.Store) func(string) (string, bool) {
	return func(addr string) (string, bool) {
		nodes, err := st.Nodes()
		if err != nil {
			return "", false
		}
		for _, n := range nodes {
			if n.Mesh == addr {
				return n.ID, true
			}
		}
		return "", false
	}
}

// Revoked implements tunnel.RevokedPeers.
func (p *peers) Revoked(pub ed25519.PublicKey) bool { return p.st.Revoked(pub) }
