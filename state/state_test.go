package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

type fixture struct {
	t        *testing.T
	st       *Store
	path     string
	op, node *identity.Key
	network  ledger.Hash
	now      time.Time
	index    uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	op, _ := identity.Generate(false)
	node, _ := identity.Generate(true)
	f := &fixture{t: t, op: op, node: node, path: filepath.Join(t.TempDir(), "state.db"), now: time.Now().UTC()}
	st, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	g := &ledger.Genesis{
		Network: "test", Created: f.now,
		Operators:  []ledger.Operator{{Name: "alice", Key: op.Public()}},
		Nodes:      []ledger.NodeInfo{{ID: node.ID(), Name: "n1", Key: node.Public(), CPU: 2000, Memory: 1 << 30}},
		Validators: []string{node.ID()},
	}
	gb, err := ledger.NewGenesis(g, op, node)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := gb.Encode()
	if _, err := st.ApplyBlock(data, 0); err != nil {
		t.Fatal(err)
	}
	f.network = gb.Hash
	return f
}

func (f *fixture) tx(signer *identity.Key, typ ledger.TxType, payload any) *ledger.Tx {
	t, err := ledger.NewTx(typ, f.network, payload, f.now.Add(5*time.Minute))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := t.Sign(signer); err != nil {
		f.t.Fatal(err)
	}
	return t
}

func (f *fixture) apply(txs ...*ledger.Tx) *Applied {
	f.t.Helper()
	tip, _, _ := f.st.Tip()
	f.now = f.now.Add(time.Millisecond)
	b, err := ledger.NewBlock(f.network, tip.Height+1, tip.Hash, f.now, txs, f.node)
	if err != nil {
		f.t.Fatal(err)
	}
	data, _ := b.Encode()
	f.index++
	res, err := f.st.ApplyBlock(data, f.index)
	if err != nil {
		f.t.Fatalf("apply block %d: %v", b.Height, err)
	}
	return res
}

func hello(replicas int) *manifest.Service {
	s := &manifest.Service{APIVersion: manifest.APIVersion, Kind: manifest.KindService,
		Metadata: manifest.Metadata{Name: "hello"},
		Spec:     manifest.Spec{Replicas: replicas, Depot: manifest.Depot{Exec: &manifest.ExecDepot{Command: "qnet"}}}}
	s.Default()
	s.Spec.Replicas = replicas
	return s
}

func TestServiceLifecycle(t *testing.T) {
	f := newFixture(t)
	var events []Event
	cancel := f.st.Subscribe(func(evs []Event) { events = append(events, evs...) })
	defer cancel()

	res := f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(3)}))
	if res.Results[0] != "" {
		t.Fatalf("apply: %s", res.Results[0])
	}
	svc, ok, _ := f.st.Service("hello")
	if !ok || svc.Revision != 1 || svc.AppliedBy != "alice" {
		t.Fatalf("service after apply: %+v", svc)
	}
	// The same spec again makes no new revision.
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(3)}))
	if svc, _, _ := f.st.Service("hello"); svc.Revision != 1 {
		t.Fatalf("unchanged apply made revision %d", svc.Revision)
	}
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(5)}))
	revs, _ := f.st.Revisions("hello")
	if len(revs) != 2 || revs[1].Spec.Spec.Replicas != 5 {
		t.Fatalf("revisions: %+v", revs)
	}

	set := ledger.PlacementSet{Add: []ledger.Placement{{ID: "hello-1", Service: "hello", Revision: 2, Node: f.node.ID()}}}
	if res := f.apply(f.tx(f.node, ledger.TxPlacement, set)); res.Results[0] != "" {
		t.Fatalf("placement: %s", res.Results[0])
	}
	code := 0
	report := ledger.DepotStatusReport{Node: f.node.ID(), Depots: []ledger.DepotStatus{{ID: "hello-1", State: ledger.DepotReady, Ready: true, ExitCode: &code}}}
	f.apply(f.tx(f.node, ledger.TxDepotStatus, report))
	pl, _, _ := f.st.Placement("hello-1")
	if pl.Status == nil || !pl.Status.Ready {
		t.Fatalf("status not recorded: %+v", pl)
	}

	res = f.apply(f.tx(f.op, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "hello"}))
	if res.Results[0] != "" {
		t.Fatal(res.Results[0])
	}
	if ps, _ := f.st.Placements(nil); len(ps) != 0 {
		t.Fatalf("placements left after delete: %v", ps)
	}
	res = f.apply(f.tx(f.op, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "hello"}))
	if !strings.Contains(res.Results[0], `service "hello" not found`) {
		t.Fatalf("deleting a missing service: %q", res.Results[0])
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	// Revision 2 came before revision 1 had rolled out: it supersedes that rollout.
	want := "service.applied service.applied rollout.superseded placement.added depot.ready service.deleted tx.failed"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("events %v\nwant %s", kinds, want)
	}
}

