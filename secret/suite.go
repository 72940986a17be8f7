package secret

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
)

// The HPKE suite. The KEM is the hybrid X-Wing (ML-KEM-768 + X25519), so a secret stays
// sealed if either half holds; AES-256 keeps a margin against quantum search.
var (
	kem  = hpke.MLKEM768X25519()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

const (
	// EncSize is the size of an HPKE encapsulated key for the suite.
	EncSize = 1120
	// Overhead is how many bytes a ciphertext is longer than its plaintext (the tag).
	Overhead = 16
)

// HPKE info strings: one per kind of ciphertext, so that one kind never opens as another.
const (
	infoSealed   = "qnet/secret/sealed/v1"
	infoReleased = "qnet/secret/released/v1"
	infoShare    = "qnet/secret/share/v1"
	keyIDLabel   = "qnet/secret/key/v1"
)

// Errors from opening ciphertexts.
var (
	// ErrWrongKey is returned when a ciphertext says it was sealed to another key than
	// the one given; the message names both.
	ErrWrongKey = errors.New("sealed to another key")
	// ErrDecrypt is returned when a ciphertext does not open: it was altered, moved to
	// another name, version, node or depot, or sealed to another key.
	ErrDecrypt = errors.New("does not open")
)

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// KeyID names an HPKE public key: the first 8 bytes, in hex, of its SHA-256 under a
// fixed label. Sealed secrets record the ID of the network key, released ones the ID of
// the node's key, so that a mismatch is reported as such rather than as a failed open.
func KeyID(hpkePublic []byte) string {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(hpkePublic)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func checkKeyID(field, id string) error {
	if !keyIDRE.MatchString(id) {
		return fmt.Errorf("%s %s must be 16 lowercase hex digits", field, quote(id))
	}
	return nil
}

// parsePublic parses an HPKE public key of the suite's KEM.
func parsePublic(field string, b []byte) (hpke.PublicKey, error) {
	pub, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not an MLKEM768-X25519 public key (%d bytes): %w", field, len(b), err)
	}
	return pub, nil
}

// checkPrivate makes sure a private key belongs to the suite's KEM: HPKE would fail
// anyway, but with a less helpful message.
func checkPrivate(field string, k hpke.PrivateKey) error {
	if k == nil {
		return fmt.Errorf("%s: no key given", field)
	}
	if id := k.KEM().ID(); id != kem.ID() {
		return fmt.Errorf("%s: KEM %#04x is not MLKEM768-X25519 (%#04x)", field, id, kem.ID())
	}
	return nil
}

func seal(pub hpke.PublicKey, info string, aad, plaintext []byte) (enc, ct []byte, err error) {
	enc, s, err := hpke.NewSender(pub, kdf, aead, []byte(info))
	if err != nil {
		return nil, nil, fmt.Errorf("hpke sender: %w", err)
	}
	if ct, err = s.Seal(aad, plaintext); err != nil {
		return nil, nil, fmt.Errorf("hpke seal: %w", err)
	}
	return enc, ct, nil
}

func open(priv hpke.PrivateKey, info string, enc, aad, ct []byte) ([]byte, error) {
	r, err := hpke.NewRecipient(enc, priv, kdf, aead, []byte(info))
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := r.Open(aad, ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// binding encodes the fields a ciphertext is bound to as its HPKE associated data:
// each string length-prefixed, so that no two lists of fields encode the same.
func binding(version uint64, fields ...string) []byte {
	n := 8
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, version)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}
