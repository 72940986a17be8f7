package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/state"
)

type stateP = state.Placement

func operatorKey(b *testing.B, n *qnettest.Node) *identity.Key {
	k, err := identity.Load(filepath.Join(n.DataDir, node.OperatorKeyFile))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// waitGone waits until every depot of the node has stopped and its runtime state (and
// cgroup) is gone, so the next measurement does not share the machine with a teardown.
func waitGone(b *testing.B, n *qnettest.Node) {
	qnettest.WaitFor(b, 60*time.Second, "depots to be removed", func() bool {
		entries, err := os.ReadDir(filepath.Join(n.DataDir, node.DepotDir))
		return err == nil && len(entries) == 0 && len(n.Agent().Depots()) == 0
	})
}
