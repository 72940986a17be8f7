// Package identity holds the keys of QNet nodes and operators: a hybrid signing key
// (Ed25519 and ML-DSA-65, where a signature is valid only if both halves verify) and,
// for nodes, an HPKE key (ML-KEM-768 + X25519) that secrets are sealed to.
//
// Every signature is made under a domain string, so a signature made for one purpose
// (a transaction, a block, a tunnel binding) can never be replayed as another.
package identity

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Signing domains. Each kind of signed object has its own, so signatures cannot be
// moved between kinds.
const (
	DomainTx      = "qnet/tx/v1"
	DomainBlock   = "qnet/block/v1"
	DomainTunnel  = "qnet/tunnel/v1"
	DomainReceipt = "qnet/receipt/v1"
	DomainToken   = "qnet/token/v1"
)

// Sizes of the key and signature halves.
const (
	Ed25519PublicKeySize = ed25519.PublicKeySize
	Ed25519SignatureSize = ed25519.SignatureSize
	MLDSAPublicKeySize   = mldsa65.PublicKeySize
	MLDSASignatureSize   = mldsa65.SignatureSize
)

// ErrBadSignature is returned (wrapped) when a signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// PublicKey is the public half of a hybrid identity.
type PublicKey struct {
	Ed25519 []byte `json:"ed25519"`
	MLDSA65 []byte `json:"mldsa65"`
	// HPKE is the MLKEM768-X25519 public key secrets are sealed to; nodes only.
	HPKE []byte `json:"hpke,omitempty"`
}

// Signature is a hybrid signature: both halves must verify.
type Signature struct {
	Ed25519 []byte `json:"ed25519"`
	MLDSA65 []byte `json:"mldsa65"`
}

// Fingerprint is the SHA-256 of the public keys, length-prefixed under a fixed label.
func (p PublicKey) Fingerprint() [32]byte {
	h := sha256.New()
	h.Write([]byte("qnet/key/v1"))
	for _, part := range [][]byte{p.Ed25519, p.MLDSA65, p.HPKE} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

// ID is the short, stable name of a key: the first 8 bytes of its fingerprint in hex.
func (p PublicKey) ID() string {
	fp := p.Fingerprint()
	return hex.EncodeToString(fp[:8])
}

// Check reports whether the key halves are well formed.
func (p PublicKey) Check() error {
	_, err := p.Verifier()
	return err
}

// Equal reports whether two public keys are the same.
func (p PublicKey) Equal(q PublicKey) bool {
	return p.Fingerprint() == q.Fingerprint()
}

// Verifier parses the key once for repeated verification.
func (p PublicKey) Verifier() (*Verifier, error) {
	if len(p.Ed25519) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key: want %d bytes, got %d", ed25519.PublicKeySize, len(p.Ed25519))
	}
	if len(p.MLDSA65) != mldsa65.PublicKeySize {
		return nil, fmt.Errorf("ml-dsa-65 public key: want %d bytes, got %d", mldsa65.PublicKeySize, len(p.MLDSA65))
	}
	var ml mldsa65.PublicKey
	if err := ml.UnmarshalBinary(p.MLDSA65); err != nil {
		return nil, fmt.Errorf("ml-dsa-65 public key: %w", err)
	}
	if len(p.HPKE) > 0 {
		if _, err := hpke.MLKEM768X25519().NewPublicKey(p.HPKE); err != nil {
			return nil, fmt.Errorf("hpke public key: %w", err)
		}
	}
	return &Verifier{ed: ed25519.PublicKey(p.Ed25519), ml: &ml, id: p.ID()}, nil
}

// Verify checks a hybrid signature over msg in domain.
func (p PublicKey) Verify(domain string, msg []byte, sig Signature) error {
	v, err := p.Verifier()
	if err != nil {
		return err
	}
	return v.Verify(domain, msg, sig)
}

// Verifier is a parsed public key, safe for concurrent use.
type Verifier struct {
	ed ed25519.PublicKey
	ml *mldsa65.PublicKey
	id string
}

// ID is the ID of the key.
func (v *Verifier) ID() string { return v.id }

