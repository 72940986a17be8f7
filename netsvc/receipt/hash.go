package receipt

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"runtime"

	"qnet.dev/qnet/netsvc/receipt/internal/blake3"
)

// HashAlg names the hash a receipt's HashOut and HashIn are of. A receipt names it, and
// its signatures cover the name, so a hash is never read as another algorithm's.
type HashAlg string

// Payload hashes. Both are collision resistant with 256-bit outputs: a stream that
// differs by one byte, however chosen, gives a different hash.
const (
	// HashSHA256 is SHA-256, the hash of receipts of format 1 (from before receipts
	// named their hash): it is written as no name at all (""), and a view without a
	// name keeps the canonical form those receipts were signed in. A flow whose
	// dialer sends a version 1 HELLO is hashed with it.
	HashSHA256 HashAlg = ""
	// HashBLAKE3 is BLAKE3-256 (unkeyed), the hash of every flow this node dials. It
	// runs at about 4.5 times the rate of SHA-256 (with its SHA instructions) on CPUs
	// with AVX-512, and 2.5 times with the guts module's code alone (see
	// docs/performance.md), which is what hashing every byte at both ends costs.
	HashBLAKE3 HashAlg = "blake3"
)

// DefaultHash returns the hash of the flows this node dials and of a Meter's
// tallies: BLAKE3 on amd64, where lukechampine.com/blake3/guts has AVX-512 and AVX2
// code; SHA-256 elsewhere, where guts has only plain Go and SHA-256 runs on the CPU's
// own instructions (arm64's SHA2 extension), so BLAKE3 would be the slower. Each flow
// names its hash, so nodes of both kinds work together; the acceptor hashes with the
// dialer's choice.
func DefaultHash() HashAlg { return defaultHash }

var defaultHash = func() HashAlg {
	if runtime.GOARCH == "amd64" {
		return HashBLAKE3
	}
	return HashSHA256
}()

// String names the hash for people: "sha256" or "blake3".
func (a HashAlg) String() string {
	if a == HashSHA256 {
		return "sha256"
	}
	return string(a)
}

// check reports whether the name is a hash this node knows.
func (a HashAlg) check() error {
	switch a {
	case HashSHA256, HashBLAKE3:
		return nil
	}
	return fmt.Errorf("%w: hashAlg %q: want %q, or none for SHA-256 (receipts of format 1)", ErrInvalid, clip(string(a)), HashBLAKE3)
}

// newHash returns a fresh hash of the algorithm, which must have passed check.
func (a HashAlg) newHash() hash.Hash {
	if a == HashBLAKE3 {
		return blake3.New()
	}
	return sha256.New()
}
