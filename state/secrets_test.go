package state

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/secret"
)

// keyTx makes the secret.key transaction of a fresh network key shared with the
// fixture's validator.
func (f *fixture) keyTx(k *secret.NetworkKey, resealed []secret.Sealed) *ledger.Tx {
	f.t.Helper()
	sh, err := k.ShareFor(f.node.ID(), f.node.Public().HPKE)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.tx(f.node, ledger.TxSecretKey, ledger.SecretKey{Key: k.Public(), Shares: []secret.KeyShare{sh}, Resealed: resealed})
}

func (f *fixture) sealTx(k *secret.NetworkKey, name string, version uint64, plain string) *ledger.Tx {
	f.t.Helper()
	s, err := secret.Seal(k.Public(), name, version, secret.NewValue(name, version, []byte(plain)))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.tx(f.op, ledger.TxSecretPut, ledger.SecretPut{Secret: s})
}

func (f *fixture) mustApply(tx *ledger.Tx) {
	f.t.Helper()
	if err := f.st.CheckTx(tx, f.now); err != nil {
		f.t.Fatalf("door refused %s: %v", tx.Type, err)
	}
	if res := f.apply(tx); res.Results[0] != "" {
		f.t.Fatalf("%s: %s", tx.Type, res.Results[0])
	}
}

func (f *fixture) refused(tx *ledger.Tx, want string) {
	f.t.Helper()
	err := f.st.CheckTx(tx, f.now)
	if err == nil || !strings.Contains(err.Error(), want) {
		f.t.Errorf("door: %s = %v, want an error containing %q", tx.Type, err, want)
	}
	// At apply too (a leader that skipped the door cannot sneak it in).
	if res := f.apply(tx); !strings.Contains(res.Results[0], want) {
		f.t.Errorf("apply: %s = %q, want an error containing %q", tx.Type, res.Results[0], want)
	}
}

func withSecret(s *manifest.Service, name string) *manifest.Service {
	s.Spec.Secrets = append(s.Spec.Secrets, manifest.SecretRef{Name: name, Env: "X_" + strings.ReplaceAll(strings.ToUpper(name), "-", "_")})
	return s
}

