package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/jointoken"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

func status(t *testing.T, n *qnettest.Node) *api.Status {
	t.Helper()
	st, err := n.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// sameChain waits until every node's chain has the same tip and verifies from genesis.
func sameChain(t *testing.T, nodes []*qnettest.Node) {
	t.Helper()
	qnettest.WaitFor(t, 30*time.Second, "every node at the same tip", func() bool {
		tip := ""
		for _, n := range nodes {
			st, err := n.Client.Status(context.Background())
			if err != nil {
				return false
			}
			if tip != "" && st.Tip != tip {
				return false
			}
			tip = st.Tip
		}
		return true
	})
	for _, n := range nodes {
		rep, err := n.Client.VerifyLedger(context.Background())
		if err != nil || !rep.OK {
			t.Fatalf("node %s: ledger verify: %v %+v", n.ID(), err, rep)
		}
	}
}

func validators(t *testing.T, n *qnettest.Node) []string {
	return status(t, n).Validators
}

// TestNetworkOfFive joins four nodes to a first one with join tokens, and checks that
// the network picks five validators, that a write sent to any node is committed, and
// that every node holds the same verified chain.
func TestNetworkOfFive(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 5, qnettest.Options{})
	qnettest.WaitFor(t, 60*time.Second, "five validators", func() bool { return len(validators(t, nodes[0])) == 5 })
	qnettest.WaitFor(t, 30*time.Second, "every node alive in gossip", func() bool {
		ns, err := nodes[4].Client.Nodes(context.Background())
		if err != nil {
			return false
		}
		alive := 0
		for _, n := range ns {
			if n.Alive {
				alive++
			}
		}
		return alive == 5
	})
	// Writes through a node that does not lead reach the leader.
	leader := status(t, nodes[0]).Leader
	for _, n := range nodes {
		if n.ID() == leader {
			continue
		}
		res, err := n.Client.Apply(context.Background(), helloService(t, 0, ""))
		if err != nil {
			t.Fatalf("apply through follower %s: %v", n.ID(), err)
		}
		if res[0].Height == 0 {
			t.Fatalf("apply through follower: %+v", res)
		}
		break
	}
	sameChain(t, nodes)
}

// TestValidatorReplaced kills a validator of a four-node network (three validators) and
// checks that after the stabilisation time the remaining follower takes its place and
// the chain stays one.
func TestValidatorReplaced(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 4, qnettest.Options{})
	qnettest.WaitFor(t, 60*time.Second, "three validators", func() bool { return len(validators(t, nodes[0])) == 3 })
	vs := validators(t, nodes[0])
	leader := status(t, nodes[0]).Leader
	var victim *qnettest.Node
	var rest []*qnettest.Node
	for _, n := range nodes {
		if victim == nil && n.ID() != leader && slices.Contains(vs, n.ID()) {
			victim = n
			continue
		}
		rest = append(rest, n)
	}
	victimID := victim.ID()
	victim.Stop(t, true)
	qnettest.WaitFor(t, 60*time.Second, "the dead validator replaced", func() bool {
		now := validators(t, rest[0])
		return len(now) == 3 && !slices.Contains(now, victimID)
	})
	if _, err := rest[1].Client.Apply(context.Background(), helloService(t, 0, "")); err != nil {
		t.Fatal(err)
	}
	sameChain(t, rest)
}

// TestAdmissionRefusals: reused, expired, forged tokens and a token of another network
// are refused with clear errors, and nothing is left in the data dir.
func TestAdmissionRefusals(t *testing.T) {
	first := qnettest.StartNode(t, qnettest.Options{})
	other := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	used, _, err := first.Client.CreateToken(ctx, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	joinWith := func(token string) error {
		cfg := node.DefaultConfig(t.TempDir())
		cfg.APIAddr, cfg.MeshAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Join, cfg.Token = first.Mesh().Addr(), token
		cfg.Logger = qnettest.Logger(t)
		cfg.PathDirs = []string{qnettest.BinDir(t)}
		n, err := node.Start(ctx, cfg)
		if err == nil {
			n.StopDepots(ctx)
			n.Close(ctx)
		}
		return err
	}
	if err := joinWith(used); err != nil {
		t.Fatalf("first use of the token: %v", err)
	}
	expiredTok, _, err := first.Client.CreateToken(ctx, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 10*time.Second, "the token to expire", func() bool {
		toks, _ := first.Client.Tokens(ctx)
		for _, tk := range toks {
			if p, _ := jointoken.Parse(expiredTok); tk.ID == p.ID() {
				return time.Now().After(tk.Expires)
			}
		}
		return false
	})
	forged, _ := jointoken.Parse(used)
	forged.Secret[0] ^= 1
	otherTok, _, err := other.Client.CreateToken(ctx, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	otherParsed, _ := jointoken.Parse(otherTok)
	// A token of another network, pointed at this network's node: the node it names is
	// not the one answering.
	cases := []struct {
		name, token, want string
	}{
		{"reused", used, "used up"},
		{"expired", expiredTok, "expired"},
		{"forged secret", forged.String(), "(forged, or never created)"},
		{"another network", otherParsed.String(), "fingerprint is " + first.ID()},
		{"garbage", "qnetjoin1_garbage", "damaged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := joinWith(c.token)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("join with a %s token: %v, want %q", c.name, err, c.want)
			}
		})
	}
}

