package node

import (
	"context"
	"slices"

	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"qnet.dev/qnet/api"
	"sync"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/netsvc/receipt"
)

// ReceiptDir is where a node keeps its transfer receipts, in its data dir.
const ReceiptDir = "receipts"

// defaultReceiptCommit is how often a node commits the receipts it gathered as a batch
// root on the ledger, unless Config.ReceiptCommit says otherwise.
const defaultReceiptCommit = 10 * time.Second

// finishTimeout bounds the exchange of views at the end of a flow.
const finishTimeout = 10 * time.Second

// receiptConfig is this node's part in the receipts of flows with node peer.
func (n *Node) receiptConfig(peer string) (receipt.Config, error) {
	info, ok, err := n.store.Node(peer)
	if err != nil {
		return receipt.Config{}, err
	}
	if !ok {
		return receipt.Config{}, fmt.Errorf("node %s is not on the ledger", peer)
	}
	return receipt.Config{Self: n.id, Key: n.key.Get(), Peer: peer, PeerKey: info.Key}, nil
}

// keep records the receipt of a flow that ended; a one-sided one (the ends disagreed,
// or the stream broke) is kept as well, with the reason: the audit needs both.
func (n *Node) keep(c *receipt.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	r, err := c.Finish(ctx)
	if err != nil {
		if errors.Is(err, receipt.ErrRefused) || r.Flow == "" {
			return
		}
		n.log.Warn("flow receipt is one-sided", "flow", r.Flow, "peer", c.Hello().To, "err", err)
	}
	if err := n.receipts.Append(r); err != nil {
		n.log.Error("receipt not kept", "flow", r.Flow, "err", err)
	}
}

// flowConn is the dialing end of a flow to another node: closing it co-signs the
// flow's receipt with the other end, then closes the stream.
type flowConn struct {
	*receipt.Conn
	n    *Node
	once sync.Once
}

func (c *flowConn) Close() error {
	c.once.Do(func() {
		c.n.keep(c.Conn)
		c.Conn.Close()
	})
	return nil
}

// commitReceipts commits the receipts gathered since the last batch, every
// Config.ReceiptCommit, until ctx ends, and puts on the ledger every batch of the log
// that is not there yet (one whose submission failed, or was cut short by a stop), in
// order: the ledger takes a node's batches only without gaps. What is pending when ctx
// ends stays in the log for the next start.
func (n *Node) commitReceipts(ctx context.Context) {
	every := n.cfg.ReceiptCommit
	if every <= 0 {
		every = defaultReceiptCommit
	}
	behind := true // at start, the log may hold batches the ledger lacks
	for {
		if n.receipts.Pending() > 0 {
			if _, err := n.receipts.Commit(); err != nil {
				n.log.Warn("receipt batch not made", "err", err)
			} else {
				behind = true
			}
		}
		if behind {
			if err := n.submitBatches(ctx); err != nil {
				n.log.Warn("receipt batches not committed; trying again later", "err", err)
			} else {
				behind = false
			}
		}
		if !ctxtime.Sleep(ctx, every) {
			return
		}
	}
}

// submitBatches puts the log's batches that the ledger lacks on it, in order.
func (n *Node) submitBatches(ctx context.Context) error {
	recs, err := n.receipts.Records()
	if err != nil {
		return err
	}
	all, err := n.store.ReceiptBatches()
	if err != nil {
		return err
	}
	have := map[uint64]bool{}
	for _, b := range all {
		if b.Node == n.id {
			have[b.Seq] = true
		}
	}
	for _, lb := range recs.Batches {
		b := lb.Batch
		if have[b.Seq] {
			continue
		}
		p := ledger.ReceiptBatch{Node: b.Node, Seq: b.Seq, Root: b.Root, Count: b.Count, First: b.First, Last: b.Last}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.propose(cctx, ledger.TxReceipts, p)
		cancel()
		if err != nil {
			return fmt.Errorf("batch %d: %w", b.Seq, err)
		}
	}
	return nil
}

// serveReceipts hands this node's receipt log to another node's audit.
func (n *Node) serveReceipts(ctx context.Context, peer mesh.Peer, req json.RawMessage) (any, error) {
	return n.receipts.Records()
}

// Audit cross-checks the receipts of every node of the network against each other and
// against the batch roots on the ledger. A node that cannot be reached is reported as
// such; its flows show up as missing on the other ends.
func (n *Node) Audit(ctx context.Context) (api.AuditReport, error) {
	nodes, err := n.store.Nodes()
	if err != nil {
		return api.AuditReport{}, err
	}
	in := receipt.Input{Keys: map[string]identity.PublicKey{}, Nodes: map[string]receipt.Records{}}
	var unreachable []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range nodes {
		in.Keys[nd.ID] = nd.Key
		wg.Go(func() {
			var recs receipt.Records
			var err error
			if nd.ID == n.id {
				recs, err = n.receipts.Records()
			} else {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err = n.mesh.Call(cctx, nd.ID, "receipts", struct{}{}, &recs)
				cancel()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unreachable = append(unreachable, fmt.Sprintf("%s: %v", nd.ID, err))
				return
			}
			in.Nodes[nd.ID] = recs
		})
	}
	wg.Wait()
	batches, err := n.store.ReceiptBatches()
	if err != nil {
		return api.AuditReport{}, err
	}
	for _, b := range batches {
		in.Committed = append(in.Committed, receipt.Batch{Node: b.Node, Seq: b.Seq, Root: b.Root, Count: b.Count, First: b.First, Last: b.Last})
	}
	slices.Sort(unreachable)
	return api.AuditReport{Report: receipt.Audit(in), Unreachable: unreachable}, nil
}

// openReceipts opens the node's receipt log.
func (n *Node) openReceipts() error {
	l, err := receipt.OpenLog(filepath.Join(n.cfg.DataDir, ReceiptDir), n.id, receipt.DefaultLogOptions())
	if err != nil {
		return fmt.Errorf("receipt log: %w", err)
	}
	n.receipts = l
	return nil
}

var _ net.Conn = (*flowConn)(nil)
