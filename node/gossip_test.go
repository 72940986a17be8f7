package node_test

import (
	"context"
	"testing"
	"time"

	"qnet.dev/qnet/qnettest"
)

// TestGossipDetectsKilledNode stops a node of four without a word to the others (its
// gossip is shut down, not left, as in a crash) and waits until every other node's
// failure detector counts it dead, while the others stay alive. Then the node starts
// again at another mesh address, as a node that moved would, and every node must count
// it alive again within seconds (memberlist, left to itself, refuses a dead node's name
// at a new address for about a minute).
func TestGossipDetectsKilledNode(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 4, qnettest.Options{})
	qnettest.WaitFor(t, 20*time.Second, "every node alive in every node's gossip", func() bool {
		for _, n := range nodes {
			for _, m := range nodes {
				if !n.Alive(m.ID()) {
					return false
				}
			}
		}
		return true
	})
	victim, rest := nodes[len(nodes)-1], nodes[:len(nodes)-1]
	id, oldAddr := victim.ID(), victim.Mesh().Addr()
	start := time.Now()
	victim.Stop(t, false)
	qnettest.WaitFor(t, 15*time.Second, "every other node to count the stopped node dead", func() bool {
		for _, n := range rest {
			if n.Alive(id) {
				return false
			}
		}
		return true
	})
	t.Logf("node %s counted dead by all %d others after %v", id, len(rest), time.Since(start).Round(time.Millisecond))
	// The API reports the same: the stopped node down, the others up.
	for _, n := range rest {
		ns, err := n.Client.Nodes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range ns {
			if want := nd.ID != id; nd.Alive != want {
				t.Errorf("node %s reports node %s alive=%v, want %v", n.ID(), nd.ID, nd.Alive, want)
			}
		}
	}

	back := victim.Restart(t)
	if back.Mesh().Addr() == oldAddr {
		t.Fatalf("the node restarted at its old mesh address %s", oldAddr)
	}
	all := append([]*qnettest.Node{back}, rest...)
	qnettest.WaitFor(t, 10*time.Second, "every node to count the restarted node alive", func() bool {
		for _, n := range all {
			if !n.Alive(id) {
				return false
			}
		}
		return true
	})
}
