package sim

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// open reopens the state store a run left in dir.
func open(t *testing.T, dir string) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func constraint(t *testing.T, text string) manifest.Constraint {
	t.Helper()
	c, err := manifest.ParseConstraint(text)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunFailover places 30 services of 20 replicas, spread by zone, on 300 nodes (more
// than a genesis block holds, so most join with tokens), kills 30 nodes and checks that
// the controller moved exactly the replicas they held, in one set, onto live nodes.
func TestRunFailover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sc := Scenario{Nodes: 300, Services: 30, Replicas: 20, Kill: 30, Zones: 3, Seed: 1, Dir: dir,
		Placement: manifest.Placement{SpreadBy: "zone"}}
	rep, err := Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.String())
	if rep.Place.Placed != 600 || rep.Place.Removed != 0 || rep.Place.Rounds != 2 || rep.Place.Unschedulable != 0 {
		t.Errorf("place phase: %+v; want 600 placed in one pass and a pass that found nothing to do", rep.Place)
	}
	if rep.Place.Converged <= 0 || rep.Place.Converged > rep.Place.Duration || rep.Place.PerSecond() <= 0 {
		t.Errorf("place phase timings: %+v", rep.Place)
	}
	if rep.Failover == nil || len(rep.Killed) != 30 {
		t.Fatalf("failover %+v, killed %d nodes", rep.Failover, len(rep.Killed))
	}

	st := open(t, dir)
	nodes, err := st.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 301 { // and the validator
		t.Fatalf("%d nodes on the ledger, want 301", len(nodes))
	}
	zone := map[string]string{}
	for _, n := range nodes {
		zone[n.ID] = n.Labels["zone"]
	}
	placements, err := st.Placements(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(placements) != 600 {
		t.Fatalf("%d placements, want 600", len(placements))
	}
	perZone := map[string]map[string]int{}
	for _, p := range placements {
		if slices.Contains(rep.Killed, p.Node) {
			t.Fatalf("depot %s is on dead node %s", p.ID, p.Node)
		}
		if perZone[p.Service] == nil {
			perZone[p.Service] = map[string]int{}
		}
		perZone[p.Service][zone[p.Node]]++
	}
	// Spread by zone: 20 replicas over 3 zones are 7, 7 and 6, after the failover too.
	for svc, zones := range perZone {
		counts := []int{zones["z0"], zones["z1"], zones["z2"]}
		slices.Sort(counts)
		if !slices.Equal(counts, []int{6, 7, 7}) {
			t.Errorf("service %s has %v replicas per zone, want 6, 7 and 7", svc, zones)
		}
	}
	// The replicas moved are those the dead nodes held; moved once, in one pass.
	fo := rep.Failover
	if fo.Placed != fo.Removed || fo.Placed == 0 || fo.Rounds != 2 || fo.Blocks != 1 {
		t.Errorf("failover: %+v; want as many placed as removed, in one block, then a quiet pass", *fo)
	}
}

// Replicas that fit nowhere leave their services unschedulable, and the rest placed.
func TestRunUnschedulable(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Scenario{Nodes: 10, Services: 2, Replicas: 100,
		NodeCPU: 4000, NodeMemory: 1 << 30, ReplicaMemory: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Place.Placed != 40 || rep.Place.Unschedulable != 2 {
		t.Errorf("placed %d with %d unschedulable services; want the 40 that fit and 2", rep.Place.Placed, rep.Place.Unschedulable)
	}
}

// Constraints and bin-packing reach the scheduler through the manifests on the ledger.
func TestRunPlacementSpec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Run(context.Background(), Scenario{Nodes: 40, Services: 4, Replicas: 30, Zones: 4, Dir: dir,
		NodeCPU: 4000, NodeMemory: 1 << 30, ReplicaMemory: 128 << 20,
		Placement: manifest.Placement{Strategy: manifest.StrategyBinpack, Constraints: []manifest.Constraint{constraint(t, "label.zone != z0")}}})
	if err != nil {
		t.Fatal(err)
	}
	st := open(t, dir)
	nodes, _ := st.Nodes()
	zone := map[string]string{}
	for _, n := range nodes {
		zone[n.ID] = n.Labels["zone"]
	}
	placements, _ := st.Placements(nil)
	used := map[string]int{}
	for _, p := range placements {
		if zone[p.Node] == "z0" {
			t.Fatalf("depot %s is in zone z0, which its constraint excludes", p.ID)
		}
		used[p.Node]++
	}
	// Bin-packed, 120 replicas of 128Mi fill 15 nodes of 1Gi, 8 each.
	if len(placements) != 120 || len(used) != 15 {
		t.Errorf("%d replicas on %d nodes; want 120 on 15 full nodes", len(placements), len(used))
	}
}

func TestScenarioValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sc   Scenario
		want string
	}{
		{Scenario{}, "sim: Scenario.Nodes: must be between 1 and 100000, got 0"},
		{Scenario{Nodes: 5, Kill: 5}, "sim: Scenario.Kill: must be between 0 and Nodes-1 (4), got 5"},
		{Scenario{Nodes: 5, Services: 1, Replicas: 20000}, "sim: Scenario.Services/Replicas: must be at least 0, and Replicas at most 10000 (a manifest's limit), got 1 and 20000"},
		{Scenario{Nodes: 5, Services: 2000, Replicas: 10000}, "sim: Scenario.Services: 2000 services of 10000 replicas make 20000000 depots; at most 10000000"},
		{Scenario{Nodes: 5, Zones: -1}, "sim: Scenario.Zones: must not be negative, got -1"},
		{Scenario{Nodes: 5, Placement: manifest.Placement{Strategy: "pack"}},
			`sim: Scenario.Placement/ReplicaCPU/ReplicaMemory: the services' manifest would be invalid: spec.placement.strategy: must be spread or binpack, got "pack"`},
	}
	for _, tt := range tests {
		err := tt.sc.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("Validate(%+v) = %v\nwant %s", tt.sc, err, tt.want)
		}
		if _, runErr := Run(context.Background(), tt.sc); runErr == nil || runErr.Error() != tt.want {
			t.Errorf("Run did not refuse the scenario as Validate does: %v", runErr)
		}
	}
	if err := (Scenario{Nodes: 1}).Validate(); err != nil {
		t.Errorf("a one-node scenario: %v", err)
	}
}

func TestRunCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, Scenario{Nodes: 50, Services: 1, Replicas: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a canceled context = %v, want context.Canceled", err)
	}
}
