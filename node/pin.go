package node

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"qnet.dev/qnet/identity"
)

// APIKeyPin is the pin that clients hold for the API of the node with key: hex SHA-256
// of the DER SubjectPublicKeyInfo of its Ed25519 public key. It equals client.KeyPin of
// the certificate the node's API presents (see ServerTLS), so a context file can be
// written before the node first starts.
func APIKeyPin(key *identity.Key) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Ed25519().Public())
	if err != nil {
		return "", fmt.Errorf("API key pin: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
