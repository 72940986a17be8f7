package secret

import (
	"crypto/hpke"
	"errors"
	"fmt"
	"slices"
)

// Target is where a secret is released to: a node, and the depot on it that needs the
// secret.
type Target struct {
	// Node is the node's ID on the ledger.
	Node string `json:"node"`
	// Placement is the ID of the placement, which is the depot's ID.
	Placement string `json:"placement"`
}

// Check reports whether both IDs are well formed.
func (t Target) Check() error {
	return errors.Join(validateID("node", t.Node), validateID("placement", t.Placement))
}

// Depot is what the ledger says about the depot a release is asked for.
type Depot struct {
	// Placement is the placement's (and so the depot's) ID.
	Placement string
	// Node is the node the placement puts the depot on.
	Node string
	// Secrets are the names of the secrets the depot's service manifest names.
	Secrets []string
}

// ErrNotAuthorized is returned when a secret may not be released to a target.
var ErrNotAuthorized = errors.New("release not authorized")

// Authorize reports whether secret name may be released to the target: the ledger must
// place the depot on that node and its manifest must name the secret. d is what the
// ledger says about the placement to.Placement; to.Node must be the peer the request
// came from, as the tunnel authenticated it.
func Authorize(name string, to Target, d Depot) error {
	switch {
	case d.Placement != to.Placement:
		return fmt.Errorf("release secret %s: %w: asked for depot %s but given the ledger's record of %s", quote(name), ErrNotAuthorized, quote(to.Placement), quote(d.Placement))
	case d.Node != to.Node:
		return fmt.Errorf("release secret %s: %w: depot %s runs on node %s, not on %s", quote(name), ErrNotAuthorized, to.Placement, d.Node, quote(to.Node))
	case !slices.Contains(d.Secrets, name):
		return fmt.Errorf("release secret %s: %w: the manifest of depot %s does not name it (it names %v)", quote(name), ErrNotAuthorized, to.Placement, d.Secrets)
	}
	return nil
}

// Released is a secret sealed to one node's HPKE key, for one depot on it. It is what a
// validator sends over the tunnel; only that node can open it.
type Released struct {
	Name      string `json:"name"`
	Version   uint64 `json:"version"`
	Node      string `json:"node"`
	Placement string `json:"placement"`
	// NodeKey is KeyID of the node's HPKE public key it is sealed to.
	NodeKey    string `json:"nodeKey"`
	Enc        []byte `json:"enc"`
	Ciphertext []byte `json:"ciphertext"`
}

// Target returns the node and depot the secret is released to.
func (r Released) Target() Target { return Target{Node: r.Node, Placement: r.Placement} }

func (r Released) binding() []byte {
	return binding(r.Version, r.Name, r.Node, r.Placement, r.NodeKey)
}

// Reseal opens a sealed secret with the network key and seals it to node to.Node, whose
// node HPKE public key is nodePub (identity.PublicKey.HPKE), for depot to.Placement.
// Call Authorize first. The plaintext is wiped before Reseal returns.
func Reseal(s Sealed, key *NetworkKey, nodePub []byte, to Target) (Released, error) {
	if err := to.Check(); err != nil {
		return Released{}, fmt.Errorf("release secret %s: %w", quote(s.Name), err)
	}
	pub, err := parsePublic("node "+to.Node+" hpke key", nodePub)
	if err != nil {
		return Released{}, fmt.Errorf("release secret %s: %w", quote(s.Name), err)
	}
	v, err := Open(s, key)
	if err != nil {
		return Released{}, fmt.Errorf("release: %w", err)
	}
	defer v.Wipe()
	r := Released{Name: s.Name, Version: s.Version, Node: to.Node, Placement: to.Placement, NodeKey: KeyID(nodePub)}
	r.Enc, r.Ciphertext, err = seal(pub, infoReleased, r.binding(), v.Reveal())
	if err != nil {
		return Released{}, fmt.Errorf("release secret %s v%d to node %s: %w", s.Name, s.Version, to.Node, err)
	}
	return r, nil
}

// OpenReleased recovers a released secret with the node's HPKE private key
// (identity.Key.HPKE). want is this node and the depot the secret was asked for: a
// release for another node or depot is refused even before decryption.
func OpenReleased(r Released, nodePriv hpke.PrivateKey, want Target) (Value, error) {
	if err := r.Check(); err != nil {
		return Value{}, err
	}
	if got := r.Target(); got != want {
		return Value{}, fmt.Errorf("open released secret %s v%d: %w: it is for node %s depot %s, wanted node %s depot %s", r.Name, r.Version, ErrWrongKey, got.Node, got.Placement, quote(want.Node), quote(want.Placement))
	}
	if err := checkPrivate("open released secret: node key", nodePriv); err != nil {
		return Value{}, err
	}
	if id := KeyID(nodePriv.PublicKey().Bytes()); id != r.NodeKey {
		return Value{}, fmt.Errorf("open released secret %s v%d: %w: it is sealed to node key %s, this key is %s", r.Name, r.Version, ErrWrongKey, r.NodeKey, id)
	}
	pt, err := open(nodePriv, infoReleased, r.Enc, r.binding(), r.Ciphertext)
	if err != nil {
		return Value{}, fmt.Errorf("open released secret %s v%d on node %s: %w", r.Name, r.Version, r.Node, err)
	}
	return NewValue(r.Name, r.Version, pt), nil
}

// Check reports whether the released secret is well formed. It does not open it.
func (r Released) Check() error {
	err := errors.Join(
		ValidateName(r.Name),
		checkVersion(r.Version),
		r.Target().Check(),
		checkKeyID("nodeKey", r.NodeKey),
		checkLen("enc", r.Enc, EncSize, EncSize),
		checkLen("ciphertext", r.Ciphertext, 1+Overhead, MaxSize+Overhead),
	)
	if err != nil {
		return fmt.Errorf("released secret: %w", err)
	}
	return nil
}

// UnmarshalJSON decodes a released secret and checks it.
func (r *Released) UnmarshalJSON(data []byte) error {
	type plain Released
	var p plain
	if null, err := decodeJSON(data, "released secret", &p); null || err != nil {
		return err
	}
	if err := Released(p).Check(); err != nil {
		return err
	}
	*r = Released(p)
	return nil
}

// MarshalBinary encodes the released secret compactly, for the tunnel.
func (r Released) MarshalBinary() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	var e encoder
	e.raw(magicReleased)
	e.str(r.Name)
	e.u64(r.Version)
	e.str(r.Node)
	e.str(r.Placement)
	e.str(r.NodeKey)
	e.bytes(r.Enc)
	e.bytes(r.Ciphertext)
	return e.b, nil
}

// UnmarshalBinary decodes what MarshalBinary made and checks it.
func (r *Released) UnmarshalBinary(data []byte) error {
	d := decoder{what: "released secret", b: data}
	d.magic(magicReleased)
	var t Released
	t.Name = d.str("name", 63)
	t.Version = d.u64("version")
	t.Node = d.str("node", 128)
	t.Placement = d.str("placement", 128)
	t.NodeKey = d.str("nodeKey", 16)
	t.Enc = d.bytes("enc", EncSize)
	t.Ciphertext = d.bytes("ciphertext", MaxSize+Overhead)
	if err := d.end(); err != nil {
		return err
	}
	if err := t.Check(); err != nil {
		return err
	}
	*r = t
	return nil
}
