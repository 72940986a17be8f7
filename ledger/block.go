package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"qnet.dev/qnet/identity"
)

// MaxBlockTxs bounds the transactions of one block.
const MaxBlockTxs = 4096

// Header is what a block's hash covers.
type Header struct {
	// Network is the genesis block's hash; zero in the genesis block itself.
	Network  Hash      `json:"network"`
	Height   uint64    `json:"height"`
	Prev     Hash      `json:"prev"`
	Time     time.Time `json:"time"`
	TxRoot   Hash      `json:"txRoot"`
	TxCount  int       `json:"txCount"`
	Proposer string    `json:"proposer"`
}

// Block is a batch of transactions, chained to the one before by hash and signed by the
// validator that proposed it.
type Block struct {
	Header
	// Hash is the hash of the header, carried for readers and checked on decode.
	Hash Hash               `json:"hash"`
	Txs  []*Tx              `json:"txs"`
	Sig  identity.Signature `json:"sig"`
}

// ComputeHash hashes the header.
func (h *Header) ComputeHash() Hash {
	e := newEncoder("qnet/block/v1")
	e.fixed(h.Network[:])
	e.u64(h.Height)
	e.fixed(h.Prev[:])
	e.i64(h.Time.UnixNano())
	e.fixed(h.TxRoot[:])
	e.u64(uint64(h.TxCount))
	e.str(h.Proposer)
	return e.sum()
}

// TxRootOf is the Merkle root of the transactions' leaf hashes.
func TxRootOf(txs []*Tx) Hash {
	leaves := make([]Hash, len(txs))
	for i, t := range txs {
		leaves[i] = t.LeafHash()
	}
	return MerkleRoot(leaves)
}

// NewBlock builds and signs the block that extends prev (nil for genesis) with txs.
func NewBlock(network Hash, height uint64, prev Hash, at time.Time, txs []*Tx, proposer *identity.Key) (*Block, error) {
	b := &Block{
		Header: Header{
			Network: network, Height: height, Prev: prev, Time: at.UTC(),
			TxRoot: TxRootOf(txs), TxCount: len(txs), Proposer: proposer.ID(),
		},
		Txs: txs,
	}
	b.Hash = b.ComputeHash()
	sig, err := proposer.Sign(identity.DomainBlock, b.Hash[:])
	if err != nil {
		return nil, fmt.Errorf("sign block %d: %w", height, err)
	}
	b.Sig = sig
	return b, nil
}

// Encode is the JSON form of the block, as stored and sent.
func (b *Block) Encode() ([]byte, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode block %d: %w", b.Height, err)
	}
	return data, nil
}

// DecodeBlock decodes a block and checks its form: canonical transactions, the carried
// hash equal to the computed one, the Merkle root and count of its transactions.
// Signatures and chaining are checked by CheckBlock.
func DecodeBlock(data []byte) (*Block, error) {
	var b Block
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w block: %v", ErrMalformed, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w block: trailing data after the JSON object", ErrMalformed)
	}
	if err := b.checkForm(); err != nil {
		return nil, err
	}
	return &b, nil
}

func (b *Block) checkForm() error {
	if len(b.Txs) > MaxBlockTxs {
		return fmt.Errorf("%w block %d: %d transactions, at most %d allowed", ErrMalformed, b.Height, len(b.Txs), MaxBlockTxs)
	}
	for i, t := range b.Txs {
		if t == nil {
			return fmt.Errorf("%w block %d: transaction %d is null", ErrMalformed, b.Height, i)
		}
		if err := t.checkForm(); err != nil {
			return fmt.Errorf("block %d transaction %d: %w", b.Height, i, err)
		}
	}
	if b.TxCount != len(b.Txs) {
		return fmt.Errorf("%w block %d: header says %d transactions, block holds %d", ErrTampered, b.Height, b.TxCount, len(b.Txs))
	}
	if root := TxRootOf(b.Txs); root != b.TxRoot {
		return fmt.Errorf("%w block %d: Merkle root of its transactions is %s, header says %s", ErrTampered, b.Height, root.Short(), b.TxRoot.Short())
	}
	if h := b.ComputeHash(); h != b.Hash {
		return fmt.Errorf("%w block %d: header hashes to %s, block says %s", ErrTampered, b.Height, h.Short(), b.Hash.Short())
	}
	return nil
}
