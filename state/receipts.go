package state

import (
	"encoding/binary"
	"fmt"
	"time"

	"qnet.dev/qnet/ledger"
)

var bucketReceipts = []byte("receipts")

// ReceiptBatch is a batch of a node's transfer receipts as the ledger committed it.
type ReceiptBatch struct {
	ledger.ReceiptBatch
	Height uint64    `json:"height"`
	At     time.Time `json:"at"`
}

func receiptKey(node string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(node), 0), seq)
}

// receiptBatch records a node's batch root. A node signs its own batches only, and
// numbers them from 1 without gaps, so a batch can be neither replaced nor withheld
// unnoticed.
func (a *applier) receiptBatch(t *ledger.Tx) error {
	var p ledger.ReceiptBatch
	if err := t.Decode(&p); err != nil {
		return err
	}
	if owner := a.signer(t).Owner; owner != p.Node {
		return fmt.Errorf("node %s may not commit receipts of node %s", owner, p.Node)
	}
	if p.Count <= 0 {
		return fmt.Errorf("receipt batch %d of node %s has %d receipts: want at least 1", p.Seq, p.Node, p.Count)
	}
	b := a.bucket(bucketReceipts)
	switch {
	case p.Seq == 0:
		return fmt.Errorf("receipt batch 0 of node %s: batches are numbered from 1", p.Node)
	case b.Get(receiptKey(p.Node, p.Seq)) != nil:
		return fmt.Errorf("receipt batch %d of node %s is already committed", p.Seq, p.Node)
	case p.Seq > 1 && b.Get(receiptKey(p.Node, p.Seq-1)) == nil:
		return fmt.Errorf("receipt batch %d of node %s: batch %d is not committed yet", p.Seq, p.Node, p.Seq-1)
	}
	rec := ReceiptBatch{ReceiptBatch: p, Height: a.block.Height, At: a.block.Time}
	if err := putJSON(b, receiptKey(p.Node, p.Seq), rec); err != nil {
		return err
	}
	a.event("receipts.committed", "", "", p.Node, fmt.Sprintf("node %s committed receipt batch %d (%d receipts)", p.Node, p.Seq, p.Count))
	return nil
}

// ReceiptBatches returns the committed receipt batches of every node, by node and
// sequence.
func (s *Store) ReceiptBatches() ([]ReceiptBatch, error) {
	return list[ReceiptBatch](s, bucketReceipts, nil)
}
