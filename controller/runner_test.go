package controller

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// chain is a one-validator ledger over a real state store, for runner tests.
type chain struct {
	t        *testing.T
	st       *state.Store
	op, node *identity.Key
	network  ledger.Hash
	now      time.Time
}

func newChain(t *testing.T) *chain {
	op, _ := identity.Generate(false)
	nd, _ := identity.Generate(true)
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &chain{t: t, st: st, op: op, node: nd, now: time.Now().UTC()}
	gb, err := ledger.NewGenesis(&ledger.Genesis{
		Network: "test", Created: c.now,
		Operators:  []ledger.Operator{{Name: "alice", Key: op.Public()}},
		Nodes:      []ledger.NodeInfo{{ID: nd.ID(), Name: "n1", Key: nd.Public(), CPU: 4000, Memory: 4 << 30}},
		Validators: []string{nd.ID()},
	}, op, nd)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := gb.Encode()
	if _, err := st.ApplyBlock(data, 0); err != nil {
		t.Fatal(err)
	}
	c.network = gb.Hash
	return c
}

// commit puts one transaction in a block at the chain's time and returns its result.
func (c *chain) commit(signer *identity.Key, typ ledger.TxType, payload any) string {
	c.t.Helper()
	tx, err := ledger.NewTx(typ, c.network, payload, c.now.Add(5*time.Minute))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := tx.Sign(signer); err != nil {
		c.t.Fatal(err)
	}
	tip, _, _ := c.st.Tip()
	b, err := ledger.NewBlock(c.network, tip.Height+1, tip.Hash, c.now, []*ledger.Tx{tx}, c.node)
	if err != nil {
		c.t.Fatal(err)
	}
	data, _ := b.Encode()
	res, err := c.st.ApplyBlock(data, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Results[0]
}

// TestRunnerClock drives the runner over a real state store with a fake clock: the
// progress deadline passes when the clock says so, and the leader's report fails the
// rollout on the ledger.
func TestRunnerClock(t *testing.T) {
	c := newChain(t)
	svc := &manifest.Service{APIVersion: manifest.APIVersion, Kind: manifest.KindService,
		Metadata: manifest.Metadata{Name: "web"},
		Spec: manifest.Spec{Replicas: 2, Depot: manifest.Depot{Exec: &manifest.ExecDepot{Command: "web"}},
			Rollout: &manifest.Rollout{ProgressDeadline: manifest.Duration(time.Minute)}}}
	svc.Default()
	if msg := c.commit(c.op, ledger.TxServiceApply, ledger.ServiceApply{Service: svc}); msg != "" {
		t.Fatal(msg)
	}
	applied := c.now
	clock := applied
	var reports []ledger.RolloutStatus
	r := &Runner{
		Store: c.st, IsLeader: func() bool { return true }, Log: slog.New(slog.DiscardHandler),
		Propose: func(_ context.Context, set ledger.PlacementSet) error {
			if msg := c.commit(c.node, ledger.TxPlacement, set); msg != "" {
				t.Fatalf("placement: %s", msg)
			}
			return nil
		},
		ProposeRollout: func(_ context.Context, st ledger.RolloutStatus) error {
			reports = append(reports, st)
			if msg := c.commit(c.node, ledger.TxRolloutStatus, st); msg != "" {
				t.Fatalf("rollout status: %s", msg)
			}
			return nil
		},
		Now: func() time.Time { return clock },
	}
	ctx := t.Context()
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	ps, _ := c.st.Placements(nil)
	if len(ps) != 2 {
		t.Fatalf("%d placements, want 2", len(ps))
	}
	// The depots never report ready. Before the deadline nothing happens...
	clock = applied.Add(59 * time.Second)
	if err := r.Once(ctx); err != nil || len(reports) != 0 {
		t.Fatalf("before the deadline: %v, reports %+v", err, reports)
	}
	// ...after it, the rollout fails, on the ledger.
	clock = applied.Add(61 * time.Second)
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || reports[0].Phase != ledger.RolloutFailed || !reports[0].At.Equal(clock) {
		t.Fatalf("reports %+v, want one failed at the fake time", reports)
	}
	got, _, _ := c.st.Service("web")
	if ro := got.CurrentRollout(); ro.Phase != ledger.RolloutFailed || ro.Message == "" {
		t.Fatalf("rollout on the ledger: %+v", ro)
	}
	// A failed rollout is reported once.
	clock = clock.Add(time.Hour)
	if err := r.Once(ctx); err != nil || len(reports) != 1 {
		t.Fatalf("after failing: %v, reports %+v", err, reports)
	}
}
