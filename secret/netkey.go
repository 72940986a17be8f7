package secret

import (
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// NetworkPublicKey is the public half of the network's secret key, as the ledger
// records it. Operators seal secrets to it.
type NetworkPublicKey struct {
	// ID is KeyID(HPKE).
	ID string `json:"id"`
	// HPKE is the serialized MLKEM768-X25519 public key.
	HPKE []byte `json:"hpke"`
}

// Check reports whether the key parses and its ID matches it.
func (p NetworkPublicKey) Check() error {
	_, err := p.parse()
	return err
}

func (p NetworkPublicKey) parse() (hpke.PublicKey, error) {
	pub, err := parsePublic("network public key", p.HPKE)
	if err != nil {
		return nil, err
	}
	if id := KeyID(p.HPKE); p.ID != id {
		return nil, fmt.Errorf("network public key: recorded id %s does not match the key (%s)", quote(p.ID), id)
	}
	return pub, nil
}

// NetworkKey is the network's secret key pair. It lives only in validators' memory; it is
// stored solely as KeyShares sealed to each validator.
type NetworkKey struct {
	priv hpke.PrivateKey
	pub  NetworkPublicKey
}

// NewNetworkKey makes a fresh network key.
func NewNetworkKey() (*NetworkKey, error) {
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate network key: %w", err)
	}
	return newNetworkKey(priv), nil
}

func newNetworkKey(priv hpke.PrivateKey) *NetworkKey {
	b := priv.PublicKey().Bytes()
	return &NetworkKey{priv: priv, pub: NetworkPublicKey{ID: KeyID(b), HPKE: b}}
}

// ID is the key's ID, recorded in every secret sealed to it.
func (k *NetworkKey) ID() string { return k.pub.ID }

// Public returns the public half, for the ledger.
func (k *NetworkKey) Public() NetworkPublicKey {
	return NetworkPublicKey{ID: k.pub.ID, HPKE: append([]byte(nil), k.pub.HPKE...)}
}

// String returns "network key ID"; the private half is never printed.
func (k *NetworkKey) String() string { return "network key " + k.pub.ID }

