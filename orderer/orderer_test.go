package orderer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

type net1 struct {
	dir      string
	op, node *identity.Key
	network  ledger.Hash
	st       *state.Store
	ord      *Orderer
}

func newNet(t testing.TB) *net1 {
	t.Helper()
	n := &net1{dir: t.TempDir()}
	n.op, _ = identity.Generate(false)
	n.node, _ = identity.Generate(true)
	g := &ledger.Genesis{
		Network: "test", Created: time.Now().UTC(),
		Operators:  []ledger.Operator{{Name: "alice", Key: n.op.Public()}},
		Nodes:      []ledger.NodeInfo{{ID: n.node.ID(), Name: "n1", Key: n.node.Public(), CPU: 2000, Memory: 1 << 30}},
		Validators: []string{n.node.ID()},
	}
	gb, err := ledger.NewGenesis(g, n.op, n.node)
	if err != nil {
		t.Fatal(err)
	}
	n.network = gb.Hash
	st, err := state.Open(filepath.Join(n.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := gb.Encode()
	if _, err := st.ApplyBlock(data, 0); err != nil {
		t.Fatal(err)
	}
	st.Close()
	n.start(t)
	return n
}

func (n *net1) start(t testing.TB) {
	t.Helper()
	st, err := state.Open(filepath.Join(n.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Dir, cfg.Key, cfg.Store, cfg.Bootstrap = n.node.ID(), filepath.Join(n.dir, "raft"), identity.NewCurrent(n.node), st, true
	cfg.Logger = slog.New(slog.DiscardHandler)
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(n.node.ID()))
	ord, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ord.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	n.st, n.ord = st, ord
}

func (n *net1) stop() {
	n.ord.Close()
	n.st.Close()
}

func (n *net1) tx(t testing.TB, typ ledger.TxType, payload any) *ledger.Tx {
	tx, err := ledger.NewTx(typ, n.network, payload, time.Now().Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Sign(n.op); err != nil {
		t.Fatal(err)
	}
	return tx
}

func service(name string, replicas int) *manifest.Service {
	s := &manifest.Service{APIVersion: manifest.APIVersion, Kind: manifest.KindService,
		Metadata: manifest.Metadata{Name: name},
		Spec:     manifest.Spec{Depot: manifest.Depot{Exec: &manifest.ExecDepot{Command: "true"}}}}
	s.Default()
	s.Spec.Replicas = replicas
	return s
}

func TestSubmitCommitsAndSurvivesRestart(t *testing.T) {
	n := newNet(t)
	ctx := context.Background()
	apply := n.tx(t, ledger.TxServiceApply, ledger.ServiceApply{Service: service("web", 2)})
	res, err := n.ord.Submit(ctx, []*ledger.Tx{apply})
	if err != nil || res[0].Err != nil || res[0].Height != 1 {
		t.Fatalf("submit: %v %+v", err, res)
	}
	// A replay of a committed transaction is refused, naming the block.
	res, err = n.ord.Submit(ctx, []*ledger.Tx{apply})
	if err != nil || !errors.Is(res[0].Err, ledger.ErrReplay) {
		t.Fatalf("replay: %v %+v", err, res)
	}
	// An app-level failure is committed and reported.
	res, _ = n.ord.Submit(ctx, []*ledger.Tx{n.tx(t, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "nope"})})
	if res[0].Err == nil {
		t.Fatal("deleting a missing service succeeded")
	}
	tip, _, _ := n.st.Tip()
	n.stop()

	// After a restart the state is all there, and the raft log replay does not apply
	// any block twice.
	n.start(t)
	defer n.stop()
	after, _, _ := n.st.Tip()
	if after.Height != tip.Height || after.Hash != tip.Hash {
		t.Fatalf("tip after restart %d %s, before %d %s", after.Height, after.Hash.Short(), tip.Height, tip.Hash.Short())
	}
	if svc, ok, _ := n.st.Service("web"); !ok || svc.Revision != 1 {
		t.Fatalf("service lost in restart: %+v", svc)
	}
	res, err = n.ord.Submit(ctx, []*ledger.Tx{n.tx(t, ledger.TxServiceApply, ledger.ServiceApply{Service: service("web", 3)})})
	if err != nil || res[0].Err != nil || res[0].Height != tip.Height+1 {
		t.Fatalf("submit after restart: %v %+v", err, res)
	}
	next, done, _ := n.st.Blocks()
	defer done()
	if r, err := ledger.Verify(next); err != nil || r.Blocks != tip.Height+2 {
		t.Fatalf("verify after restart: %v %+v", err, r)
	}
}

func TestManyTransactionsBatchIntoBlocks(t *testing.T) {
	n := newNet(t)
	defer n.stop()
	txs := make([]*ledger.Tx, 500)
	for i := range txs {
		txs[i] = n.tx(t, ledger.TxServiceApply, ledger.ServiceApply{Service: service(fmt.Sprintf("s%d", i), 0)})
	}
	res, err := n.ord.Submit(context.Background(), txs)
	if err != nil {
		t.Fatal(err)
	}
	heights := map[uint64]bool{}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		heights[r.Height] = true
	}
	if len(heights) > 10 {
		t.Fatalf("500 transactions took %d blocks; they should batch", len(heights))
	}
	svcs, _ := n.st.Services()
	if len(svcs) != 500 {
		t.Fatalf("%d services", len(svcs))
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
}