func TestRulesAtApply(t *testing.T) {
	f := newFixture(t)
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(1)}))
	bad := hello(1)
	bad.Spec.Replicas = -1
	other, _ := identity.Generate(true)
	cases := []struct {
		name string
		tx   *ledger.Tx
		want string
	}{
		{"invalid manifest", f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: bad}), "invalid manifest: spec.replicas"},
		{"placement of unknown service", f.tx(f.node, ledger.TxPlacement, ledger.PlacementSet{Add: []ledger.Placement{{ID: "x-1", Service: "x", Revision: 1, Node: f.node.ID()}}}), `service "x" not found`},
		{"placement of missing revision", f.tx(f.node, ledger.TxPlacement, ledger.PlacementSet{Add: []ledger.Placement{{ID: "h-1", Service: "hello", Revision: 9, Node: f.node.ID()}}}), "has no revision 9"},
		{"placement on unknown node", f.tx(f.node, ledger.TxPlacement, ledger.PlacementSet{Add: []ledger.Placement{{ID: "h-1", Service: "hello", Revision: 1, Node: other.ID()}}}), "not found"},
		{"status for another node", f.tx(f.node, ledger.TxDepotStatus, ledger.DepotStatusReport{Node: other.ID()}), "may not report for node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := f.st.CheckTx(c.tx, f.now); c.name != "status for another node" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("door: got %v, want %q", err, c.want)
			}
			res := f.apply(c.tx)
			if !strings.Contains(res.Results[0], c.want) {
				t.Fatalf("apply: got %q, want %q", res.Results[0], c.want)
			}
			rec, ok, _ := f.st.Tx(c.tx.ID())
			if !ok || rec.Error == "" {
				t.Fatalf("failed transaction not recorded: %+v", rec)
			}
		})
	}
}

func TestReplayedIndexSkippedAndBadBlockChangesNothing(t *testing.T) {
	f := newFixture(t)
	tx := f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(1)})
	f.apply(tx)
	tip, _, _ := f.st.Tip()
	// The same log index again (a replay after restart) is skipped.
	data, _ := f.st.Block(tip.Height)
	if res, err := f.st.ApplyBlock(data, f.index); err != nil || res != nil {
		t.Fatalf("replayed index: %v %v", res, err)
	}
	// A block that replays a committed transaction is refused whole.
	b, _ := ledger.NewBlock(f.network, tip.Height+1, tip.Hash, f.now.Add(time.Second), []*ledger.Tx{tx}, f.node)
	data, _ = b.Encode()
	if _, err := f.st.ApplyBlock(data, f.index+1); !errors.Is(err, ledger.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if after, _, _ := f.st.Tip(); after.Height != tip.Height {
		t.Fatal("a refused block moved the tip")
	}
}

func TestRestartAndSnapshot(t *testing.T) {
	f := newFixture(t)
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(2)}))
	var snap bytes.Buffer
	if err := f.st.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	f.apply(f.tx(f.op, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "hello"}))
	if err := f.st.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := f.st.Service("hello"); !ok {
		t.Fatal("restore did not bring the snapshot's state back")
	}
	f.st.Close()
	st, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok, _ := st.Service("hello"); !ok || st.LastApplied() != 1 {
		t.Fatalf("reopen lost state (applied %d)", st.LastApplied())
	}
}

func TestCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	junk := bytes.Repeat([]byte("not a database "), 1000)
	os.WriteFile(path, junk, 0o600)
	if _, err := Open(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "left as it is") {
		t.Fatalf("corrupt file: %v", err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, junk) {
		t.Fatal("opening a corrupt file changed it")
	}
}
