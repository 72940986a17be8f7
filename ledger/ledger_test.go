package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// testNet is a genesis block plus the keys that made it.
type testNet struct {
	op, node *identity.Key
	genesis  *Block
	chain    *Chain
	blocks   [][]byte
	now      time.Time
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	op, err := identity.Generate(false)
	if err != nil {
		t.Fatal(err)
	}
	node, err := identity.Generate(true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	g := &Genesis{
		Network: "test", Created: now,
		Operators:  []Operator{{Name: "alice", Key: op.Public()}},
		Nodes:      []NodeInfo{{ID: node.ID(), Name: "n1", Key: node.Public(), CPU: 2000, Memory: 1 << 30}},
		Validators: []string{node.ID()},
	}
	gb, err := NewGenesis(g, op, node)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNet{op: op, node: node, genesis: gb, chain: NewChain(), now: now}
	n.append(t, gb)
	return n
}

func (n *testNet) append(t testing.TB, b *Block) {
	t.Helper()
	if err := n.chain.Append(b); err != nil {
		t.Fatalf("append block %d: %v", b.Height, err)
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n.blocks = append(n.blocks, data)
}

func (n *testNet) tx(t testing.TB, signer *identity.Key, typ TxType, payload any) *Tx {
	t.Helper()
	tx, err := NewTx(typ, n.genesis.Hash, payload, n.now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Sign(signer); err != nil {
		t.Fatal(err)
	}
	return tx
}

func (n *testNet) block(t testing.TB, txs ...*Tx) *Block {
	t.Helper()
	h, tip, _, _ := n.chain.Tip()
	n.now = n.now.Add(time.Second)
	b, err := NewBlock(n.genesis.Hash, h+1, tip, n.now, txs, n.node)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *testNet) source(blocks [][]byte) BlockSource {
	i := 0
	return func() (uint64, []byte, error) {
		if i == len(blocks) {
			return 0, nil, io.EOF
		}
		i++
		return uint64(i - 1), blocks[i-1], nil
	}
}

func TestChainVerifies(t *testing.T) {
	n := newTestNet(t)
	for i := range 5 {
		n.append(t, n.block(t, n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: fmt.Sprint("svc", i)})))
	}
	r, err := Verify(n.source(n.blocks))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if r.Blocks != 6 || r.Txs != 6 || r.Network != n.genesis.Hash {
		t.Fatalf("report %+v", r)
	}
}

// TestVerifyDetectsTampering alters stored blocks in the ways an attacker with disk
// access could and checks that each is found, with a message that names the block.
func TestVerifyDetectsTampering(t *testing.T) {
	n := newTestNet(t)
	for i := range 3 {
		n.append(t, n.block(t, n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: fmt.Sprint("svc", i)})))
	}
	edit := func(height int, f func(m map[string]any)) [][]byte {
		out := append([][]byte(nil), n.blocks...)
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(n.blocks[height]))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		f(m)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[height] = data
		return out
	}
	tx0 := func(m map[string]any) map[string]any { return m["txs"].([]any)[0].(map[string]any) }

	// A block re-hashed and re-signed by an outsider.
	outsider, _ := identity.Generate(false)
	forgedBlock := func() [][]byte {
		out := append([][]byte(nil), n.blocks...)
		b, _ := DecodeBlock(n.blocks[2])
		b.Txs[0].Payload = json.RawMessage(`{"name":"other"}`)
		b.TxRoot = TxRootOf(b.Txs)
		b.Proposer = outsider.ID()
		b.Hash = b.ComputeHash()
		b.Sig, _ = outsider.Sign(identity.DomainBlock, b.Hash[:])
		out[2], _ = b.Encode()
		return out
	}()

	cases := []struct {
		name   string
		blocks [][]byte
		is     error
		want   string
	}{
		{"payload altered", edit(2, func(m map[string]any) { tx0(m)["payload"] = map[string]any{"name": "evil"} }), ErrTampered, "block 2: Merkle root"},
		{"header time altered", edit(1, func(m map[string]any) { m["time"] = "2030-01-01T00:00:00Z" }), ErrTampered, "block 1: header hashes to"},
		{"tx signature altered", edit(3, func(m map[string]any) {
			sig := tx0(m)["sig"].(map[string]any)
			sig["ed25519"] = sig["mldsa65"].(string)[:88]
		}), ErrTampered, "block 3: Merkle root"},
		{"block removed", append(append([][]byte(nil), n.blocks[:2]...), n.blocks[3:]...), ErrTampered, "block stored at height 2 says it is block 3"},
		{"garbage", append(append([][]byte(nil), n.blocks[:1]...), []byte("{\"height\":")), ErrMalformed, "block 1: malformed"},
		{"re-signed by an outsider", forgedBlock, ErrUnknownSigner, "block 2 proposer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(n.source(c.blocks))
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %v containing %q", err, c.is, c.want)
			}
		})
	}
}

