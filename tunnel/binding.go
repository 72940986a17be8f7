package tunnel

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"qnet.dev/qnet/identity"
)

// exporterLabel is the TLS exporter label of the channel binding (RFC 8446 §7.5).
const exporterLabel = "qnet tunnel binding v1"

// bindingVersion is the first byte of a binding message.
const bindingVersion = 1

// Roles: who sends a binding message. A message only verifies in its own role, so a
// binding cannot be reflected back to its sender.
const (
	roleDialer   byte = 1
	roleListener byte = 2
)

// Kinds of dialer binding: a new tunnel, or the next epoch of an existing one.
const (
	kindOpen  byte = 1
	kindRekey byte = 2
)

// binding is the message each side sends after the TLS handshake: who it is (its full
// hybrid public key), what the connection is for, its clock, and a hybrid signature
// that ties all of it to this TLS session.
type binding struct {
	role   byte
	kind   byte     // dialer: kindOpen or kindRekey; listener: 0
	tunnel [16]byte // dialer: the tunnel's ID; listener: zero
	epoch  uint64   // dialer: 0 to open, the new epoch to rekey; listener: 0
	time   int64    // the sender's clock, Unix nanoseconds
	key    identity.PublicKey
	sig    identity.Signature
}

// transcript is what a binding signs: the message's fields, the TLS exporter (unique to
// this session, so a binding cannot be replayed into another), the fingerprints of both
// certificate keys (so it names the two ends of this session) and the fingerprint of
// the full key the message carries.
func (b *binding) transcript(exporter []byte, dialerCert, listenerCert [32]byte) []byte {
	t := make([]byte, 0, 256)
	t = append(t, exporterLabel...)
	t = append(t, bindingVersion, b.role, b.kind)
	t = append(t, b.tunnel[:]...)
	t = binary.BigEndian.AppendUint64(t, b.epoch)
	t = binary.BigEndian.AppendUint64(t, uint64(b.time))
	t = append(t, byte(len(exporter)))
	t = append(t, exporter...)
	t = append(t, dialerCert[:]...)
	t = append(t, listenerCert[:]...)
	fp := b.key.Fingerprint()
	return append(t, fp[:]...)
}

// sign fills b.sig.
func (b *binding) sign(key *identity.Key, exporter []byte, dialerCert, listenerCert [32]byte) error {
	sig, err := key.Sign(identity.DomainTunnel, b.transcript(exporter, dialerCert, listenerCert))
	if err != nil {
		return fmt.Errorf("sign binding: %w", err)
	}
	b.sig = sig
	return nil
}

// verify checks b's signature with v, the ledger's key for the peer (or the key b
// carries, for a peer that is not registered).
func (b *binding) verify(v *identity.Verifier, exporter []byte, dialerCert, listenerCert [32]byte) error {
	if err := v.Verify(identity.DomainTunnel, b.transcript(exporter, dialerCert, listenerCert), b.sig); err != nil {
		return fmt.Errorf("binding signature: %w", err)
	}
	return nil
}

// checkClock compares the sender's clock with ours.
func (b *binding) checkClock(now time.Time, maxSkew time.Duration) error {
	peer := time.Unix(0, b.time)
	d := now.Sub(peer)
	if d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: peer says %s, we have %s (more than %s apart)", ErrClockSkew,
			peer.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano), maxSkew)
	}
	return nil
}

// marshal encodes b: version, role, kind, tunnel, epoch, time, then the key halves
// (Ed25519, ML-DSA-65, HPKE) and the signature halves (Ed25519, ML-DSA-65), each with
// a 16-bit length.
func (b *binding) marshal() []byte {
	out := make([]byte, 0, 40+len(b.key.Ed25519)+len(b.key.MLDSA65)+len(b.key.HPKE)+len(b.sig.Ed25519)+len(b.sig.MLDSA65)+10)
	out = append(out, bindingVersion, b.role, b.kind)
	out = append(out, b.tunnel[:]...)
	out = binary.BigEndian.AppendUint64(out, b.epoch)
	out = binary.BigEndian.AppendUint64(out, uint64(b.time))
	for _, part := range [][]byte{b.key.Ed25519, b.key.MLDSA65, b.key.HPKE, b.sig.Ed25519, b.sig.MLDSA65} {
		out = binary.BigEndian.AppendUint16(out, uint16(len(part)))
		out = append(out, part...)
	}
	return out
}

