package ledger

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"qnet.dev/qnet/identity"
)

// Errors that tell why a transaction or block was refused. They are wrapped with the
// details; test with errors.Is.
var (
	ErrTampered      = errors.New("tampered")
	ErrReplay        = errors.New("replayed transaction")
	ErrUnknownSigner = errors.New("unknown signer")
	ErrNotAllowed    = errors.New("not allowed")
	ErrExpired       = errors.New("transaction expired")
	ErrBadChain      = errors.New("does not extend the chain")
	ErrWrongNetwork  = errors.New("wrong network")
)

// Role is what a key may sign for.
type Role string

// Roles of keys.
const (
	RoleOperator Role = "operator"
	RoleNode     Role = "node"
)

// KeyInfo is a key the ledger knows.
type KeyInfo struct {
	ID     string             `json:"id"`
	Public identity.PublicKey `json:"public"`
	Role   Role               `json:"role"`
	// Owner is the operator's name or the node's ID (a node keeps its ID when its keys rotate).
	Owner string `json:"owner"`
	// Validator marks node keys that may propose blocks.
	Validator bool `json:"validator,omitempty"`
}

// ChainState is what checking a block needs to know of the chain before it.
type ChainState interface {
	// Network is the genesis hash, zero before genesis.
	Network() Hash
	// Tip is the last block, ok false before genesis.
	Tip() (height uint64, hash Hash, at time.Time, ok bool)
	// Key returns a key that is registered and not revoked, with its parsed verifier.
	Key(id string) (KeyInfo, *identity.Verifier, bool)
	// TxHeight returns the height of the block that committed the transaction.
	TxHeight(id Hash) (uint64, bool)
}

// SigCache remembers transactions whose signatures were already checked, so a node that
// verified a transaction when it was submitted need not verify it again when it applies
// the block. A leaf hash covers the transaction and its signature, so a hit is exact.
type SigCache interface {
	Verified(leaf Hash) bool
	Add(leaf Hash)
}

// roles says which roles may sign each transaction type.
var roles = map[TxType][]Role{
	TxGenesis:       {RoleOperator},
	TxServiceApply:  {RoleOperator},
	TxServiceDelete: {RoleOperator},
	TxPlacement:     {RoleNode},
	TxDepotStatus:   {RoleNode},
	TxNodeUpdate:    {RoleNode, RoleOperator},
	TxTokenCreate:   {RoleOperator},
	TxNodeJoin:      {RoleNode},
	TxNodeRemove:    {RoleOperator},
	TxNodeRotate:    {RoleNode},
	TxValidators:    {RoleNode},
	TxReceipts:      {RoleNode},
	TxRolloutStatus: {RoleNode},
	TxRolloutPause:  {RoleOperator},
	TxRolloutResume: {RoleOperator},
	TxSecretKey:     {RoleNode},
	TxSecretPut:     {RoleOperator},
	TxSecretRemove:  {RoleOperator},
	TxConfigPut:     {RoleOperator},
	TxConfigRemove:  {RoleOperator},
}

// KnownType reports whether t is a transaction type this version understands.
func KnownType(t TxType) bool { _, ok := roles[t]; return ok }

// CheckTx checks a transaction against the chain as of time now: network, type, signer
// and its role, replay, expiry and signature. cache may be nil.
func CheckTx(cs ChainState, t *Tx, now time.Time, cache SigCache) error {
	if err := t.checkForm(); err != nil {
		return err
	}
	if err := checkTxEnvelope(cs, t, now); err != nil {
		return err
	}
	return checkTxSig(cs, t, cache)
}

