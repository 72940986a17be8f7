package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"qnet.dev/qnet/identity"
)

func testNetworkKey(t testing.TB) *NetworkKey {
	t.Helper()
	k, err := NewNetworkKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testNode(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.Generate(true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t testing.TB, k *NetworkKey, name string, version uint64, plaintext string) Sealed {
	t.Helper()
	s, err := Seal(k.Public(), name, version, NewValue(name, version, []byte(plaintext)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	for _, size := range []int{1, 17, 4096, MaxSize} {
		plain := bytes.Repeat([]byte{0xA5}, size)
		s, err := Seal(k.Public(), "db-password", 3, NewValue("db-password", 3, bytes.Clone(plain)))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if s.Name != "db-password" || s.Version != 3 || s.KeyID != k.ID() || s.Size() != size {
			t.Fatalf("size %d: sealed header %q v%d key %s size %d", size, s.Name, s.Version, s.KeyID, s.Size())
		}
		if len(s.Enc) != EncSize || len(s.Ciphertext) != size+Overhead {
			t.Fatalf("size %d: enc %d ciphertext %d bytes", size, len(s.Enc), len(s.Ciphertext))
		}
		if bytes.Contains(s.Ciphertext, plain[:min(size, 16)]) && size >= 16 {
			t.Fatalf("size %d: ciphertext holds the plaintext", size)
		}
		v, err := Open(s, k)
		if err != nil {
			t.Fatalf("size %d: open: %v", size, err)
		}
		if !bytes.Equal(v.Reveal(), plain) || v.Name() != "db-password" || v.Version() != 3 {
			t.Fatalf("size %d: opened %d bytes as %s v%d", size, v.Len(), v.Name(), v.Version())
		}
	}
}

func TestSealingTwiceDiffers(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	a, b := mustSeal(t, k, "api-key", 1, "same"), mustSeal(t, k, "api-key", 1, "same")
	if bytes.Equal(a.Ciphertext, b.Ciphertext) || bytes.Equal(a.Enc, b.Enc) {
		t.Fatal("two seals of the same plaintext are equal: the encapsulation is not fresh")
	}
}

func TestOpenWrongKey(t *testing.T) {
	t.Parallel()
	k, other := testNetworkKey(t), testNetworkKey(t)
	s := mustSeal(t, k, "db-password", 1, "hunter2")

	_, err := Open(s, other)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), k.ID()) || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("open with another key: %v; want ErrWrongKey naming both keys", err)
	}
	// A ciphertext that lies about its key does not open either.
	forged := s
	forged.KeyID = other.ID()
	if _, err := Open(forged, other); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("open with another key and a forged key ID: %v; want ErrDecrypt", err)
	}
	if _, err := Open(s, nil); err == nil {
		t.Fatal("open with no key succeeded")
	}
}

// TestBindingSwap moves a ciphertext to another name, version or key ID, or alters it:
// none of them opens.
func TestBindingSwap(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	s := mustSeal(t, k, "db-password", 2, "hunter2")
	other := mustSeal(t, k, "api-key", 2, "other")
	for _, tc := range []struct {
		name   string
		change func(*Sealed)
	}{
		{"renamed", func(s *Sealed) { s.Name = "api-key" }},
		{"older version", func(s *Sealed) { s.Version = 1 }},
		{"newer version", func(s *Sealed) { s.Version = 3 }},
		{"enc from another secret", func(s *Sealed) { s.Enc = other.Enc }},
		{"ciphertext from another secret", func(s *Sealed) { s.Ciphertext = other.Ciphertext }},
		{"flipped bit", func(s *Sealed) { s.Ciphertext = bytes.Clone(s.Ciphertext); s.Ciphertext[0] ^= 1 }},
		{"flipped enc bit", func(s *Sealed) { s.Enc = bytes.Clone(s.Enc); s.Enc[EncSize-1] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s
			tc.change(&c)
			v, err := Open(c, k)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("open: %v (value %d bytes); want ErrDecrypt", err, v.Len())
			}
		})
	}
	if _, err := Open(s, k); err != nil {
		t.Fatalf("the unchanged secret no longer opens: %v", err)
	}
}