// Verify checks both halves of sig over msg in domain. The error says which half failed.
func (v *Verifier) Verify(domain string, msg []byte, sig Signature) error {
	if len(sig.Ed25519) != ed25519.SignatureSize {
		return fmt.Errorf("%w: ed25519 half is %d bytes, want %d (key %s)", ErrBadSignature, len(sig.Ed25519), ed25519.SignatureSize, v.id)
	}
	if len(sig.MLDSA65) != mldsa65.SignatureSize {
		return fmt.Errorf("%w: ml-dsa-65 half is %d bytes, want %d (key %s)", ErrBadSignature, len(sig.MLDSA65), mldsa65.SignatureSize, v.id)
	}
	if err := ed25519.VerifyWithOptions(v.ed, msg, sig.Ed25519, &ed25519.Options{Context: domain}); err != nil {
		return fmt.Errorf("%w: ed25519 half does not verify for key %s", ErrBadSignature, v.id)
	}
	if !mldsa65.Verify(v.ml, msg, []byte(domain), sig.MLDSA65) {
		return fmt.Errorf("%w: ml-dsa-65 half does not verify for key %s", ErrBadSignature, v.id)
	}
	return nil
}

// Key is a private hybrid identity.
type Key struct {
	edSeed []byte
	mlSeed [mldsa65.SeedSize]byte
	kemRaw []byte // serialized HPKE private key, nil for operators

	ed  ed25519.PrivateKey
	ml  *mldsa65.PrivateKey
	kem hpke.PrivateKey
	pub PublicKey
}

// Generate makes a new identity; withHPKE adds a sealing key (nodes need one).
func Generate(withHPKE bool) (*Key, error) {
	edSeed := make([]byte, ed25519.SeedSize)
	var mlSeed [mldsa65.SeedSize]byte
	if _, err := rand.Read(edSeed); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	if _, err := rand.Read(mlSeed[:]); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	var kemRaw []byte
	if withHPKE {
		kem, err := hpke.MLKEM768X25519().GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("generate hpke key: %w", err)
		}
		if kemRaw, err = kem.Bytes(); err != nil {
			return nil, fmt.Errorf("serialize hpke key: %w", err)
		}
	}
	return fromSeeds(edSeed, mlSeed, kemRaw)
}

func fromSeeds(edSeed []byte, mlSeed [mldsa65.SeedSize]byte, kemRaw []byte) (*Key, error) {
	if len(edSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 seed: want %d bytes, got %d", ed25519.SeedSize, len(edSeed))
	}
	k := &Key{edSeed: edSeed, mlSeed: mlSeed, kemRaw: kemRaw}
	k.ed = ed25519.NewKeyFromSeed(edSeed)
	mlPub, mlPriv := mldsa65.NewKeyFromSeed(&mlSeed)
	k.ml = mlPriv
	mlBytes, err := mlPub.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal ml-dsa-65 public key: %w", err)
	}
	k.pub = PublicKey{Ed25519: []byte(k.ed.Public().(ed25519.PublicKey)), MLDSA65: mlBytes}
	if len(kemRaw) > 0 {
		kem, err := hpke.MLKEM768X25519().NewPrivateKey(kemRaw)
		if err != nil {
			return nil, fmt.Errorf("hpke private key: %w", err)
		}
		k.kem = kem
		k.pub.HPKE = kem.PublicKey().Bytes()
	}
	return k, nil
}

// Public returns the public half.
func (k *Key) Public() PublicKey { return k.pub }

// ID returns the key's ID.
func (k *Key) ID() string { return k.pub.ID() }

// HPKE returns the sealing key, or nil when the identity has none.
func (k *Key) HPKE() hpke.PrivateKey { return k.kem }

// Ed25519 returns the classical signing key, for protocols such as TLS that need it alone.
func (k *Key) Ed25519() ed25519.PrivateKey { return k.ed }

// Sign signs msg in domain with both halves. ML-DSA signing is hedged (randomized).
func (k *Key) Sign(domain string, msg []byte) (Signature, error) {
	edSig, err := k.ed.Sign(nil, msg, &ed25519.Options{Context: domain})
	if err != nil {
		return Signature{}, fmt.Errorf("ed25519 sign: %w", err)
	}
	mlSig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(k.ml, msg, []byte(domain), true, mlSig); err != nil {
		return Signature{}, fmt.Errorf("ml-dsa-65 sign: %w", err)
	}
	return Signature{Ed25519: edSig, MLDSA65: mlSig}, nil
}
