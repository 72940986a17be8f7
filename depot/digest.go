package depot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Digest names a blob by its content: "sha256:" and 64 lowercase hex digits.
type Digest string

const digestPrefix = "sha256:"

// ParseDigest checks s and returns it as a Digest. Only SHA-256 is accepted, in the
// canonical lowercase form OCI uses, so one blob has exactly one name.
func ParseDigest(s string) (Digest, error) {
	algo, hexPart, ok := strings.Cut(s, ":")
	switch {
	case s == "":
		return "", fmt.Errorf("digest is empty: want sha256:<64 hex digits>")
	case !ok:
		return "", fmt.Errorf("digest %q has no algorithm: want sha256:<64 hex digits>", s)
	case algo != "sha256":
		return "", fmt.Errorf("digest %q: algorithm %q is not supported: want sha256:<64 hex digits>", s, algo)
	case len(hexPart) != 64:
		return "", fmt.Errorf("digest %q has %d hex digits: want sha256:<64 hex digits>", s, len(hexPart))
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("digest %q: %q is not a lowercase hex digit: want sha256:<64 hex digits>", s, c)
		}
	}
	return Digest(s), nil
}

// Hex returns the 64 hex digits of d, without the algorithm.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), digestPrefix) }

// String returns d as text ("sha256:…").
func (d Digest) String() string { return string(d) }

// Short returns the first 12 hex digits of d, as `docker images` shows an image ID.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// FromBytes returns the digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest(digestPrefix + hex.EncodeToString(sum[:]))
}

func digestOf(h hash.Hash) Digest {
	return Digest(digestPrefix + hex.EncodeToString(h.Sum(nil)))
}

// valid reports whether d is in canonical form; digests from outside go through
// ParseDigest, this guards the internal paths that build file names from digests.
func (d Digest) valid() bool {
	_, err := ParseDigest(string(d))
	return err == nil
}
