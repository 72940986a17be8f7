package api

import "time"

// SecretKeyRotation says what `qnet secret rotate-key` did.
type SecretKeyRotation struct {
	// Old and New are the IDs of the network keys.
	Old string `json:"old"`
	New string `json:"new"`
	// Secrets is how many secrets were sealed again to the new key.
	Secrets int `json:"secrets"`
}

// ConfigInfo describes a configuration without its content.
type ConfigInfo struct {
	Name      string    `json:"name"`
	Version   uint64    `json:"version"`
	Size      int       `json:"size"`
	SHA256    string    `json:"sha256"`
	UpdatedBy string    `json:"updatedBy"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	UsedBy    []string  `json:"usedBy,omitempty"`
}
