package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/orderer"
)

// strictJSON decodes one JSON value, refusing unknown fields.
func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// submitRequest carries transactions to the ordering leader.
type submitRequest struct {
	Txs []*ledger.Tx `json:"txs"`
}

type submitResult struct {
	ID     ledger.Hash `json:"id"`
	Height uint64      `json:"height"`
	Err    string      `json:"err,omitempty"`
}

// order hands checked transactions to the ordering leader: this node's orderer when it
// leads, else the leader's, over the mesh.
func (n *Node) order(ctx context.Context, txs []*ledger.Tx) ([]orderer.Result, error) {
	if n.ord.IsLeader() {
		return n.ord.Submit(ctx, txs)
	}
	leader := n.Leader()
	if leader == "" || leader == n.id {
		return nil, orderer.ErrNotLeader
	}
	var res []submitResult
	if err := n.mesh.Call(ctx, leader, "submit", submitRequest{Txs: txs}, &res); err != nil {
		return nil, fmt.Errorf("forward to the ordering leader %s: %w", leader, err)
	}
	if len(res) != len(txs) {
		return nil, fmt.Errorf("the ordering leader %s answered %d results for %d transactions", leader, len(res), len(txs))
	}
	out := make([]orderer.Result, len(res))
	for i, r := range res {
		out[i] = orderer.Result{ID: r.ID, Height: r.Height}
		if r.Err != "" {
			out[i].Err = errors.New(r.Err)
		}
	}
	return out, nil
}

// waitHeight waits until the local state has applied the block at height h.
func (n *Node) waitHeight(ctx context.Context, h uint64) error {
	for {
		_, changed := n.store.Watch()
		tip, _, err := n.store.Tip()
		if err != nil {
			return err
		}
		if tip.Height >= h {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("committed at height %d, but this node's replica is at %d: %w", h, tip.Height, ctx.Err())
		}
	}
}

// handleSubmit orders transactions forwarded by another node. They are checked again
// here: the leader trusts no one's door.
func (n *Node) handleSubmit(ctx context.Context, peer mesh.Peer, raw json.RawMessage) (any, error) {
	var req submitRequest
	if err := strictJSON(raw, &req); err != nil {
		return nil, fmt.Errorf("bad submit request: %w", err)
	}
	if len(req.Txs) == 0 || len(req.Txs) > ledger.MaxBlockTxs {
		return nil, fmt.Errorf("submit: %d transactions; want 1 to %d", len(req.Txs), ledger.MaxBlockTxs)
	}
	if !n.ord.IsLeader() {
		return nil, orderer.ErrNotLeader
	}
	res, err := n.Submit(ctx, req.Txs)
	if err != nil {
		return nil, err
	}
	out := make([]submitResult, len(res))
	for i, r := range res {
		out[i] = submitResult{ID: r.ID, Height: r.Height}
		if r.Err != nil {
			out[i].Err = r.Err.Error()
		}
	}
	return out, nil
}

// serveLogs streams the logs of depots on this node to another node's API.
func (n *Node) serveLogs(ctx context.Context, conn net.Conn, peer mesh.Peer) {
	var req apiserver.LogRequest
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&req); err != nil {
		n.log.Warn("bad logs request", "peer", peer.NodeID, "err", err)
		return
	}
	// The stream ends when the asking side goes away.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, conn)
		cancel()
	}()
	if err := apiserver.WriteLogs(ctx, n.agent.LogPaths, req, conn); err != nil && ctx.Err() == nil {
		n.log.Debug("logs stream ended", "peer", peer.NodeID, "err", err)
	}
}

// RemoteLogs implements apiserver.Backend: it asks the node that runs the depots.
func (n *Node) RemoteLogs(ctx context.Context, nodeID string, req apiserver.LogRequest, w io.Writer) error {
	conn, err := n.mesh.Open(ctx, nodeID, "logs")
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return err
	}
	_, err = io.Copy(w, conn)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
