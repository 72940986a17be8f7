package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// keyFile is the on-disk form of a Key. The file is written 0600 and refused when any
// other user may read it, as ssh does.
type keyFile struct {
	Kind    string `json:"kind"`
	Ed25519 []byte `json:"ed25519Seed"`
	MLDSA65 []byte `json:"mldsa65Seed"`
	HPKE    []byte `json:"hpkePrivate,omitempty"`
	ID      string `json:"id"`
}

const keyFileKind = "qnet-key-v1"

// Save writes the key to path with mode 0600, atomically (temp file and rename).
func (k *Key) Save(path string) error {
	data, err := json.MarshalIndent(keyFile{
		Kind: keyFileKind, Ed25519: k.edSeed, MLDSA65: k.mlSeed[:], HPKE: k.kemRaw, ID: k.ID(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	return nil
}

// ErrKeyPermissions is returned when a key file may be read by other users.
var ErrKeyPermissions = errors.New("key file is readable by other users")

// Load reads a key written by Save. It refuses files that group or others may access.
func Load(path string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load key %s: %w (mode %#o; run chmod 600 %s)", path, ErrKeyPermissions, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("load key %s: not a qnet key file: %w", path, err)
	}
	if kf.Kind != keyFileKind {
		return nil, fmt.Errorf("load key %s: kind is %q, want %q", path, kf.Kind, keyFileKind)
	}
	if len(kf.MLDSA65) != mldsa65.SeedSize {
		return nil, fmt.Errorf("load key %s: ml-dsa-65 seed is %d bytes, want %d", path, len(kf.MLDSA65), mldsa65.SeedSize)
	}
	var seed [mldsa65.SeedSize]byte
	copy(seed[:], kf.MLDSA65)
	k, err := fromSeeds(kf.Ed25519, seed, kf.HPKE)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	if kf.ID != "" && kf.ID != k.ID() {
		return nil, fmt.Errorf("load key %s: recorded id %s does not match the keys (%s): file altered", path, kf.ID, k.ID())
	}
	return k, nil
}

// LoadOrGenerate loads the key at path, or generates and saves one if there is none.
func LoadOrGenerate(path string, withHPKE bool) (*Key, error) {
	k, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = Generate(withHPKE); err != nil {
		return nil, err
	}
	return k, k.Save(path)
}
