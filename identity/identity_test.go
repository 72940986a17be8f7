package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	k, err := Generate(true)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("apply web")
	sig, err := k.Sign(DomainTx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(DomainTx, msg, sig); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	other, _ := Generate(false)
	otherSig, _ := other.Sign(DomainTx, msg)

	cases := []struct {
		name   string
		domain string
		msg    []byte
		sig    Signature
		want   string
	}{
		{"other domain", DomainBlock, msg, sig, "ed25519 half does not verify"},
		{"other message", DomainTx, []byte("apply db"), sig, "ed25519 half does not verify"},
		{"ml-dsa half from another key", DomainTx, msg, Signature{Ed25519: sig.Ed25519, MLDSA65: otherSig.MLDSA65}, "ml-dsa-65 half does not verify"},
		{"ed25519 half from another key", DomainTx, msg, Signature{Ed25519: otherSig.Ed25519, MLDSA65: sig.MLDSA65}, "ed25519 half does not verify"},
		{"ml-dsa half missing", DomainTx, msg, Signature{Ed25519: sig.Ed25519}, "ml-dsa-65 half is 0 bytes"},
		{"ed25519 half truncated", DomainTx, msg, Signature{Ed25519: sig.Ed25519[:10], MLDSA65: sig.MLDSA65}, "ed25519 half is 10 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := k.Public().Verify(c.domain, c.msg, c.sig)
			if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBadSignature containing %q", err, c.want)
			}
		})
	}
}

func TestIDDerivesFromKeys(t *testing.T) {
	a, _ := Generate(true)
	b, _ := Generate(true)
	if a.ID() == b.ID() {
		t.Fatal("two keys share an ID")
	}
	if len(a.ID()) != 16 {
		t.Fatalf("ID %q: want 16 hex characters", a.ID())
	}
	pub := a.Public()
	pub.MLDSA65 = b.Public().MLDSA65
	if pub.ID() == a.ID() {
		t.Fatal("ID does not cover the ML-DSA key")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	k, err := LoadOrGenerate(path, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrGenerate(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Public().Equal(k.Public()) || again.HPKE() == nil {
		t.Fatal("reloaded key differs")
	}
	sig, _ := again.Sign(DomainTx, []byte("x"))
	if err := k.Public().Verify(DomainTx, []byte("x"), sig); err != nil {
		t.Fatalf("reloaded key signs differently: %v", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	os.Chmod(path, 0o600)

	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not a qnet key file") {
		t.Fatalf("garbage key file: %v", err)
	}
}

func TestPublicKeyCheck(t *testing.T) {
	k, _ := Generate(true)
	pub := k.Public()
	if err := pub.Check(); err != nil {
		t.Fatal(err)
	}
	pub.MLDSA65 = pub.MLDSA65[:100]
	if err := pub.Check(); err == nil || !strings.Contains(err.Error(), "ml-dsa-65 public key") {
		t.Fatalf("short ML-DSA key accepted: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := Generate(false)
	msg := make([]byte, 512)
	sig, _ := k.Sign(DomainTx, msg)
	v, _ := k.Public().Verifier()
	for b.Loop() {
		if err := v.Verify(DomainTx, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}