func TestSecretLifecycle(t *testing.T) {
	f := newFixture(t)
	k, _ := secret.NewNetworkKey()

	// Before the key exists, a secret cannot be put.
	f.refused(f.sealTx(k, "db-password", 1, "hunter2"), "no secret key yet")
	// Only a validator records the key; operators cannot.
	sh, _ := k.ShareFor(f.node.ID(), f.node.Public().HPKE)
	if err := f.st.CheckTx(f.tx(f.op, ledger.TxSecretKey, ledger.SecretKey{Key: k.Public(), Shares: []secret.KeyShare{sh}}), f.now); !errors.Is(err, ledger.ErrNotAllowed) {
		t.Errorf("operator secret.key: %v, want ErrNotAllowed", err)
	}
	f.mustApply(f.keyTx(k, nil))
	rec, ok, _ := f.st.NetworkKey()
	if !ok || rec.Key.ID != k.ID() || len(rec.Shares) != 1 {
		t.Fatalf("network key = %+v, %v", rec, ok)
	}
	if back, err := secret.OpenShare(rec.Shares[0], f.node.HPKE()); err != nil || back.ID() != k.ID() {
		t.Fatalf("open share: %v", err)
	}

	// A manifest naming a secret that does not exist is refused with its name.
	f.refused(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: withSecret(hello(1), "db-password")}), "names secret db-password, which the network does not have")

	f.mustApply(f.sealTx(k, "db-password", 1, "hunter2"))
	// Versions go up by exactly one.
	f.refused(f.sealTx(k, "db-password", 1, "again"), "version 1 does not follow the current version 1")
	f.refused(f.sealTx(k, "db-password", 3, "skip"), "the next version is 2")

	f.mustApply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: withSecret(hello(1), "db-password")}))
	svc, _, _ := f.st.Service("hello")
	revs, _ := f.st.Revisions("hello")
	if svc.Revision != 1 || revs[0].Inputs == nil || revs[0].Inputs.Secrets["db-password"] != 1 {
		t.Fatalf("revision 1: %+v inputs %+v", svc, revs[0].Inputs)
	}

	// A new version makes a new revision of the service that uses it, same spec.
	f.mustApply(f.sealTx(k, "db-password", 2, "hunter3"))
	revs, _ = f.st.Revisions("hello")
	if len(revs) != 2 || revs[1].Inputs.Secrets["db-password"] != 2 || revs[1].Spec.Spec.Replicas != 1 {
		t.Fatalf("after v2: revisions %+v", revs)
	}

	// Nothing shown of a secret carries its ciphertext or plaintext.
	infos, _ := f.st.SecretInfos()
	if len(infos) != 1 || infos[0].Version != 2 || infos[0].UpdatedBy != "alice" || infos[0].Size != len("hunter3") || len(infos[0].UsedBy) != 1 {
		t.Fatalf("infos = %+v", infos)
	}
	// Nowhere in the store's file is the plaintext.
	var buf bytes.Buffer
	if err := f.st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"hunter2", "hunter3"} {
		if bytes.Contains(buf.Bytes(), []byte(p)) {
			t.Errorf("the state store holds the plaintext %q", p)
		}
	}

	// Removal is refused while a service names the secret.
	f.refused(f.tx(f.op, ledger.TxSecretRemove, ledger.SecretRemove{Name: "db-password"}), "in use by service hello")

	// Rotation must reseal every secret at its current version.
	r, _ := secret.Rotate(k)
	f.refused(f.keyTx(r.New, nil), "wrong or missing: db-password v2")
	cur, _, _ := f.st.Secret("db-password")
	resealed, err := r.Reseal([]secret.Sealed{cur.Sealed})
	if err != nil {
		t.Fatal(err)
	}
	f.mustApply(f.keyTx(r.New, resealed))
	cur, _, _ = f.st.Secret("db-password")
	if cur.Sealed.KeyID != r.New.ID() || cur.Version != 2 {
		t.Fatalf("after rotation: %+v", cur.Info())
	}
	if v, err := secret.Open(cur.Sealed, r.New); err != nil || string(v.Reveal()) != "hunter3" {
		t.Fatalf("open with the new key: %v", err)
	}
	if revs, _ := f.st.Revisions("hello"); len(revs) != 2 {
		t.Errorf("rotation made a new revision (%d revisions); the plaintext did not change", len(revs))
	}
	// A secret sealed to the old key is refused.
	f.refused(f.sealTx(k, "db-password", 3, "old-key"), "it was rotated")

	f.mustApply(f.tx(f.op, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "hello"}))
	f.mustApply(f.tx(f.op, ledger.TxSecretRemove, ledger.SecretRemove{Name: "db-password"}))
	if _, ok, _ := f.st.Secret("db-password"); ok {
		t.Error("secret still there after rm")
	}
	f.refused(f.tx(f.op, ledger.TxSecretRemove, ledger.SecretRemove{Name: "db-password"}), "not found")
}

func TestConfigLifecycle(t *testing.T) {
	f := newFixture(t)
	f.refused(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "nginx-conf", Version: 1}), "is empty")
	f.refused(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "Bad", Version: 1, Data: []byte("x")}), "config name \"Bad\" must be a DNS label")
	f.refused(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "big", Version: 1, Data: make([]byte, ledger.MaxConfigSize+1)}), "at most 262144")
	f.mustApply(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "nginx-conf", Version: 1, Data: []byte("worker_processes 1;")}))
	f.refused(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "nginx-conf", Version: 1, Data: []byte("x")}), "the next version is 2")

	s := hello(1)
	s.Spec.Configs = []manifest.ConfigRef{{Name: "nginx-conf", Path: "/etc/nginx/nginx.conf"}, {Name: "other", Path: "/etc/o"}}
	f.refused(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: s}), "config other")
	s.Spec.Configs = s.Spec.Configs[:1]
	f.mustApply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: s}))
	f.mustApply(f.tx(f.op, ledger.TxConfigPut, ledger.ConfigPut{Name: "nginx-conf", Version: 2, Data: []byte("worker_processes 2;")}))
	revs, _ := f.st.Revisions("hello")
	if len(revs) != 2 || revs[1].Inputs.Configs["nginx-conf"] != 2 {
		t.Fatalf("revisions %+v", revs)
	}
	c, ok, _ := f.st.Config("nginx-conf")
	if !ok || string(c.Data) != "worker_processes 2;" || c.Version != 2 || len(c.UsedBy) != 1 || len(c.SHA256) != 64 {
		t.Fatalf("config = %+v", c)
	}
	f.refused(f.tx(f.op, ledger.TxConfigRemove, ledger.ConfigRemove{Name: "nginx-conf"}), "in use by service hello")
}