// TestRemoveNode revokes a node: its tunnels close at once and it cannot come back.
func TestRemoveNode(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	victim := nodes[2]
	qnettest.WaitFor(t, 30*time.Second, "a tunnel to the node", func() bool {
		return slices.Contains(nodes[0].Mesh().Connected(), victim.ID())
	})
	if _, err := nodes[0].Client.RemoveNode(context.Background(), victim.ID()); err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 10*time.Second, "the removed node's tunnels closed", func() bool {
		return !slices.Contains(nodes[0].Mesh().Connected(), victim.ID()) && !slices.Contains(nodes[1].Mesh().Connected(), victim.ID())
	})
	// The victim learns it from its end of the connection closing (a stream opened
	// before then would go out on the dead tunnel, optimistically, and fail later).
	qnettest.WaitFor(t, 10*time.Second, "the removed node to see its tunnel closed", func() bool {
		return !slices.Contains(victim.Mesh().Connected(), nodes[0].ID())
	})
	// It cannot open a new one: its keys are refused.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := victim.Mesh().Open(ctx, nodes[0].ID(), "rpc.submit"); err == nil {
		t.Fatal("a removed node opened a tunnel")
	}
}

// TestRotateKeys rotates a node's keys: the network knows the new ones, the node keeps
// working with them, and a tunnel with the old keys is refused.
func TestRotateKeys(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	target := nodes[1]
	oldKey := target.Key()
	res, err := target.Client.RotateKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.OldKey != oldKey.ID() || res.NewKey == oldKey.ID() || target.Key().ID() != res.NewKey {
		t.Fatalf("rotation: %+v", res)
	}
	// The old key is gone from the ledger on every node.
	for _, n := range nodes {
		qnettest.WaitFor(t, 10*time.Second, "the rotation on every node", func() bool {
			_, ok, _ := n.Store().Key(oldKey.ID())
			_, okNew, _ := n.Store().Key(res.NewKey)
			return !ok && okNew
		})
	}
	// The node still takes part: a write through it commits (it is forwarded over a
	// tunnel made with its new key, unless it leads).
	ctx := context.Background()
	target.Context.ServerKey = res.APIPin
	cl, err := client.New(target.Context)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Apply(ctx, helloService(t, 0, "")); err != nil {
		t.Fatalf("apply through the rotated node: %v", err)
	}
	// The old key no longer passes a handshake.
	if err := qnettest.DialWithKey(t, oldKey, nodes[0].Mesh().Addr(), nodes[0].Key().Public().Fingerprint()); err == nil {
		t.Fatal("a tunnel with the rotated-out key was accepted")
	}
	sameChain(t, nodes)
}

var _ = errors.Is
var _ = ledger.ErrReplay

// TestFailoverAndReturn: a node whose agent dies has its depots placed on the other
// nodes; when it comes back it stops what was moved away, so no more replicas run than
// the service asks for.
func TestFailoverAndReturn(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	ctx := context.Background()
	if _, err := nodes[0].Client.Apply(ctx, helloService(t, 6, "")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, nodes[0], "hello")
	ids := []string{nodes[0].ID(), nodes[1].ID(), nodes[2].ID()}
	leader := status(t, nodes[0]).Leader
	var victim *qnettest.Node
	var rest []*qnettest.Node
	for _, n := range nodes {
		if victim == nil && n.ID() != leader {
			victim = n
		} else {
			rest = append(rest, n)
		}
	}
	victimID := victim.ID()
	onVictim := len(victim.Agent().Depots())
	if onVictim == 0 {
		t.Fatalf("spread put nothing on node %s", victimID)
	}
	// The agent dies; its depots go on running, as after a crash of the agent alone.
	victim.Stop(t, false)
	qnettest.WaitFor(t, 30*time.Second, "all six replicas ready on the live nodes", func() bool {
		ds, err := rest[0].Client.Depots(ctx, "hello")
		if err != nil {
			return false
		}
		ready := 0
		for _, d := range ds {
			if d.Node == victimID {
				return false
			}
			if d.Status.Ready {
				ready++
			}
		}
		return ready == 6 && len(ds) == 6
	})
	// It comes back: its old depots have no placement any more and are stopped.
	back := victim.Restart(t)
	qnettest.WaitFor(t, 30*time.Second, "the returning node to stop what moved away", func() bool {
		return len(back.Agent().Depots()) == 0 && countProcs(t, "example-hello", ids...) == 6
	})
	sameChain(t, append(rest, back))
}