func checkTxEnvelope(cs ChainState, t *Tx, now time.Time) error {
	allowed, ok := roles[t.Type]
	if !ok {
		return fmt.Errorf("%w: unknown transaction type %q", ErrNotAllowed, t.Type)
	}
	if t.Type == TxGenesis {
		return fmt.Errorf("%w: a genesis transaction is only valid in block 0", ErrNotAllowed)
	}
	if net := cs.Network(); t.Network != net {
		return fmt.Errorf("%w: transaction %s is for network %s, this is %s", ErrWrongNetwork, t.ID().Short(), t.Network.Short(), net.Short())
	}
	info, _, ok := cs.Key(t.Signer)
	if !ok {
		return fmt.Errorf("%w: key %s is not registered on this network (or was revoked)", ErrUnknownSigner, t.Signer)
	}
	permitted := false
	for _, r := range allowed {
		permitted = permitted || r == info.Role
	}
	if !permitted {
		return fmt.Errorf("%w: the %s key of %s may not sign %s transactions", ErrNotAllowed, info.Role, info.Owner, t.Type)
	}
	if h, seen := cs.TxHeight(t.ID()); seen {
		return fmt.Errorf("%w: %s was already committed in block %d", ErrReplay, t.ID().Short(), h)
	}
	if t.Expires.Before(now) {
		return fmt.Errorf("%w: %s expired at %s, before %s", ErrExpired, t.ID().Short(), t.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t.Expires.After(now.Add(MaxTxLifetime)) {
		return fmt.Errorf("%w: %s expires at %s, more than %s after %s (is the signer's clock far off?)", ErrNotAllowed, t.ID().Short(), t.Expires.Format(time.RFC3339), MaxTxLifetime, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkTxSig(cs ChainState, t *Tx, cache SigCache) error {
	leaf := t.LeafHash()
	if cache != nil && cache.Verified(leaf) {
		return nil
	}
	_, v, ok := cs.Key(t.Signer)
	if !ok {
		return fmt.Errorf("%w: key %s", ErrUnknownSigner, t.Signer)
	}
	if err := v.Verify(identity.DomainTx, t.SigningBytes(), t.Sig); err != nil {
		return fmt.Errorf("transaction %s (%s): %w", t.ID().Short(), t.Type, err)
	}
	if cache != nil {
		cache.Add(leaf)
	}
	return nil
}

// CheckBlock checks that b may extend the chain described by cs: form, network, height,
// previous hash, time, proposer and its signature, and every transaction. Signatures are
// checked in parallel; the error names the first bad transaction by index.
func CheckBlock(cs ChainState, b *Block, cache SigCache) error {
	if err := b.checkForm(); err != nil {
		return err
	}
	height, tip, tipTime, ok := cs.Tip()
	if !ok {
		return fmt.Errorf("%w: block %d arrives before genesis", ErrBadChain, b.Height)
	}
	if b.Height != height+1 {
		return fmt.Errorf("%w: block has height %d, the chain is at %d", ErrBadChain, b.Height, height)
	}
	if b.Prev != tip {
		return fmt.Errorf("%w: block %d follows %s, the chain's tip is %s", ErrBadChain, b.Height, b.Prev.Short(), tip.Short())
	}
	if net := cs.Network(); b.Network != net {
		return fmt.Errorf("%w: block %d is for network %s, this is %s", ErrWrongNetwork, b.Height, b.Network.Short(), net.Short())
	}
	if b.Time.Before(tipTime) {
		return fmt.Errorf("%w: block %d time %s is before its parent's %s", ErrBadChain, b.Height, b.Time.Format(time.RFC3339Nano), tipTime.Format(time.RFC3339Nano))
	}
	if err := checkProposer(cs, b); err != nil {
		return err
	}
	seen := make(map[Hash]int, len(b.Txs))
	for i, t := range b.Txs {
		id := t.ID()
		if j, dup := seen[id]; dup {
			return fmt.Errorf("block %d transaction %d: %w: same as transaction %d of the block", b.Height, i, ErrReplay, j)
		}
		seen[id] = i
		if err := checkTxEnvelope(cs, t, b.Time); err != nil {
			return fmt.Errorf("block %d transaction %d: %w", b.Height, i, err)
		}
	}
	return checkSigs(cs, b, cache)
}

func checkProposer(cs ChainState, b *Block) error {
	info, v, ok := cs.Key(b.Proposer)
	if !ok {
		return fmt.Errorf("%w: block %d proposer %s is not a registered key", ErrUnknownSigner, b.Height, b.Proposer)
	}
	if info.Role != RoleNode || !info.Validator {
		return fmt.Errorf("%w: block %d proposer %s (%s) is not a validator", ErrNotAllowed, b.Height, b.Proposer, info.Owner)
	}
	if err := v.Verify(identity.DomainBlock, b.Hash[:], b.Sig); err != nil {
		return fmt.Errorf("block %d proposer signature: %w", b.Height, err)
	}
	return nil
}

// checkSigs verifies every transaction signature of b, spread over the CPUs.
func checkSigs(cs ChainState, b *Block, cache SigCache) error {
	errs := make([]error, len(b.Txs))
	workers := min(runtime.GOMAXPROCS(0), len(b.Txs))
	if workers <= 1 {
		for i, t := range b.Txs {
			errs[i] = checkTxSig(cs, t, cache)
		}
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(b.Txs); i += workers {
					errs[i] = checkTxSig(cs, b.Txs[i], cache)
				}
			})
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("block %d transaction %d: %w", b.Height, i, err)
		}
	}
	return nil
}
