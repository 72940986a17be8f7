// Package jointoken encodes the tokens that admit a node to a network. A token names
// the network (its genesis hash), the node to contact and that node's key fingerprint,
// so the newcomer knows whom it must be talking to before it says anything (no trust on
// first use), and carries a secret whose hash the ledger holds.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"qnet.dev/qnet/ledger"
)

// Prefix starts every token, so a token is recognisable and versioned.
const Prefix = "qnetjoin1_"

// MaxLen bounds an encoded token.
const MaxLen = 1024

// Token is a decoded join token.
type Token struct {
	// Network is the genesis hash of the network the token admits to.
	Network ledger.Hash
	// Addr is the mesh address of the node to contact (a hint; --join may override it).
	Addr string
	// Fingerprint is that node's key fingerprint.
	Fingerprint [32]byte
	// Secret proves the bearer holds the token; the ledger keeps only its hash.
	Secret [32]byte
}

type wire struct {
	N string `json:"n"`
	A string `json:"a"`
	F string `json:"f"`
	S string `json:"s"`
}

// New makes a token with a fresh secret.
func New(network ledger.Hash, addr string, fingerprint [32]byte) (Token, error) {
	t := Token{Network: network, Addr: addr, Fingerprint: fingerprint}
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return t, fmt.Errorf("join token secret: %w", err)
	}
	return t, nil
}

// SecretHash is the hash of the secret, as the ledger keeps it.
func (t Token) SecretHash() [32]byte { return sha256.Sum256(t.Secret[:]) }

// ID names the token on the ledger.
func (t Token) ID() string { return ledger.TokenID(t.SecretHash()) }

// String encodes the token.
func (t Token) String() string {
	data, _ := json.Marshal(wire{
		N: t.Network.String(), A: t.Addr,
		F: hex.EncodeToString(t.Fingerprint[:]), S: hex.EncodeToString(t.Secret[:]),
	})
	return Prefix + base64.RawURLEncoding.EncodeToString(data)
}

// Parse decodes a token, saying what is wrong with one that is not.
func Parse(s string) (Token, error) {
	var t Token
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		return t, fmt.Errorf("join token is %d characters; a token has at most %d", len(s), MaxLen)
	}
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return t, fmt.Errorf("not a join token: it must start with %q (make one with qnet token create)", Prefix)
	}
	data, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return t, fmt.Errorf("join token is damaged (bad base64): %v", err)
	}
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return t, fmt.Errorf("join token is damaged: %v", err)
	}
	if t.Network, err = ledger.ParseHash(w.N); err != nil {
		return t, fmt.Errorf("join token network: %w", err)
	}
	t.Addr = w.A
	if err := decode32(w.F, &t.Fingerprint); err != nil {
		return t, fmt.Errorf("join token node fingerprint: %w", err)
	}
	if err := decode32(w.S, &t.Secret); err != nil {
		return t, fmt.Errorf("join token secret: %w", err)
	}
	return t, nil
}

func decode32(s string, out *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != 32 {
		return fmt.Errorf("want 32 bytes, got %d", len(b))
	}
	copy(out[:], b)
	return nil
}
