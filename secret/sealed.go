package secret

import (
	"errors"
	"fmt"
)

// Sealed is a secret as the ledger holds it: its plaintext sealed to the network key,
// bound to its name, version and the key's ID.
type Sealed struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// KeyID is the ID of the network key it is sealed to.
	KeyID      string `json:"keyId"`
	Enc        []byte `json:"enc"`
	Ciphertext []byte `json:"ciphertext"`
}

// Seal seals version version of secret name to the network key pub. It does not wipe
// plaintext; the caller does when done with it.
func Seal(pub NetworkPublicKey, name string, version uint64, plaintext Value) (Sealed, error) {
	if err := ValidateName(name); err != nil {
		return Sealed{}, fmt.Errorf("seal: %w", err)
	}
	if version == 0 {
		return Sealed{}, fmt.Errorf("seal secret %s: %w: version 0; versions start at 1", name, ErrVersion)
	}
	if err := CheckSize(name, plaintext.Len()); err != nil {
		return Sealed{}, fmt.Errorf("seal: %w", err)
	}
	hp, err := pub.parse()
	if err != nil {
		return Sealed{}, fmt.Errorf("seal secret %s: %w", name, err)
	}
	s := Sealed{Name: name, Version: version, KeyID: pub.ID}
	s.Enc, s.Ciphertext, err = seal(hp, infoSealed, s.binding(), plaintext.Reveal())
	if err != nil {
		return Sealed{}, fmt.Errorf("seal secret %s v%d: %w", name, version, err)
	}
	return s, nil
}

func (s Sealed) binding() []byte { return binding(s.Version, s.Name, s.KeyID) }

// Open recovers the plaintext with the network key.
func Open(s Sealed, key *NetworkKey) (Value, error) {
	if err := s.Check(); err != nil {
		return Value{}, err
	}
	if key == nil {
		return Value{}, fmt.Errorf("open secret %s v%d: no network key given", s.Name, s.Version)
	}
	if s.KeyID != key.ID() {
		return Value{}, fmt.Errorf("open secret %s v%d: %w: it is sealed to network key %s, this is %s", s.Name, s.Version, ErrWrongKey, s.KeyID, key.ID())
	}
	pt, err := open(key.priv, infoSealed, s.Enc, s.binding(), s.Ciphertext)
	if err != nil {
		return Value{}, fmt.Errorf("open secret %s v%d with %s: %w", s.Name, s.Version, key, err)
	}
	return NewValue(s.Name, s.Version, pt), nil
}

// Size is the size of the plaintext in bytes, known without opening.
func (s Sealed) Size() int { return max(len(s.Ciphertext)-Overhead, 0) }

// Check reports whether the sealed secret is well formed. It does not open it.
func (s Sealed) Check() error {
	err := errors.Join(
		ValidateName(s.Name),
		checkVersion(s.Version),
		checkKeyID("keyId", s.KeyID),
		checkLen("enc", s.Enc, EncSize, EncSize),
		checkLen("ciphertext", s.Ciphertext, 1+Overhead, MaxSize+Overhead),
	)
	if err != nil {
		return fmt.Errorf("sealed secret: %w", err)
	}
	return nil
}

// UnmarshalJSON decodes a sealed secret and checks it.
func (s *Sealed) UnmarshalJSON(data []byte) error {
	type plain Sealed
	var p plain
	if null, err := decodeJSON(data, "sealed secret", &p); null || err != nil {
		return err
	}
	if err := Sealed(p).Check(); err != nil {
		return err
	}
	*s = Sealed(p)
	return nil
}

// MarshalBinary encodes the sealed secret compactly (about 1.1 KiB plus the plaintext's
// size), for stores that keep bytes rather than JSON.
func (s Sealed) MarshalBinary() ([]byte, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	var e encoder
	e.raw(magicSealed)
	e.str(s.Name)
	e.u64(s.Version)
	e.str(s.KeyID)
	e.bytes(s.Enc)
	e.bytes(s.Ciphertext)
	return e.b, nil
}

// UnmarshalBinary decodes what MarshalBinary made and checks it.
func (s *Sealed) UnmarshalBinary(data []byte) error {
	d := decoder{what: "sealed secret", b: data}
	d.magic(magicSealed)
	var t Sealed
	t.Name = d.str("name", 63)
	t.Version = d.u64("version")
	t.KeyID = d.str("keyId", 16)
	t.Enc = d.bytes("enc", EncSize)
	t.Ciphertext = d.bytes("ciphertext", MaxSize+Overhead)
	if err := d.end(); err != nil {
		return err
	}
	if err := t.Check(); err != nil {
		return err
	}
	*s = t
	return nil
}

func checkVersion(v uint64) error {
	if v == 0 {
		return fmt.Errorf("%w: version must be 1 or more", ErrVersion)
	}
	return nil
}
