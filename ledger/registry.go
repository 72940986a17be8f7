package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"qnet.dev/qnet/identity"
)

// Token is a join token as the ledger keeps it.
type Token struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secretHash"`
	Expires    time.Time `json:"expires"`
	// UsesLeft counts down with each admission.
	UsesLeft  int    `json:"usesLeft"`
	CreatedBy string `json:"createdBy"`
}

// Registry is the part of the chain's state that decides who may sign: keys and join
// tokens. The state store implements it over bbolt, Chain in memory; ApplyRegistry is
// the one place its rules live, so a node applying blocks and `qnet ledger verify`
// agree on every key.
type Registry interface {
	ChainState
	// Keys lists every registered key.
	Keys() ([]KeyInfo, error)
	PutKey(KeyInfo) error
	DeleteKey(id string) error
	Token(id string) (Token, bool, error)
	PutToken(Token) error
}

// ErrRegistry is wrapped by the errors of transactions that a registry rule refused:
// they are committed, and take no effect.
var ErrRegistry = errors.New("refused")

// MaxValidators bounds the validator set.
const MaxValidators = 7

// RotationMessage is what a node's new key signs to agree to replace its old one.
func RotationMessage(network Hash, node string, newKey identity.PublicKey) []byte {
	e := newEncoder("qnet/rotate/v1")
	e.fixed(network[:])
	e.str(node)
	fp := newKey.Fingerprint()
	e.fixed(fp[:])
	return e.b
}

// TokenID names a token by its secret: the first 8 bytes of the secret's hash, in hex.
func TokenID(secretHash [32]byte) string {
	return fmt.Sprintf("%016x", binary.BigEndian.Uint64(secretHash[:8]))
}

func ownerKeys(r Registry, owner string) ([]KeyInfo, error) {
	all, err := r.Keys()
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	for _, k := range all {
		if k.Owner == owner && k.Role == RoleNode {
			out = append(out, k)
		}
	}
	return out, nil
}