func TestReleaseOnlyToItsNode(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	a, b := testNode(t), testNode(t)
	s := mustSeal(t, k, "db-password", 4, "hunter2")
	toA := Target{Node: "node-a", Placement: "web-1a2b"}

	r, err := Reseal(s, k, a.Public().HPKE, toA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != s.Name || r.Version != s.Version || r.Target() != toA || r.NodeKey != KeyID(a.Public().HPKE) {
		t.Fatalf("released header %+v", r)
	}
	v, err := OpenReleased(r, a.HPKE(), toA)
	if err != nil {
		t.Fatalf("node A opens its release: %v", err)
	}
	if string(v.Reveal()) != "hunter2" || v.Name() != "db-password" || v.Version() != 4 {
		t.Fatalf("node A opened %s", v)
	}

	// Node B, with its own key, cannot open A's release, whatever it claims.
	if _, err := OpenReleased(r, b.HPKE(), toA); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("node B opens A's release: %v; want ErrWrongKey", err)
	}
	forged := r
	forged.NodeKey = KeyID(b.Public().HPKE)
	if _, err := OpenReleased(forged, b.HPKE(), toA); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("node B opens A's release with a forged node key: %v; want ErrDecrypt", err)
	}
	// Neither the network key nor the sealed form opens it as a node would.
	if _, err := OpenReleased(r, k.priv, toA); err == nil {
		t.Fatal("the network key opens a release")
	}

	// The release is bound to its node and depot: moved to another, it does not open.
	for _, tc := range []struct {
		name   string
		change func(*Released)
	}{
		{"another depot", func(r *Released) { r.Placement = "web-9z9z" }},
		{"another node id", func(r *Released) { r.Node = "node-b" }},
		{"another name", func(r *Released) { r.Name = "api-key" }},
		{"another version", func(r *Released) { r.Version = 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r
			tc.change(&c)
			if _, err := OpenReleased(c, a.HPKE(), c.Target()); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("open moved release: %v; want ErrDecrypt", err)
			}
		})
	}
	// A node asking for one depot's secret does not accept a release for another.
	if _, err := OpenReleased(r, a.HPKE(), Target{Node: "node-a", Placement: "db-0000"}); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "web-1a2b") {
		t.Fatalf("open release for another depot: %v; want ErrWrongKey naming the depot", err)
	}
}

func TestResealRefuses(t *testing.T) {
	t.Parallel()
	k, other := testNetworkKey(t), testNetworkKey(t)
	node := testNode(t)
	s := mustSeal(t, k, "db-password", 1, "hunter2")
	to := Target{Node: "node-a", Placement: "web-1"}
	for _, tc := range []struct {
		name    string
		key     *NetworkKey
		nodePub []byte
		to      Target
		want    string
	}{
		{"wrong network key", other, node.Public().HPKE, to, "sealed to another key"},
		{"no node key", k, nil, to, "not an MLKEM768-X25519 public key"},
		{"ed25519 key as node key", k, node.Public().Ed25519, to, "not an MLKEM768-X25519 public key"},
		{"empty node", k, node.Public().HPKE, Target{Placement: "web-1"}, "node \"\" must be"},
		{"bad placement", k, node.Public().HPKE, Target{Node: "node-a", Placement: "a b"}, "placement \"a b\" must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Reseal(s, tc.key, tc.nodePub, tc.to)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reseal: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	d := Depot{Placement: "web-1", Node: "node-a", Secrets: []string{"api-key", "db-password"}}
	for _, tc := range []struct {
		name   string
		secret string
		to     Target
		want   string // "" for allowed
	}{
		{"named by its depot", "db-password", Target{"node-a", "web-1"}, ""},
		{"not named", "tls-key", Target{"node-a", "web-1"}, "does not name it"},
		{"depot on another node", "db-password", Target{"node-b", "web-1"}, "runs on node node-a"},
		{"record of another depot", "db-password", Target{"node-a", "web-2"}, "given the ledger's record of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Authorize(tc.secret, tc.to, d)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNotAuthorized) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("authorize: %v; want ErrNotAuthorized containing %q", err, tc.want)
			}
		})
	}
}

