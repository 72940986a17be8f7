package ledger

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"qnet.dev/qnet/identity"
)

// keyChange is a key the genesis block registers.
type keyChange struct {
	Put *KeyInfo
}

func genesisKeys(g *Genesis) []keyChange {
	validators := make(map[string]bool, len(g.Validators))
	for _, v := range g.Validators {
		validators[v] = true
	}
	var out []keyChange
	for _, op := range g.Operators {
		out = append(out, keyChange{Put: &KeyInfo{ID: op.Key.ID(), Public: op.Key, Role: RoleOperator, Owner: op.Name}})
	}
	for _, n := range g.Nodes {
		out = append(out, keyChange{Put: &KeyInfo{ID: n.Key.ID(), Public: n.Key, Role: RoleNode, Owner: n.ID, Validator: validators[n.ID]}})
	}
	return out
}

// NewGenesis builds the genesis block of a new network: one transaction, signed by the
// first operator, registering g's operators and nodes, in a block signed by the first
// validator.
func NewGenesis(g *Genesis, operator, validator *identity.Key) (*Block, error) {
	tx, err := NewTx(TxGenesis, ZeroHash, g, g.Created.Add(MaxTxLifetime))
	if err != nil {
		return nil, err
	}
	if err := tx.Sign(operator); err != nil {
		return nil, err
	}
	b, err := NewBlock(ZeroHash, 0, ZeroHash, g.Created, []*Tx{tx}, validator)
	if err != nil {
		return nil, err
	}
	if _, err := CheckGenesis(b); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckGenesis checks a genesis block on its own: it is its own root of trust, so the
// keys it registers must have signed it. It returns the genesis payload.
func CheckGenesis(b *Block) (*Genesis, error) {
	if err := b.checkForm(); err != nil {
		return nil, err
	}
	if b.Height != 0 || !b.Prev.IsZero() || !b.Network.IsZero() {
		return nil, fmt.Errorf("%w: genesis block must have height 0 and zero previous hash and network", ErrBadChain)
	}
	if len(b.Txs) != 1 || b.Txs[0].Type != TxGenesis {
		return nil, fmt.Errorf("%w: genesis block must hold exactly one %s transaction", ErrBadChain, TxGenesis)
	}
	t := b.Txs[0]
	var g Genesis
	if err := t.Decode(&g); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	if g.Network == "" || len(g.Operators) == 0 || len(g.Nodes) == 0 || len(g.Validators) == 0 {
		return nil, fmt.Errorf("%w genesis: needs a network name, an operator, a node and a validator", ErrMalformed)
	}
	mem := NewChain()
	for _, c := range genesisKeys(&g) {
		if err := mem.PutKey(*c.Put); err != nil {
			return nil, fmt.Errorf("genesis: %w", err)
		}
	}
	info, v, ok := mem.Key(t.Signer)
	if !ok || info.Role != RoleOperator {
		return nil, fmt.Errorf("%w: genesis is signed by %s, which is not one of its operators", ErrUnknownSigner, t.Signer)
	}
	if err := v.Verify(identity.DomainTx, t.SigningBytes(), t.Sig); err != nil {
		return nil, fmt.Errorf("genesis transaction: %w", err)
	}
	if err := checkProposer(mem, b); err != nil {
		return nil, err
	}
	return &g, nil
}

// Chain is an in-memory ChainState built by appending blocks from genesis. It is how a
// whole chain is verified.
type Chain struct {
	started bool
	network Hash
	height  uint64
	tip     Hash
	tipTime time.Time
	keys    map[string]chainKey
	tokens  map[string]Token
	txs     map[Hash]uint64
	ntx     int
}

type chainKey struct {
	info KeyInfo
	v    *identity.Verifier
}

// NewChain returns an empty chain waiting for its genesis block.
func NewChain() *Chain {
	return &Chain{keys: map[string]chainKey{}, tokens: map[string]Token{}, txs: map[Hash]uint64{}}
}

// Network implements ChainState.
func (c *Chain) Network() Hash { return c.network }

// Tip implements ChainState.
func (c *Chain) Tip() (uint64, Hash, time.Time, bool) {
	return c.height, c.tip, c.tipTime, c.started
}

// Key implements ChainState.
func (c *Chain) Key(id string) (KeyInfo, *identity.Verifier, bool) {
	k, ok := c.keys[id]
	return k.info, k.v, ok
}

// TxHeight implements ChainState.
func (c *Chain) TxHeight(id Hash) (uint64, bool) {
	h, ok := c.txs[id]
	return h, ok
}

// Keys implements Registry.
func (c *Chain) Keys() ([]KeyInfo, error) {
	out := make([]KeyInfo, 0, len(c.keys))
	for _, k := range c.keys {
		out = append(out, k.info)
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// PutKey implements Registry.
func (c *Chain) PutKey(k KeyInfo) error {
	v, err := k.Public.Verifier()
	if err != nil {
		return fmt.Errorf("key %s of %s: %w", k.ID, k.Owner, err)
	}
	c.keys[k.ID] = chainKey{info: k, v: v}
	return nil
}

// DeleteKey implements Registry.
func (c *Chain) DeleteKey(id string) error {
	delete(c.keys, id)
	return nil
}

// Token implements Registry.
func (c *Chain) Token(id string) (Token, bool, error) {
	t, ok := c.tokens[id]
	return t, ok, nil
}

// PutToken implements Registry.
func (c *Chain) PutToken(t Token) error {
	c.tokens[t.ID] = t
	return nil
}

// Append checks b against the chain and, if it is valid, appends it.
func (c *Chain) Append(b *Block) error {
	if !c.started {
		if _, err := CheckGenesis(b); err != nil {
			return fmt.Errorf("block 0: %w", err)
		}
		c.network = b.Hash
	} else if err := CheckBlock(c, b, nil); err != nil {
		return err
	}
	for _, t := range b.Txs {
		// A transaction the registry's rules refuse (or cannot decode) was still
		// committed; it changes nothing, on every node alike.
		_ = ApplyRegistry(c, t, b.Time)
		c.txs[t.ID()] = b.Height
	}
	c.started = true
	c.height, c.tip, c.tipTime = b.Height, b.Hash, b.Time
	c.ntx += len(b.Txs)
	return nil
}

// Report sums up a verified chain.
type Report struct {
	Network Hash   `json:"network"`
	Blocks  uint64 `json:"blocks"`
	Txs     int    `json:"txs"`
	Tip     Hash   `json:"tip"`
}

// BlockSource yields a chain's stored blocks in order, as raw bytes; io.EOF ends it.
type BlockSource func() (height uint64, data []byte, err error)

// Verify re-checks a stored chain from genesis: every block's encoding, hash, Merkle root,
// chaining and proposer signature, and every transaction's signature, signer and
// uniqueness. The error names the first bad block.
func Verify(next BlockSource) (Report, error) {
	c := NewChain()
	var want uint64
	for {
		h, data, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.report(), fmt.Errorf("read block %d: %w", want, err)
		}
		if h != want {
			return c.report(), fmt.Errorf("%w: block %d is missing (next stored block is %d)", ErrTampered, want, h)
		}
		b, err := DecodeBlock(data)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("block %d", h)) {
				err = fmt.Errorf("block %d: %w", h, err)
			}
			return c.report(), err
		}
		if b.Height != h {
			return c.report(), fmt.Errorf("%w: block stored at height %d says it is block %d", ErrTampered, h, b.Height)
		}
		if err := c.Append(b); err != nil {
			return c.report(), err
		}
		want++
	}
	if !c.started {
		return c.report(), fmt.Errorf("%w: the chain has no genesis block", ErrBadChain)
	}
	return c.report(), nil
}

func (c *Chain) report() Report {
	r := Report{Network: c.network, Tip: c.tip, Txs: c.ntx}
	if c.started {
		r.Blocks = c.height + 1
	}
	return r
}
