package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"qnet.dev/qnet/jointoken"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/tunnel"
)

// JoinRequest is what a newcomer sends, over an admission tunnel, to the node its token
// names.
type JoinRequest struct {
	Network string          `json:"network"`
	Token   string          `json:"token"`
	Secret  string          `json:"secret"`
	Node    ledger.NodeInfo `json:"node"`
}

// JoinResponse carries the chain up to and including the newcomer's admission, which
// the newcomer verifies block by block from the genesis its token names.
type JoinResponse struct {
	Blocks [][]byte `json:"blocks"`
}

// handleJoin admits a newcomer that holds a valid join token: it checks the token
// against the ledger, vouches for the newcomer in a node.join transaction, and hands it
// the chain.
func (n *Node) handleJoin(ctx context.Context, peer mesh.Peer, raw json.RawMessage) (any, error) {
	var req JoinRequest
	if err := strictJSON(raw, &req); err != nil {
		return nil, fmt.Errorf("bad join request: %w", err)
	}
	log := n.log.With("newcomer", peer.NodeID)
	refuse := func(format string, args ...any) (any, error) {
		err := fmt.Errorf(format, args...)
		log.Warn("join refused", "err", err)
		return nil, err
	}
	tip, _, err := n.store.Tip()
	if err != nil {
		return nil, err
	}
	if req.Network != tip.Network.String() {
		return refuse("the token is for network %.12s; this node belongs to network %s (%.12s)", req.Network, tip.Name, tip.Network.String())
	}
	tok, ok, err := n.store.Token(req.Token)
	if err != nil {
		return nil, err
	}
	if !ok {
		return refuse("join token %s is not known on network %s (forged, or never created)", req.Token, tip.Name)
	}
	secret, err := hex.DecodeString(req.Secret)
	sum := sha256.Sum256(secret)
	if err != nil || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(tok.SecretHash)) != 1 {
		return refuse("join token %s: the secret does not match (forged token)", req.Token)
	}
	if !time.Now().Before(tok.Expires) {
		return refuse("join token %s expired at %s", req.Token, tok.Expires.Format(time.RFC3339))
	}
	if tok.UsesLeft <= 0 {
		return refuse("join token %s is used up", req.Token)
	}
	if !req.Node.Key.Equal(peer.Key) || req.Node.ID != peer.Key.ID() {
		return refuse("the join request's keys are not the ones the newcomer's tunnel proved")
	}
	if _, ok, _ := n.store.Node(req.Node.ID); ok {
		return refuse("node %s is already a member (a replayed join?)", req.Node.ID)
	}
	if err := n.propose(ctx, ledger.TxNodeJoin, ledger.NodeJoin{Node: req.Node, Token: req.Token}); err != nil {
		return refuse("admission of node %s: %v", req.Node.ID, err)
	}
	log.Info("node admitted", "name", req.Node.Name)
	var resp JoinResponse
	next, done, err := n.store.Blocks()
	if err != nil {
		return nil, err
	}
	defer done()
	for {
		_, data, err := next()
		if err != nil {
			break
		}
		resp.Blocks = append(resp.Blocks, data)
	}
	return resp, nil
}

// join admits this node to a network through the node at addr, as its token allows,
// and fills the (empty) state store with the chain that node hands over, verified
// block by block from the genesis the token names.
func (n *Node) join(ctx context.Context, addr, token string) error {
	tok, err := jointoken.Parse(token)
	if err != nil {
		return err
	}
	if addr == "" {
		addr = tok.Addr
	}
	if addr == "" {
		return errors.New("join: no address to contact: pass --join ADDR")
	}
	info := ledger.NodeInfo{
		ID: n.id, Name: n.name, Key: n.key.Get().Public(), Addr: n.ln.Addr().String(), Mesh: n.mesh.Addr(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPU: n.cfg.CPU, Memory: n.cfg.Memory, Labels: n.cfg.Labels,
	}
	fillCapacity(&info)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t, err := tunnel.Dial(dctx, n.tunnelConfig(), addr, tunnel.Expect{Fingerprint: tok.Fingerprint})
	if err != nil {
		return fmt.Errorf("join through %s: %w", addr, err)
	}
	defer t.Close()
	var resp JoinResponse
	req := JoinRequest{Network: tok.Network.String(), Token: tok.ID(), Secret: hex.EncodeToString(tok.Secret[:]), Node: info}
	if err := mesh.CallTunnel(dctx, t, "join", req, &resp); err != nil {
		return fmt.Errorf("join through %s: %w", addr, err)
	}
	if len(resp.Blocks) == 0 {
		return fmt.Errorf("join through %s: no chain came back", addr)
	}
	genesis, err := ledger.DecodeBlock(resp.Blocks[0])
	if err != nil {
		return fmt.Errorf("join: genesis block: %w", err)
	}
	if genesis.Hash != tok.Network {
		return fmt.Errorf("join: node %s serves network %.12s, but the token is for %.12s", addr, genesis.Hash.String(), tok.Network.String())
	}
	for i, data := range resp.Blocks {
		if _, err := n.store.ApplyBlock(data, 0); err != nil {
			return fmt.Errorf("join: block %d of the chain from %s does not verify: %w", i, addr, err)
		}
	}
	if _, ok, _ := n.store.Node(n.id); !ok {
		return fmt.Errorf("join: the chain from %s does not admit this node", addr)
	}
	n.log.Info("joined the network", "through", addr, "blocks", len(resp.Blocks))
	return nil
}
