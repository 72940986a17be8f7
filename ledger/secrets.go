package ledger

import "qnet.dev/qnet/secret"

// Transaction types of secrets and configuration.
const (
	// TxSecretKey records the network's secret key: its public half and the shares of
	// its private half, each sealed to one validator. A validator signs it: when the
	// network has no key yet, when a validator lacks its share, and on rotation.
	TxSecretKey TxType = "secret.key"
	// TxSecretPut records a new version of a secret, sealed on the operator's machine.
	TxSecretPut TxType = "secret.put"
	// TxSecretRemove removes a secret that no service names.
	TxSecretRemove TxType = "secret.remove"
	// TxConfigPut records a new version of a configuration file, in plain text.
	TxConfigPut TxType = "config.put"
	// TxConfigRemove removes a configuration that no service names.
	TxConfigRemove TxType = "config.remove"
)

// SecretKey sets the network's secret key or adds shares of it. When Key is not the
// current key, the transaction rotates: Resealed must hold every secret, at its current
// version, sealed to the new key, and the old key is dropped.
type SecretKey struct {
	Key      secret.NetworkPublicKey `json:"key"`
	Shares   []secret.KeyShare       `json:"shares"`
	Resealed []secret.Sealed         `json:"resealed,omitempty"`
}

// SecretPut is a new version of a secret, sealed to the network's current key. Only
// ciphertext is on the ledger.
type SecretPut struct {
	Secret secret.Sealed `json:"secret"`
}

// SecretRemove removes a secret.
type SecretRemove struct {
	Name string `json:"name"`
}

// MaxConfigSize bounds a configuration file: 256 KiB. Configuration is small text;
// bigger data belongs in a depot.
const MaxConfigSize = 256 << 10

// ConfigPut is a new version of a configuration file. Version must follow the current
// one by exactly one (1 for a new configuration).
type ConfigPut struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Data    []byte `json:"data"`
}

// ConfigRemove removes a configuration.
type ConfigRemove struct {
	Name string `json:"name"`
}