func TestCheckBlockRefuses(t *testing.T) {
	n := newTestNet(t)
	good := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "a"})
	n.append(t, n.block(t, good))

	outsider, _ := identity.Generate(false)
	forged := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "b"})
	forged.Payload = json.RawMessage(`{"name":"c"}`) // signature no longer covers it

	mixed := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "d"})
	outsiderSig, _ := outsider.Sign(identity.DomainTx, mixed.SigningBytes())
	mixed.Sig.MLDSA65 = outsiderSig.MLDSA65 // right Ed25519 half, wrong ML-DSA half

	expired := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "e"})
	expired.Expires = n.now.Add(-time.Minute)
	expired.Sign(n.op)

	farFuture := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "f"})
	farFuture.Expires = n.now.Add(48 * time.Hour)
	farFuture.Sign(n.op)

	otherNet := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "g"})
	otherNet.Network = Hash{1}
	otherNet.Sign(n.op)

	dup := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "h"})

	cases := []struct {
		name string
		txs  []*Tx
		is   error
		want string
	}{
		{"replayed transaction", []*Tx{good}, ErrReplay, "was already committed in block 1"},
		{"same transaction twice in a block", []*Tx{dup, dup}, ErrReplay, "same as transaction 0"},
		{"forged payload", []*Tx{forged}, identity.ErrBadSignature, "ed25519 half does not verify"},
		{"wrong ML-DSA half", []*Tx{mixed}, identity.ErrBadSignature, "ml-dsa-65 half does not verify"},
		{"unknown signer", []*Tx{n.tx(t, outsider, TxServiceDelete, ServiceDelete{Name: "x"})}, ErrUnknownSigner, "is not registered"},
		{"operator signs placement", []*Tx{n.tx(t, n.op, TxPlacement, PlacementSet{})}, ErrNotAllowed, "may not sign placement.set"},
		{"node signs service", []*Tx{n.tx(t, n.node, TxServiceDelete, ServiceDelete{Name: "y"})}, ErrNotAllowed, "may not sign service.delete"},
		{"expired", []*Tx{expired}, ErrExpired, "expired at"},
		{"clock far off", []*Tx{farFuture}, ErrNotAllowed, "clock far off"},
		{"other network", []*Tx{otherNet}, ErrWrongNetwork, "is for network"},
		{"second genesis", []*Tx{n.tx(t, n.op, TxGenesis, Genesis{})}, ErrNotAllowed, "only valid in block 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckBlock(n.chain, n.block(t, c.txs...), nil)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %v containing %q", err, c.is, c.want)
			}
		})
	}

	t.Run("stale parent", func(t *testing.T) {
		b, _ := NewBlock(n.genesis.Hash, 1, n.genesis.Hash, n.now, nil, n.node)
		if err := CheckBlock(n.chain, b, nil); !errors.Is(err, ErrBadChain) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("proposer not a validator", func(t *testing.T) {
		h, tip, _, _ := n.chain.Tip()
		b, _ := NewBlock(n.genesis.Hash, h+1, tip, n.now.Add(time.Hour), nil, n.op)
		if err := CheckBlock(n.chain, b, nil); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDecodeTxCanonical(t *testing.T) {
	n := newTestNet(t)
	tx := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "a<b"})
	data, _ := json.Marshal(tx)
	back, err := DecodeTx(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != tx.ID() || back.LeafHash() != tx.LeafHash() {
		t.Fatal("round trip changed the transaction")
	}
	loose := strings.Replace(string(data), `"payload":{"name"`, `"payload":{ "name"`, 1)
	if _, err := DecodeTx([]byte(loose)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "canonical") {
		t.Fatalf("non-canonical payload: %v", err)
	}
	if _, err := DecodeTx([]byte(strings.Replace(string(data), `"type"`, `"typo":1,"type"`, 1))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestMerkleProofs(t *testing.T) {
	for n := 1; n <= 17; n++ {
		leaves := make([]Hash, n)
		for i := range leaves {
			leaves[i] = Hash{byte(i), byte(n)}
		}
		root := MerkleRoot(leaves)
		for i := range leaves {
			p := MerkleProof(leaves, i)
			if !VerifyMerkleProof(root, leaves[i], i, n, p) {
				t.Fatalf("n=%d i=%d: proof does not verify", n, i)
			}
			if VerifyMerkleProof(root, Hash{0xff}, i, n, p) {
				t.Fatalf("n=%d i=%d: proof verifies a wrong leaf", n, i)
			}
		}
	}
	if MerkleRoot([]Hash{{1}, {2}}) == MerkleRoot([]Hash{{2}, {1}}) {
		t.Fatal("order does not matter to the root")
	}
}

func FuzzDecodeTx(f *testing.F) {
	n := newTestNet(f)
	data, _ := json.Marshal(n.tx(f, n.op, TxServiceDelete, ServiceDelete{Name: "a"}))
	f.Add(data)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"type":"x","payload":[1,2]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeTx(data)
		if err != nil {
			return
		}
		// A decoded transaction re-encodes to something that decodes to the same ID.
		again, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		tx2, err := DecodeTx(again)
		if err != nil || tx2.ID() != tx.ID() {
			t.Fatalf("re-encoding changed the transaction: %v", err)
		}
		CheckTx(n.chain, tx, n.now, nil)
	})
}

func FuzzDecodeBlock(f *testing.F) {
	n := newTestNet(f)
	n.append(f, n.block(f, n.tx(f, n.op, TxServiceDelete, ServiceDelete{Name: "a"})))
	for _, b := range n.blocks {
		f.Add(b)
	}
	f.Add([]byte(`{"txs":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			return
		}
		CheckBlock(n.chain, b, nil)
		CheckGenesis(b)
	})
}

func BenchmarkCheckBlock1000(b *testing.B) {
	n := newTestNet(b)
	txs := make([]*Tx, 1000)
	for i := range txs {
		txs[i] = n.tx(b, n.op, TxServiceDelete, ServiceDelete{Name: fmt.Sprint("s", i)})
	}
	blk := n.block(b, txs...)
	for b.Loop() {
		if err := CheckBlock(n.chain, blk, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tx/s")
}

// TestVerifyDetectsForgedAndReplayedTransactions stores chains that a faulty or hostile
// validator could have signed — a transaction replayed from an earlier block, a
// transaction whose signature is not its signer's — and checks that Verify names each.
func TestVerifyDetectsForgedAndReplayedTransactions(t *testing.T) {
	n := newTestNet(t)
	first := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "a"})
	n.append(t, n.block(t, first))

	signed := func(txs ...*Tx) []byte {
		h, tip, _, _ := n.chain.Tip()
		b, err := NewBlock(n.genesis.Hash, h+1, tip, n.now.Add(time.Minute), txs, n.node)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := b.Encode()
		return data
	}
	outsider, _ := identity.Generate(false)
	forged := n.tx(t, n.op, TxServiceDelete, ServiceDelete{Name: "b"})
	forged.Sig, _ = outsider.Sign(identity.DomainTx, forged.SigningBytes())

	cases := []struct {
		name string
		tail []byte
		is   error
		want string
	}{
		{"replayed", signed(first), ErrReplay, "block 2 transaction 0: replayed transaction: " + first.ID().Short() + " was already committed in block 1"},
		{"forged", signed(forged), identity.ErrBadSignature, "block 2 transaction 0: transaction " + forged.ID().Short()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(n.source(append(append([][]byte(nil), n.blocks...), c.tail)))
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %v containing %q", err, c.is, c.want)
			}
		})
	}
}
