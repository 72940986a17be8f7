package receipt

import (
	"errors"
	"fmt"
	"time"

	"qnet.dev/qnet/ledger"
)

// Batch is a node's receipts since its previous batch, summed up for the ledger: the
// node commits the batch, and its log keeps the receipts that the root stands for.
type Batch struct {
	// Node is the node that holds the receipts; Seq numbers its batches from 1.
	Node string `json:"node"`
	Seq  uint64 `json:"seq"`
	// Root is the Merkle root (ledger.MerkleRoot) of the receipts' leaves in log order.
	Root  ledger.Hash `json:"root"`
	Count int         `json:"count"`
	// First is the earliest open time of the receipts, Last the latest close time.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// ErrBatchMismatch is returned (wrapped) by VerifyBatch when receipts are not the ones
// a batch stands for.
var ErrBatchMismatch = errors.New("receipts do not match the batch")

// Root is the Merkle root of the receipts' leaves, in order.
func Root(rs []Receipt) ledger.Hash {
	leaves := make([]ledger.Hash, len(rs))
	for i := range rs {
		leaves[i] = rs[i].Leaf()
	}
	return ledger.MerkleRoot(leaves)
}

// span returns the earliest open and latest close time of the receipts.
func span(rs []Receipt) (first, last time.Time) {
	for i, r := range rs {
		if i == 0 || r.Opened.Before(first) {
			first = r.Opened
		}
		if i == 0 || r.Closed.After(last) {
			last = r.Closed
		}
	}
	return first, last
}

// NewBatch sums up a node's receipts as batch seq. Every receipt must name the node as
// one of its ends.
func NewBatch(node string, seq uint64, rs []Receipt) (Batch, error) {
	if len(rs) == 0 {
		return Batch{}, fmt.Errorf("receipt batch %d of node %s: no receipts", seq, node)
	}
	if seq == 0 {
		return Batch{}, fmt.Errorf("receipt batch of node %s: seq must start at 1", node)
	}
	for i := range rs {
		if rs[i].From != node && rs[i].To != node {
			return Batch{}, fmt.Errorf("receipt batch %d of node %s: receipt %d (flow %s) is between %s and %s",
				seq, node, i, rs[i].Flow, rs[i].From, rs[i].To)
		}
	}
	first, last := span(rs)
	return Batch{Node: node, Seq: seq, Root: Root(rs), Count: len(rs), First: first, Last: last}, nil
}

// VerifyBatch checks that rs are exactly the receipts batch b stands for: their count,
// Merkle root and time range, and that each names b's node as an end.
func VerifyBatch(b Batch, rs []Receipt) error {
	if len(rs) != b.Count {
		return fmt.Errorf("batch %d of node %s: %w: it counts %d receipts, %d given", b.Seq, b.Node, ErrBatchMismatch, b.Count, len(rs))
	}
	for i := range rs {
		if rs[i].From != b.Node && rs[i].To != b.Node {
			return fmt.Errorf("batch %d of node %s: %w: receipt %d (flow %s) is between %s and %s",
				b.Seq, b.Node, ErrBatchMismatch, i, rs[i].Flow, rs[i].From, rs[i].To)
		}
	}
	if root := Root(rs); root != b.Root {
		return fmt.Errorf("batch %d of node %s: %w: root %s, the receipts give %s", b.Seq, b.Node, ErrBatchMismatch, b.Root.Short(), root.Short())
	}
	if first, last := span(rs); len(rs) > 0 && (!first.Equal(b.First) || !last.Equal(b.Last)) {
		return fmt.Errorf("batch %d of node %s: %w: time range %s..%s, the receipts span %s..%s", b.Seq, b.Node, ErrBatchMismatch,
			b.First.Format(time.RFC3339Nano), b.Last.Format(time.RFC3339Nano), first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
	}
	return nil
}
