package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Hash is a SHA-256 digest.
type Hash [32]byte

// ZeroHash is the hash of nothing: the previous hash of the genesis block.
var ZeroHash Hash

// String is the hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 12 hex characters, for people.
func (h Hash) Short() string { return h.String()[:12] }

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == ZeroHash }

// MarshalText encodes h as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes hex.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses 64 hex characters.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 hex characters, got %d", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// encoder builds the deterministic byte strings that are hashed and signed. Every
// variable-length field is length-prefixed, so no two distinct values share an encoding.
type encoder struct{ b []byte }

func (e *encoder) u64(v uint64)   { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) i64(v int64)    { e.u64(uint64(v)) }
func (e *encoder) bytes(p []byte) { e.u64(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) str(s string)   { e.u64(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) fixed(p []byte) { e.b = append(e.b, p...) }
func (e *encoder) sum() Hash      { return sha256.Sum256(e.b) }
func newEncoder(label string) *encoder {
	e := &encoder{b: make([]byte, 0, 256)}
	e.str(label)
	return e
}
