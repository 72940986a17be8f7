package bench

import (
	"testing"
	"time"

	"qnet.dev/qnet/gossip"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

// BenchmarkGossipFailureDetection measures, with the LAN profile on a network of five
// nodes, the time from stopping a node without a word (its gossip shut down, not left,
// as in a crash) to every other node counting it dead; the clock starts when the stop
// begins. Each iteration stops a node that does not lead ordering, then restarts it on
// its data dir (at a new mesh address) and waits until every node counts it alive again
// before the next. Target: about 2 s at small sizes.
func BenchmarkGossipFailureDetection(b *testing.B) {
	opts := qnettest.Options{Configure: func(c *node.Config) { c.Gossip = gossip.LAN }}
	nodes := qnettest.StartNetwork(b, 5, opts)
	allAlive := func(what string) {
		qnettest.WaitFor(b, 60*time.Second, what, func() bool {
			for _, n := range nodes {
				for _, m := range nodes {
					if !n.Alive(m.ID()) {
						return false
					}
				}
			}
			return true
		})
	}
	allAlive("every node alive in every node's gossip")
	var times []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		// Take turns among the nodes that do not lead, so ordering keeps its leader.
		leader := nodes[0].Leader()
		victim := -1
		for k := range nodes {
			if j := (i + k) % len(nodes); nodes[j].ID() != leader {
				victim = j
				break
			}
		}
		v := nodes[victim]
		id := v.ID()
		b.StartTimer()
		start := time.Now()
		v.Stop(b, false)
		stopped := time.Since(start)
		qnettest.WaitFor(b, 60*time.Second, "every other node to count the stopped node dead", func() bool {
			for _, n := range nodes {
				if n != v && n.Alive(id) {
					return false
				}
			}
			return true
		})
		took := time.Since(start)
		times = append(times, took)
		b.StopTimer()
		restarted := time.Now()
		nodes[victim] = v.Restart(b)
		allAlive("the restarted node alive in every node's gossip")
		b.Logf("node %s (stop took %v): dead everywhere after %v; alive everywhere %v after its restart began", id, stopped.Round(time.Millisecond), took.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		b.StartTimer()
	}
	report(b, times)
}
