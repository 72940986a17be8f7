package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/ctxtime"
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
	var lastErr error
	for attempt := range forwardAttempts {
		if n.ord.IsLeader() {
			return n.ord.Submit(ctx, txs)
		}
		leader := n.Leader()
		if leader == "" || leader == n.id {
			// No leader known (an election, or this node is cut off): wait a little for one.
			if !ctxtime.Sleep(ctx, 200*time.Millisecond) {
				return nil, ctx.Err()
			}
			lastErr = orderer.ErrNotLeader
			continue
		}
		res, err := n.forward(ctx, leader, txs, attempt > 0)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if ctx.Err() != nil || mesh.IsRPCError(err) && !strings.Contains(err.Error(), orderer.ErrNotLeader.Error()) {
			return nil, err
		}
		// The leader did not answer in time or has stepped down: it may be cut off, and
		// its tunnel with it. Drop the tunnel and try whoever leads now.
		n.log.Warn("forward to the ordering leader failed; trying again", "leader", leader, "err", err)
		n.mesh.CloseNode(leader)
	}
	return nil, lastErr
}

// forwardAttempts and forwardTimeout bound how long a write waits for a leader that
// does not answer (one cut off from this node) before it tries another.
const (
	forwardAttempts = 4
	forwardTimeout  = 10 * time.Second
)

// forward sends transactions to the leader. On a retry, a transaction the leader reports
// as already committed was committed by the attempt that seemed to fail: a success.
func (n *Node) forward(ctx context.Context, leader string, txs []*ledger.Tx, retry bool) ([]orderer.Result, error) {
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	var res []submitResult
	if err := n.mesh.Call(fctx, leader, "submit", submitRequest{Txs: txs}, &res); err != nil {
		return nil, fmt.Errorf("forward to the ordering leader %s: %w", leader, err)
	}
	if len(res) != len(txs) {
		return nil, fmt.Errorf("the ordering leader %s answered %d results for %d transactions", leader, len(res), len(txs))
	}
	out := make([]orderer.Result, len(res))
	for i, r := range res {
		out[i] = orderer.Result{ID: r.ID, Height: r.Height}
		if r.Err == "" {
			continue
		}
		if h, ok := committedAt(r.Err); retry && ok {
			out[i].Height = h
			continue
		}
		out[i].Err = errors.New(r.Err)
	}
	return out, nil
}

// committedAt reads the block height out of a replay refusal ("... was already
// committed in block N").
func committedAt(msg string) (uint64, bool) {
	const marker = "was already committed in block "
	i := strings.Index(msg, marker)
	if i < 0 {
		return 0, false
	}
	h, err := strconv.ParseUint(strings.Fields(msg[i+len(marker):] + " ")[0], 10, 64)
	return h, err == nil
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

// catchUpTimeout bounds how long a starting agent waits for this node's replica to
// catch up; a node cut off from the rest goes on with what it has after it.
const catchUpTimeout = 30 * time.Second

// caughtUp blocks until this node's replica has applied everything the ordering
// leader has committed (as the leader last told it), or this node leads.
func (n *Node) caughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	r := n.ord.Raft()
	for {
		if n.ord.IsLeader() {
			return nil
		}
		if _, leader := r.LeaderWithID(); leader != "" && time.Since(r.LastContact()) < 2*time.Second {
			st := r.Stats()
			commit, _ := strconv.ParseUint(st["commit_index"], 10, 64)
			applied, _ := strconv.ParseUint(st["applied_index"], 10, 64)
			if commit > 0 && applied >= commit {
				return nil
			}
		}
		_, changed := n.store.Watch()
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not caught up with the network after %s: %w", catchUpTimeout, ctx.Err())
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