// ApplyRegistry applies what a committed transaction changes in the registry, at the
// block's time. A transaction a rule refuses changes nothing and returns an error that
// wraps ErrRegistry; the caller records it as failed.
func ApplyRegistry(r Registry, t *Tx, at time.Time) error {
	switch t.Type {
	case TxGenesis:
		var g Genesis
		if err := t.Decode(&g); err != nil {
			return err
		}
		for _, c := range genesisKeys(&g) {
			if err := r.PutKey(*c.Put); err != nil {
				return err
			}
		}
	case TxTokenCreate:
		var p TokenCreate
		if err := t.Decode(&p); err != nil {
			return err
		}
		if err := checkToken(&p); err != nil {
			return err
		}
		if _, exists, err := r.Token(p.ID); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("%w: token %s exists", ErrRegistry, p.ID)
		}
		signer, _, _ := r.Key(t.Signer)
		return r.PutToken(Token{ID: p.ID, SecretHash: p.SecretHash, Expires: p.Expires, UsesLeft: p.Uses, CreatedBy: signer.Owner})
	case TxNodeJoin:
		var p NodeJoin
		if err := t.Decode(&p); err != nil {
			return err
		}
		tok, ok, err := r.Token(p.Token)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("%w: join token %s is unknown", ErrRegistry, p.Token)
		case !at.Before(tok.Expires):
			return fmt.Errorf("%w: join token %s expired at %s", ErrRegistry, p.Token, tok.Expires.Format(time.RFC3339))
		case tok.UsesLeft <= 0:
			return fmt.Errorf("%w: join token %s is used up", ErrRegistry, p.Token)
		}
		if err := p.Node.Key.Check(); err != nil {
			return fmt.Errorf("%w: node key: %v", ErrRegistry, err)
		}
		if p.Node.ID != p.Node.Key.ID() {
			return fmt.Errorf("%w: node ID %s does not derive from its keys (%s)", ErrRegistry, p.Node.ID, p.Node.Key.ID())
		}
		if p.Node.Key.HPKE == nil {
			return fmt.Errorf("%w: node %s has no HPKE key", ErrRegistry, p.Node.ID)
		}
		if _, _, exists := r.Key(p.Node.ID); exists {
			return fmt.Errorf("%w: node %s is already a member", ErrRegistry, p.Node.ID)
		}
		if keys, err := ownerKeys(r, p.Node.ID); err != nil {
			return err
		} else if len(keys) > 0 {
			return fmt.Errorf("%w: node %s is already a member", ErrRegistry, p.Node.ID)
		}
		tok.UsesLeft--
		if err := r.PutToken(tok); err != nil {
			return err
		}
		return r.PutKey(KeyInfo{ID: p.Node.Key.ID(), Public: p.Node.Key, Role: RoleNode, Owner: p.Node.ID})
	case TxNodeRemove:
		var p NodeRemove
		if err := t.Decode(&p); err != nil {
			return err
		}
		keys, err := ownerKeys(r, p.Node)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("%w: node %s is not a member", ErrRegistry, p.Node)
		}
		for _, k := range keys {
			if err := r.DeleteKey(k.ID); err != nil {
				return err
			}
		}
	case TxNodeRotate:
		var p NodeRotate
		if err := t.Decode(&p); err != nil {
			return err
		}
		signer, _, _ := r.Key(t.Signer)
		if signer.Owner != p.Node {
			return fmt.Errorf("%w: node %s may not rotate the keys of node %s", ErrRegistry, signer.Owner, p.Node)
		}
		if err := p.Key.Check(); err != nil {
			return fmt.Errorf("%w: new key: %v", ErrRegistry, err)
		}
		if p.Key.HPKE == nil {
			return fmt.Errorf("%w: new key has no HPKE key", ErrRegistry)
		}
		if _, _, exists := r.Key(p.Key.ID()); exists {
			return fmt.Errorf("%w: key %s is already registered", ErrRegistry, p.Key.ID())
		}
		if err := p.Key.Verify(identity.DomainTx, RotationMessage(r.Network(), p.Node, p.Key), p.Proof); err != nil {
			return fmt.Errorf("%w: the new key did not sign the rotation: %v", ErrRegistry, err)
		}
		if err := r.DeleteKey(signer.ID); err != nil {
			return err
		}
		return r.PutKey(KeyInfo{ID: p.Key.ID(), Public: p.Key, Role: RoleNode, Owner: p.Node, Validator: signer.Validator})
	case TxValidators:
		var p ValidatorsSet
		if err := t.Decode(&p); err != nil {
			return err
		}
		signer, _, _ := r.Key(t.Signer)
		if !signer.Validator {
			return fmt.Errorf("%w: validators are set by a validator; %s is not one", ErrRegistry, signer.Owner)
		}
		if len(p.Validators) == 0 || len(p.Validators) > MaxValidators {
			return fmt.Errorf("%w: a validator set has 1 to %d nodes, not %d", ErrRegistry, MaxValidators, len(p.Validators))
		}
		all, err := r.Keys()
		if err != nil {
			return err
		}
		for _, v := range p.Validators {
			found := false
			for _, k := range all {
				found = found || (k.Role == RoleNode && k.Owner == v)
			}
			if !found {
				return fmt.Errorf("%w: validator %s is not a member", ErrRegistry, v)
			}
		}
		for _, k := range all {
			if k.Role != RoleNode {
				continue
			}
			want := slices.Contains(p.Validators, k.Owner)
			if k.Validator != want {
				k.Validator = want
				if err := r.PutKey(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkToken(p *TokenCreate) error {
	switch {
	case len(p.ID) != 16:
		return fmt.Errorf("%w: token ID %q must be 16 hex characters", ErrRegistry, p.ID)
	case len(p.SecretHash) != 64:
		return fmt.Errorf("%w: token secret hash must be 64 hex characters", ErrRegistry)
	case p.Uses < 1 || p.Uses > 10000:
		return fmt.Errorf("%w: token uses must be between 1 and 10000, not %d", ErrRegistry, p.Uses)
	}
	return nil
}
