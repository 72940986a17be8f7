package bench

import (
	"context"
	"testing"

	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/sim"
)

// BenchmarkSim measures the scheduler and the replica controller on simulated networks
// (package sim): every replica placed by the real controller.Runner and committed as
// signed placement.set transactions in signed blocks applied to a real state store,
// then a failover after 1% of the nodes die. It reports, per run:
//
//   - place-s: seconds from the first reconcile pass until every replica's placement is
//     committed; placements/s is depots placed per second of it;
//   - failover-s: seconds from the nodes' death until every replica they held is
//     committed on a live node, and failover-moved the depots that moved;
//   - setup-s: building the network (keys, genesis, joins, manifests), not part of the
//     targets.
//
// The target is 1,000,000 depots on 10,000 nodes placed and committed in under 60 s:
//
//	go test ./bench -run '^$' -bench 'Sim/depots=1M' -benchtime 1x -timeout 30m
//
// depots=10k (on 1,000 nodes, spread over 3 zones) is the quick one.
func BenchmarkSim(b *testing.B) {
	for _, tc := range []struct {
		name string
		sc   sim.Scenario
	}{
		{"depots=10k/nodes=1k", sim.Scenario{Nodes: 1000, Services: 100, Replicas: 100, Kill: 10, Zones: 3,
			Placement: manifest.Placement{SpreadBy: "zone"}}},
		{"depots=1M/nodes=10k", sim.Scenario{Nodes: 10000, Services: 1000, Replicas: 1000, Kill: 100}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var place, failover, setup, placed, moved float64
			for i := 0; b.Loop(); i++ {
				sc := tc.sc
				sc.Seed = uint64(i)
				rep, err := sim.Run(context.Background(), sc)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Place.Unschedulable != 0 || rep.Failover.Unschedulable != 0 {
					b.Fatalf("unschedulable services:\n%s", rep)
				}
				b.Logf("\n%s", rep)
				place += rep.Place.Converged.Seconds()
				placed += float64(rep.Place.Placed)
				failover += rep.Failover.Converged.Seconds()
				moved += float64(rep.Failover.Placed)
				setup += rep.Setup.Seconds()
			}
			n := float64(b.N)
			b.ReportMetric(placed/place, "placements/s")
			b.ReportMetric(place/n, "place-s")
			b.ReportMetric(failover/n, "failover-s")
			b.ReportMetric(moved/n, "failover-moved")
			b.ReportMetric(setup/n, "setup-s")
		})
	}
}