func TestKeyShares(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	validators := map[string]*identity.Key{"val-1": testNode(t), "val-2": testNode(t), "val-3": testNode(t)}
	s := mustSeal(t, k, "db-password", 1, "hunter2")
	shares := map[string]KeyShare{}
	for id, v := range validators {
		sh, err := k.ShareFor(id, v.Public().HPKE)
		if err != nil {
			t.Fatal(err)
		}
		if sh.KeyID != k.ID() || sh.Node != id || sh.NodeKey != KeyID(v.Public().HPKE) {
			t.Fatalf("share header %+v", sh)
		}
		shares[id] = sh
	}
	if _, err := Open(s, k); err != nil {
		t.Fatalf("the network key no longer opens secrets after making shares: %v", err)
	}
	// Every validator recovers the same key from its own share and can open secrets.
	for id, v := range validators {
		got, err := OpenShare(shares[id], v.HPKE())
		if err != nil {
			t.Fatalf("validator %s: %v", id, err)
		}
		if got.ID() != k.ID() || !bytes.Equal(got.Public().HPKE, k.Public().HPKE) {
			t.Fatalf("validator %s recovered %s, want %s", id, got, k)
		}
		if pt, err := Open(s, got); err != nil || string(pt.Reveal()) != "hunter2" {
			t.Fatalf("validator %s opens a secret with its recovered key: %v", id, err)
		}
	}
	// A validator cannot open another's share, nor one moved to its own ID.
	if _, err := OpenShare(shares["val-1"], validators["val-2"].HPKE()); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("val-2 opens val-1's share: %v; want ErrWrongKey", err)
	}
	forged := shares["val-1"]
	forged.NodeKey = KeyID(validators["val-2"].Public().HPKE)
	if _, err := OpenShare(forged, validators["val-2"].HPKE()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("val-2 opens val-1's share with a forged node key: %v; want ErrDecrypt", err)
	}
	moved := shares["val-1"]
	moved.Node = "val-9"
	if _, err := OpenShare(moved, validators["val-1"].HPKE()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("share moved to another node ID opens: %v; want ErrDecrypt", err)
	}
	// A share says which network key it holds; it cannot claim another.
	lying := shares["val-1"]
	lying.KeyID = testNetworkKey(t).ID()
	if _, err := OpenShare(lying, validators["val-1"].HPKE()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("share claiming another key ID opens: %v; want ErrDecrypt", err)
	}
	if _, err := k.ShareFor("val-1", []byte("short")); err == nil || !strings.Contains(err.Error(), "not an MLKEM768-X25519 public key") {
		t.Fatalf("share to a bad key: %v", err)
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	old := testNetworkKey(t)
	secrets := []Sealed{
		mustSeal(t, old, "db-password", 1, "one"),
		mustSeal(t, old, "db-password", 2, "two"),
		mustSeal(t, old, "api-key", 7, "seven"),
	}
	rot, err := Rotate(old)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Old != old || rot.New.ID() == old.ID() {
		t.Fatalf("rotation %s -> %s", rot.Old, rot.New)
	}
	resealed, err := rot.Reseal(secrets)
	if err != nil {
		t.Fatal(err)
	}
	if len(resealed) != len(secrets) {
		t.Fatalf("%d secrets resealed, want %d", len(resealed), len(secrets))
	}
	for i, r := range resealed {
		s := secrets[i]
		if r.Name != s.Name || r.Version != s.Version || r.KeyID != rot.New.ID() {
			t.Fatalf("resealed %d: %s v%d key %s", i, r.Name, r.Version, r.KeyID)
		}
		want, err := Open(s, old)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Open(r, rot.New)
		if err != nil || !bytes.Equal(got.Reveal(), want.Reveal()) {
			t.Fatalf("resealed %s v%d opens with the new key to %q, %v; want %q", r.Name, r.Version, got.Reveal(), err, want.Reveal())
		}
		// The old key no longer opens what is sealed to the new one.
		if _, err := Open(r, old); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("old key opens resealed %s: %v; want ErrWrongKey", r.Name, err)
		}
		forged := r
		forged.KeyID = old.ID()
		if _, err := Open(forged, old); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("old key opens resealed %s with a forged key ID: %v; want ErrDecrypt", r.Name, err)
		}
	}
	// Running the rotation again leaves what is already resealed alone.
	again, err := rot.Reseal(append(resealed[:1:1], secrets[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again[0].Ciphertext, resealed[0].Ciphertext) || again[1].KeyID != rot.New.ID() {
		t.Fatal("resuming a rotation changed an already resealed secret or skipped one")
	}
	// A secret sealed to a third key fails the rotation, naming it.
	stray := mustSeal(t, testNetworkKey(t), "tls-key", 1, "x")
	if out, err := rot.Reseal(append(secrets, stray)); err == nil || out != nil || !strings.Contains(err.Error(), "tls-key") {
		t.Fatalf("rotation with a stray secret: %d out, %v; want an error naming tls-key", len(out), err)
	}
	if _, err := Rotate(nil); err == nil {
		t.Fatal("rotate nil key succeeded")
	}
}

func TestSealRefuses(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	pub := k.Public()
	for _, tc := range []struct {
		name     string
		pub      NetworkPublicKey
		secret   string
		version  uint64
		size     int
		want     string
		sentinel error
	}{
		{"oversized", pub, "db-password", 1, MaxSize + 1, "is 65537 bytes", ErrTooLarge},
		{"empty", pub, "db-password", 1, 0, "needs at least 1 byte", ErrEmpty},
		{"bad name", pub, "DB_Password", 1, 5, "must be a DNS label", ErrBadName},
		{"version 0", pub, "db-password", 0, 5, "versions start at 1", ErrVersion},
		{"bad public key", NetworkPublicKey{ID: pub.ID, HPKE: pub.HPKE[:10]}, "db-password", 1, 5, "not an MLKEM768-X25519 public key", nil},
		{"mislabelled public key", NetworkPublicKey{ID: "0000000000000000", HPKE: pub.HPKE}, "db-password", 1, 5, "does not match the key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Seal(tc.pub, tc.secret, tc.version, NewValue(tc.secret, tc.version, make([]byte, tc.size)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
				t.Fatalf("seal: %v; want an error containing %q (%v)", err, tc.want, tc.sentinel)
			}
		})
	}
}

func TestNetworkPublicKeyCheck(t *testing.T) {
	t.Parallel()
	pub := testNetworkKey(t).Public()
	if err := pub.Check(); err != nil {
		t.Fatal(err)
	}
	if KeyID(pub.HPKE) != pub.ID {
		t.Fatalf("ID %s is not KeyID of the key", pub.ID)
	}
	pub.ID = "ffffffffffffffff"
	if err := pub.Check(); err == nil {
		t.Fatal("a public key with a wrong ID passes Check")
	}
}

// TestEncSize pins EncSize to what the suite really produces.
func TestEncSize(t *testing.T) {
	t.Parallel()
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	enc, ct, err := seal(priv.PublicKey(), "x", nil, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != EncSize || len(ct) != 1+Overhead {
		t.Fatalf("enc %d bytes (EncSize %d), overhead %d (Overhead %d)", len(enc), EncSize, len(ct)-1, Overhead)
	}
	if len(mustBytes(t, priv)) != shareSize {
		t.Fatalf("private key is %d bytes, shareSize %d", len(mustBytes(t, priv)), shareSize)
	}
}

func mustBytes(t *testing.T, k interface{ Bytes() ([]byte, error) }) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