// Format writes String for every verb, so no verb prints the private half.
func (k *NetworkKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue makes slog log the key's ID only.
func (k *NetworkKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// KeyShare is the network key's private half sealed to one validator's node HPKE key.
// The ledger holds one per validator (and per network key during a rotation).
type KeyShare struct {
	// KeyID is the ID of the network key inside.
	KeyID string `json:"keyId"`
	// Node is the ID of the validator node the share is for.
	Node string `json:"node"`
	// NodeKey is KeyID of the node's HPKE public key the share is sealed to.
	NodeKey    string `json:"nodeKey"`
	Enc        []byte `json:"enc"`
	Ciphertext []byte `json:"ciphertext"`
}

// shareSize is the size of a serialized MLKEM768-X25519 private key (its seed).
const shareSize = 32

// ShareFor seals the key's private half to node, whose node HPKE public key is nodePub
// (identity.PublicKey.HPKE).
func (k *NetworkKey) ShareFor(node string, nodePub []byte) (KeyShare, error) {
	if err := validateID("node", node); err != nil {
		return KeyShare{}, fmt.Errorf("share %s: %w", k, err)
	}
	pub, err := parsePublic("node "+node+" hpke key", nodePub)
	if err != nil {
		return KeyShare{}, fmt.Errorf("share %s: %w", k, err)
	}
	// crypto/hpke returns the key's own seed, not a copy: raw must not be wiped here.
	raw, err := k.priv.Bytes()
	if err != nil {
		return KeyShare{}, fmt.Errorf("share %s: serialize: %w", k, err)
	}
	sh := KeyShare{KeyID: k.pub.ID, Node: node, NodeKey: KeyID(nodePub)}
	sh.Enc, sh.Ciphertext, err = seal(pub, infoShare, sh.binding(), raw)
	if err != nil {
		return KeyShare{}, fmt.Errorf("share %s with node %s: %w", k, node, err)
	}
	return sh, nil
}

func (sh KeyShare) binding() []byte { return binding(0, sh.KeyID, sh.Node, sh.NodeKey) }

// OpenShare recovers the network key from a share, with the node's HPKE private key
// (identity.Key.HPKE).
func OpenShare(sh KeyShare, nodePriv hpke.PrivateKey) (*NetworkKey, error) {
	if err := sh.Check(); err != nil {
		return nil, err
	}
	if err := checkPrivate("open key share: node key", nodePriv); err != nil {
		return nil, err
	}
	if id := KeyID(nodePriv.PublicKey().Bytes()); id != sh.NodeKey {
		return nil, fmt.Errorf("open share of network key %s for node %s: %w: it is sealed to node key %s, this key is %s", sh.KeyID, sh.Node, ErrWrongKey, sh.NodeKey, id)
	}
	raw, err := open(nodePriv, infoShare, sh.Enc, sh.binding(), sh.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("open share of network key %s for node %s: %w", sh.KeyID, sh.Node, err)
	}
	defer clear(raw) // NewPrivateKey keeps a copy
	priv, err := kem.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("open share of network key %s for node %s: not a key: %w", sh.KeyID, sh.Node, err)
	}
	k := newNetworkKey(priv)
	if k.ID() != sh.KeyID {
		return nil, fmt.Errorf("open share for node %s: it holds network key %s, not %s as it says", sh.Node, k.ID(), sh.KeyID)
	}
	return k, nil
}

// Check reports whether the share is well formed. It does not open it.
func (sh KeyShare) Check() error {
	err := errors.Join(
		checkKeyID("keyId", sh.KeyID),
		validateID("node", sh.Node),
		checkKeyID("nodeKey", sh.NodeKey),
		checkLen("enc", sh.Enc, EncSize, EncSize),
		checkLen("ciphertext", sh.Ciphertext, shareSize+Overhead, shareSize+Overhead),
	)
	if err != nil {
		return fmt.Errorf("key share: %w", err)
	}
	return nil
}

// UnmarshalJSON decodes a share and checks it.
func (sh *KeyShare) UnmarshalJSON(data []byte) error {
	type plain KeyShare
	var p plain
	if null, err := decodeJSON(data, "key share", &p); null || err != nil {
		return err
	}
	if err := KeyShare(p).Check(); err != nil {
		return err
	}
	*sh = KeyShare(p)
	return nil
}

// Rotation replaces the network key: every secret sealed to Old is sealed again to New.
// Until all are, validators keep both keys.
type Rotation struct {
	Old, New *NetworkKey
}

// Rotate makes a new network key to replace old. Put New's shares on the ledger
// (New.ShareFor each validator) and then the secrets that Reseal returns.
func Rotate(old *NetworkKey) (*Rotation, error) {
	if old == nil {
		return nil, errors.New("rotate network key: no current key given")
	}
	k, err := NewNetworkKey()
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", old, err)
	}
	return &Rotation{Old: old, New: k}, nil
}

// Reseal seals each secret again to the new key, in order. Secrets already sealed to it
// are returned as they are, so an interrupted rotation can be run again. A secret sealed
// to neither key fails the whole call, and nothing is returned.
func (r *Rotation) Reseal(sealed []Sealed) ([]Sealed, error) {
	out := make([]Sealed, len(sealed))
	pub := r.New.Public()
	for i, s := range sealed {
		if s.KeyID == r.New.ID() {
			out[i] = s
			continue
		}
		v, err := Open(s, r.Old)
		if err != nil {
			return nil, fmt.Errorf("rotate to %s: %w", r.New, err)
		}
		out[i], err = Seal(pub, s.Name, s.Version, v)
		v.Wipe()
		if err != nil {
			return nil, fmt.Errorf("rotate to %s: %w", r.New, err)
		}
	}
	return out, nil
}