// bindingFixedLen is the length of the fields before the key.
const bindingFixedLen = 3 + 16 + 8 + 8

// unmarshalBinding decodes and checks a binding message. It does not verify the
// signature: that needs the session and the peer's registered key.
func unmarshalBinding(p []byte) (*binding, error) {
	bad := func(format string, args ...any) (*binding, error) {
		return nil, fmt.Errorf("%w: binding message: %s", ErrProtocol, fmt.Sprintf(format, args...))
	}
	if len(p) < bindingFixedLen {
		return bad("%d bytes, shorter than its fixed fields (%d)", len(p), bindingFixedLen)
	}
	if p[0] != bindingVersion {
		return bad("version %d, want %d", p[0], bindingVersion)
	}
	b := &binding{role: p[1], kind: p[2]}
	copy(b.tunnel[:], p[3:19])
	b.epoch = binary.BigEndian.Uint64(p[19:27])
	b.time = int64(binary.BigEndian.Uint64(p[27:35]))
	switch b.role {
	case roleDialer:
		switch {
		case b.kind == kindOpen && b.epoch != 0:
			return bad("opening binding for epoch %d, want 0", b.epoch)
		case b.kind == kindRekey && b.epoch == 0:
			return bad("rekey binding for epoch 0, want 1 or more")
		case b.kind != kindOpen && b.kind != kindRekey:
			return bad("kind %d, want %d (open) or %d (rekey)", b.kind, kindOpen, kindRekey)
		case b.tunnel == [16]byte{}:
			return bad("zero tunnel ID")
		}
	case roleListener:
		if b.kind != 0 || b.tunnel != [16]byte{} || b.epoch != 0 {
			return bad("listener binding with kind, tunnel or epoch set")
		}
	default:
		return bad("role %d, want %d (dialer) or %d (listener)", b.role, roleDialer, roleListener)
	}
	rest := p[bindingFixedLen:]
	parts := []struct {
		name string
		dst  *[]byte
		want []int
	}{
		{"ed25519 key", &b.key.Ed25519, []int{identity.Ed25519PublicKeySize}},
		{"ml-dsa-65 key", &b.key.MLDSA65, []int{identity.MLDSAPublicKeySize}},
		{"hpke key", &b.key.HPKE, nil}, // any length: parsed when the key is used
		{"ed25519 signature", &b.sig.Ed25519, []int{identity.Ed25519SignatureSize}},
		{"ml-dsa-65 signature", &b.sig.MLDSA65, []int{identity.MLDSASignatureSize}},
	}
	for _, part := range parts {
		if len(rest) < 2 {
			return bad("truncated before the %s", part.name)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if part.want != nil && n != part.want[0] {
			return bad("%s of %d bytes, want %d", part.name, n, part.want[0])
		}
		if len(rest) < n {
			return bad("truncated %s: %d bytes announced, %d left", part.name, n, len(rest))
		}
		if n > 0 {
			*part.dst = append([]byte(nil), rest[:n]...)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return bad("%d bytes after the signature", len(rest))
	}
	// The key halves are not parsed here: a registered peer's binding is checked
	// against the ledger's key, and parsing an ML-DSA key costs as much as a
	// verification. A key that is used is parsed then (identity.PublicKey.Verifier).
	return b, nil
}

// certFingerprint is the fingerprint of a certificate's Ed25519 key, as bindings sign it.
func certFingerprint(pub []byte) [32]byte {
	return sha256.Sum256(pub)
}
