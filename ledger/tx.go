package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"qnet.dev/qnet/identity"
)

// TxType names what a transaction does.
type TxType string

// Transaction types.
const (
	TxGenesis       TxType = "network.genesis"
	TxServiceApply  TxType = "service.apply"
	TxServiceDelete TxType = "service.delete"
	TxPlacement     TxType = "placement.set"
	TxDepotStatus   TxType = "depot.status"
	TxNodeUpdate    TxType = "node.update"
	TxTokenCreate   TxType = "token.create"
	TxNodeJoin      TxType = "node.join"
	TxNodeRemove    TxType = "node.remove"
	TxNodeRotate    TxType = "node.rotate"
	TxValidators    TxType = "validators.set"
	TxReceipts      TxType = "receipt.batch"
)

// MaxTxLifetime bounds how far in the future a transaction may expire, so the set of
// transactions that could still be replayed stays bounded and a far-off clock shows.
const MaxTxLifetime = time.Hour

// MaxPayloadSize bounds a transaction's payload.
const MaxPayloadSize = 1 << 20

// Tx is a signed transaction. Signer is the ID of a key the ledger knows; the signature
// covers every other field, under identity.DomainTx.
type Tx struct {
	Type    TxType             `json:"type"`
	Network Hash               `json:"network"`
	Signer  string             `json:"signer"`
	Nonce   string             `json:"nonce"`
	Expires time.Time          `json:"expires"`
	Payload json.RawMessage    `json:"payload"`
	Sig     identity.Signature `json:"sig"`
}

// NewTx builds an unsigned transaction for network with a fresh random nonce.
func NewTx(typ TxType, network Hash, payload any, expires time.Time) (*Tx, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return &Tx{Type: typ, Network: network, Nonce: hex.EncodeToString(nonce[:]), Expires: expires.UTC(), Payload: p}, nil
}

// SigningBytes is the deterministic encoding that is signed and hashed into the ID.
func (t *Tx) SigningBytes() []byte {
	e := newEncoder("qnet/tx/v1")
	e.str(string(t.Type))
	e.fixed(t.Network[:])
	e.str(t.Signer)
	e.str(t.Nonce)
	e.i64(t.Expires.UnixNano())
	e.bytes(t.Payload)
	return e.b
}

// ID identifies the transaction: the hash of what is signed. A replay carries the same ID.
func (t *Tx) ID() Hash { return sha256.Sum256(t.SigningBytes()) }

// LeafHash is what the block's Merkle tree commits to: the ID and the signature.
func (t *Tx) LeafHash() Hash {
	id := t.ID()
	e := newEncoder("qnet/txleaf/v1")
	e.fixed(id[:])
	e.bytes(t.Sig.Ed25519)
	e.bytes(t.Sig.MLDSA65)
	return e.sum()
}

// Sign sets the signer and signs the transaction with k.
func (t *Tx) Sign(k *identity.Key) error {
	t.Signer = k.ID()
	sig, err := k.Sign(identity.DomainTx, t.SigningBytes())
	if err != nil {
		return fmt.Errorf("sign %s: %w", t.Type, err)
	}
	t.Sig = sig
	return nil
}

// Decode strictly decodes the payload into v (unknown fields are errors).
func (t *Tx) Decode(v any) error {
	d := json.NewDecoder(bytes.NewReader(t.Payload))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s payload: %w", t.Type, err)
	}
	return nil
}

// canonicalJSON is the form encoding/json gives a json.RawMessage when it re-encodes it:
// compact and HTML-escaped. Payloads must already be in it, so re-encoding a transaction
// never changes the bytes that were signed.
func canonicalJSON(p []byte) ([]byte, error) {
	var c bytes.Buffer
	if err := json.Compact(&c, p); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	json.HTMLEscape(&out, c.Bytes())
	return out.Bytes(), nil
}

// ErrMalformed is returned (wrapped) for transactions and blocks that cannot be decoded
// or are not in canonical form.
var ErrMalformed = errors.New("malformed")

// checkForm checks what can be checked of a transaction without any state.
func (t *Tx) checkForm() error {
	if t.Type == "" {
		return fmt.Errorf("%w transaction: type is empty", ErrMalformed)
	}
	if t.Signer == "" {
		return fmt.Errorf("%w transaction: signer is empty", ErrMalformed)
	}
	if len(t.Nonce) != 32 {
		return fmt.Errorf("%w transaction: nonce must be 32 hex characters", ErrMalformed)
	}
	if len(t.Payload) == 0 {
		return fmt.Errorf("%w transaction: payload is empty", ErrMalformed)
	}
	if len(t.Payload) > MaxPayloadSize {
		return fmt.Errorf("%w transaction: payload is %d bytes, at most %d allowed", ErrMalformed, len(t.Payload), MaxPayloadSize)
	}
	c, err := canonicalJSON(t.Payload)
	if err != nil {
		return fmt.Errorf("%w transaction: payload is not JSON: %v", ErrMalformed, err)
	}
	if !bytes.Equal(c, t.Payload) {
		return fmt.Errorf("%w transaction: payload is not in canonical (compact) JSON form", ErrMalformed)
	}
	return nil
}

// DecodeTx decodes one transaction from JSON, refusing unknown fields and non-canonical
// payloads.
func DecodeTx(data []byte) (*Tx, error) {
	var t Tx
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w transaction: %v", ErrMalformed, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w transaction: trailing data after the JSON object", ErrMalformed)
	}
	if err := t.checkForm(); err != nil {
		return nil, err
	}
	return &t, nil
}
