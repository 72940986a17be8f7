package controller

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

const mi = 1 << 20

// service builds a service at revision rev asking for replicas of cpu millicores and
// mem bytes each.
func service(name string, rev uint64, replicas int, cpu, mem int64) state.Service {
	return state.Service{
		Name: name, Revision: rev,
		Spec: &manifest.Service{
			Metadata: manifest.Metadata{Name: name},
			Spec: manifest.Spec{
				Replicas:  replicas,
				Resources: manifest.Resources{CPU: manifest.MilliCPU(cpu), Memory: manifest.Bytes(mem)},
			},
		},
	}
}

func unschedulable(s state.Service, reason string) state.Service {
	s.Unschedulable = reason
	return s
}

func placed(id, svc string, rev uint64, node string, slot int) state.Placement {
	return state.Placement{Placement: ledger.Placement{ID: id, Service: svc, Revision: rev, Node: node, Slot: slot}}
}

func node(id string, cpu, mem int64) scheduler.Node {
	return scheduler.Node{ID: id, CPU: cpu, Memory: mem, Alive: true}
}

// counter names new depots web-new1, web-new2, ... in the order they are asked for.
func counter() func(string) string {
	n := 0
	return func(svc string) string {
		n++
		return fmt.Sprintf("%s-new%d", svc, n)
	}
}

// applySet does to the input what committing the set does to the state, so the
// reconciler can be fed its own result.
func applySet(in ReplicaInput, set ledger.PlacementSet) ReplicaInput {
	out := in
	out.Services = slices.Clone(in.Services)
	for i := range out.Services {
		if r, ok := set.Unschedulable[out.Services[i].Name]; ok {
			out.Services[i].Unschedulable = r
		}
	}
	out.Placements = nil
	for _, p := range in.Placements {
		if !slices.Contains(set.Remove, p.ID) {
			out.Placements = append(out.Placements, p)
		}
	}
	for _, p := range set.Add {
		out.Placements = append(out.Placements, state.Placement{Placement: p})
	}
	return out
}

func dead(n scheduler.Node) scheduler.Node {
	n.Alive = false
	return n
}

func labelled(n scheduler.Node, arch string, kv ...string) scheduler.Node {
	n.OS, n.Arch, n.Labels = "linux", arch, map[string]string{}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		n.Labels[k] = v
	}
	return n
}

func withPlacement(t *testing.T, s state.Service, strategy manifest.Strategy, spreadBy string, constraints ...string) state.Service {
	t.Helper()
	s.Spec.Spec.Placement = manifest.Placement{Strategy: strategy, SpreadBy: spreadBy}
	for _, text := range constraints {
		c, err := manifest.ParseConstraint(text)
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Spec.Placement.Constraints = append(s.Spec.Spec.Placement.Constraints, c)
	}
	return s
}

func TestReplicas(t *testing.T) {
	two := []scheduler.Node{node("n1", 1000, 1024*mi), node("n2", 1000, 1024*mi)}
	firstDead := []scheduler.Node{dead(node("n1", 1000, 1024*mi)), node("n2", 1000, 1024*mi), node("n3", 1000, 1024*mi)}
	// Two arm64 boards in zone a, one in zone b; one amd64 server in zone b.
	fleet := []scheduler.Node{
		labelled(node("b1", 1000, 512*mi), "arm64", "zone=a"),
		labelled(node("b2", 1000, 512*mi), "arm64", "zone=a"),
		labelled(node("b3", 1000, 512*mi), "arm64", "zone=b"),
		labelled(node("s1", 8000, 8192*mi), "amd64", "zone=b"),
	}
	cases := []struct {
		name       string
		services   []state.Service
		placements []state.Placement
		nodes      []scheduler.Node
		want       ledger.PlacementSet
	}{
		{
			name:     "scale up from zero spreads over the nodes",
			services: []state.Service{service("web", 1, 3, 100, 64*mi)},
			nodes:    two,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "web-new1", Service: "web", Revision: 1, Node: "n1", Slot: 0},
					{ID: "web-new2", Service: "web", Revision: 1, Node: "n2", Slot: 1},
					{ID: "web-new3", Service: "web", Revision: 1, Node: "n1", Slot: 2},
				},
				Reason: "new replicas of web: web-new1, web-new2, web-new3",
			},
		},
		{
			name:     "scale down removes the highest slots",
			services: []state.Service{service("web", 1, 1, 100, 64*mi)},
			placements: []state.Placement{
				placed("web-c", "web", 1, "n1", 2),
				placed("web-a", "web", 1, "n1", 0),
				placed("web-b", "web", 1, "n2", 1),
			},
			nodes: two,
			want:  ledger.PlacementSet{Remove: []string{"web-b", "web-c"}, Reason: "web scaled down to 1: web-b, web-c"},
		},
		{
			name:     "a new revision replaces every placement of the old one",
			services: []state.Service{service("web", 2, 2, 100, 64*mi)},
			placements: []state.Placement{
				placed("web-a", "web", 1, "n1", 0),
				placed("web-b", "web", 1, "n2", 1),
			},
			nodes: two,
			want: ledger.PlacementSet{
				Remove: []string{"web-a", "web-b"},
				Add: []ledger.Placement{
					{ID: "web-new1", Service: "web", Revision: 2, Node: "n1", Slot: 0},
					{ID: "web-new2", Service: "web", Revision: 2, Node: "n2", Slot: 1},
				},
				Reason: "web revision 2 replaces web-a, web-b; new replicas of web: web-new1, web-new2",
			},
		},
		{
			name:     "a deleted service's placements are removed",
			services: []state.Service{service("web", 1, 1, 100, 64*mi)},
			placements: []state.Placement{
				placed("db-a", "db", 3, "n1", 0),
				placed("web-a", "web", 1, "n1", 0),
				placed("db-b", "db", 3, "n2", 1),
			},
			nodes: two,
			want:  ledger.PlacementSet{Remove: []string{"db-a", "db-b"}, Reason: "service db was deleted: db-a, db-b"},
		},
		{
			name:     "a placement on an unknown node is removed and placed again in its slot",
			services: []state.Service{service("web", 1, 2, 100, 64*mi)},
			placements: []state.Placement{
				placed("web-a", "web", 1, "n9", 0),
				placed("web-b", "web", 1, "n1", 1),
			},
			nodes: two,
			want: ledger.PlacementSet{
				Remove: []string{"web-a"},
				Add:    []ledger.Placement{{ID: "web-new1", Service: "web", Revision: 1, Node: "n2", Slot: 0}},
				Reason: "node n9 is gone: web-a; new replicas of web: web-new1",
			},
		},
		{
			name:     "replicas that do not fit are unschedulable, with the scheduler's reason",
			services: []state.Service{service("big", 1, 3, 100, 600*mi)},
			nodes:    two,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "big-new1", Service: "big", Revision: 1, Node: "n1", Slot: 0},
					{ID: "big-new2", Service: "big", Revision: 1, Node: "n2", Slot: 1},
				},
				Unschedulable: map[string]string{"big": "1 of 3 replicas unplaced: 0/2 nodes fit: 2 insufficient memory"},
				Reason:        "new replicas of big: big-new1, big-new2",
			},
		},
		{
			name:     "nothing fits on a network without nodes",
			services: []state.Service{service("web", 1, 1, 100, 64*mi)},
			want: ledger.PlacementSet{
				Unschedulable: map[string]string{"web": "1 of 1 replicas unplaced: 0/0 nodes fit: the network has no nodes"},
			},
		},
		{
			name:     "the reason is cleared once the replicas fit",
			services: []state.Service{unschedulable(service("big", 1, 1, 100, 600*mi), "1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory")},
			nodes:    two,
			want: ledger.PlacementSet{
				Add:           []ledger.Placement{{ID: "big-new1", Service: "big", Revision: 1, Node: "n1", Slot: 0}},
				Unschedulable: map[string]string{"big": ""},
				Reason:        "new replicas of big: big-new1",
			},
		},
		{
			name:     "a stale reason of a service that is all placed is cleared",
			services: []state.Service{unschedulable(service("web", 1, 1, 100, 64*mi), "old")},
			placements: []state.Placement{
				placed("web-a", "web", 1, "n1", 0),
			},
			nodes: two,
			want:  ledger.PlacementSet{Unschedulable: map[string]string{"web": ""}},
		},
		{
			name:     "excess replicas free their resources before missing ones are placed",
			services: []state.Service{service("a", 1, 0, 100, 800*mi), service("b", 1, 1, 100, 800*mi)},
			placements: []state.Placement{
				placed("a-1", "a", 1, "n1", 0),
			},
			nodes: []scheduler.Node{node("n1", 1000, 1024*mi)},
			want: ledger.PlacementSet{
				Remove: []string{"a-1"},
				Add:    []ledger.Placement{{ID: "b-new1", Service: "b", Revision: 1, Node: "n1", Slot: 0}},
				Reason: "a scaled down to 0: a-1; new replicas of b: b-new1",
			},
		},
		{
			name:     "host ports are never bound twice on a node",
			services: []state.Service{withHostPort(service("web", 1, 3, 100, 64*mi), 8080)},
			nodes:    two,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "web-new1", Service: "web", Revision: 1, Node: "n1", Slot: 0},
					{ID: "web-new2", Service: "web", Revision: 1, Node: "n2", Slot: 1},
				},
				Unschedulable: map[string]string{"web": "1 of 3 replicas unplaced: 0/2 nodes fit: 2 host port 8080 taken"},
				Reason:        "new replicas of web: web-new1, web-new2",
			},
		},
		{
			name:     "failover: a dead node's replicas are removed and placed on live nodes, in their slots, in one set",
			services: []state.Service{service("web", 1, 3, 100, 64*mi)},
			placements: []state.Placement{
				placed("web-a", "web", 1, "n1", 0),
				placed("web-b", "web", 1, "n2", 1),
				placed("web-c", "web", 1, "n1", 2),
			},
			nodes: firstDead,
			want: ledger.PlacementSet{
				Remove: []string{"web-a", "web-c"},
				Add: []ledger.Placement{
					{ID: "web-new1", Service: "web", Revision: 1, Node: "n3", Slot: 0},
					{ID: "web-new2", Service: "web", Revision: 1, Node: "n2", Slot: 2},
				},
				Reason: "node n1 is not alive: web-a, web-c; new replicas of web: web-new1, web-new2",
			},
		},
		{
			name:     "failover puts a replaced replica only where it fits",
			services: []state.Service{service("db", 1, 2, 100, 800*mi)},
			placements: []state.Placement{
				placed("db-a", "db", 1, "n1", 0),
				placed("db-b", "db", 1, "n2", 1),
			},
			nodes: firstDead,
			want: ledger.PlacementSet{
				Remove: []string{"db-a"},
				Add:    []ledger.Placement{{ID: "db-new1", Service: "db", Revision: 1, Node: "n3", Slot: 0}},
				Reason: "node n1 is not alive: db-a; new replicas of db: db-new1",
			},
		},
		{
			name:       "when every node is dead the replicas are removed and unschedulable",
			services:   []state.Service{service("web", 1, 1, 100, 64*mi)},
			placements: []state.Placement{placed("web-a", "web", 1, "n1", 0)},
			nodes:      []scheduler.Node{dead(node("n1", 1000, 1024*mi)), dead(node("n2", 1000, 1024*mi))},
			want: ledger.PlacementSet{
				Remove:        []string{"web-a"},
				Unschedulable: map[string]string{"web": "1 of 1 replicas unplaced: 0/2 nodes fit: 2 node not alive"},
				Reason:        "node n1 is not alive: web-a",
			},
		},
		{
			name:     "constraints: replicas go only where they hold",
			services: []state.Service{withPlacement(t, service("iot", 1, 3, 100, 64*mi), "", "", "arch == arm64", "label.zone != b")},
			nodes:    fleet,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "iot-new1", Service: "iot", Revision: 1, Node: "b1", Slot: 0},
					{ID: "iot-new2", Service: "iot", Revision: 1, Node: "b2", Slot: 1},
					{ID: "iot-new3", Service: "iot", Revision: 1, Node: "b1", Slot: 2},
				},
				Reason: "new replicas of iot: iot-new1, iot-new2, iot-new3",
			},
		},
		{
			name:     "constraints no node meets make the service unschedulable, naming them",
			services: []state.Service{withPlacement(t, service("gpu", 1, 1, 100, 64*mi), "", "", "label.gpu exists")},
			nodes:    fleet,
			want: ledger.PlacementSet{
				Unschedulable: map[string]string{"gpu": "1 of 1 replicas unplaced: 0/4 nodes fit: 4 label.gpu exists not met"},
			},
		},
		{
			name:     "spread by a label evens the replicas over its values",
			services: []state.Service{withPlacement(t, service("web", 1, 4, 100, 64*mi), manifest.StrategySpread, "zone")},
			nodes:    fleet,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "web-new1", Service: "web", Revision: 1, Node: "s1", Slot: 0},
					{ID: "web-new2", Service: "web", Revision: 1, Node: "b1", Slot: 1},
					{ID: "web-new3", Service: "web", Revision: 1, Node: "b2", Slot: 2},
					{ID: "web-new4", Service: "web", Revision: 1, Node: "b3", Slot: 3},
				},
				Reason: "new replicas of web: web-new1, web-new2, web-new3 and 1 more",
			},
		},
		{
			name:     "binpack fills the fullest node that fits first",
			services: []state.Service{withPlacement(t, service("batch", 1, 5, 100, 200*mi), manifest.StrategyBinpack, "")},
			nodes:    fleet,
			want: ledger.PlacementSet{
				Add: []ledger.Placement{
					{ID: "batch-new1", Service: "batch", Revision: 1, Node: "b1", Slot: 0},
					{ID: "batch-new2", Service: "batch", Revision: 1, Node: "b1", Slot: 1},
					{ID: "batch-new3", Service: "batch", Revision: 1, Node: "b2", Slot: 2},
					{ID: "batch-new4", Service: "batch", Revision: 1, Node: "b2", Slot: 3},
					{ID: "batch-new5", Service: "batch", Revision: 1, Node: "b3", Slot: 4},
				},
				Reason: "new replicas of batch: batch-new1, batch-new2, batch-new3 and 2 more",
			},
		},
		{
			name:     "a service with all its replicas changes nothing",
			services: []state.Service{service("web", 4, 2, 100, 64*mi)},
			placements: []state.Placement{
				placed("web-a", "web", 4, "n1", 0),
				placed("web-b", "web", 4, "n2", 1),
			},
			nodes: two,
			want:  ledger.PlacementSet{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := ReplicaInput{Services: c.services, Placements: c.placements, Nodes: c.nodes, NewID: counter()}
			got := Replicas(in)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Replicas:\n got %+v\nwant %+v", got, c.want)
			}
			if Empty(got) != (len(c.want.Add) == 0 && len(c.want.Remove) == 0 && c.want.Unschedulable == nil) {
				t.Fatalf("Empty(%+v) = %v", got, Empty(got))
			}
			// Level-triggered and idempotent: once the set is committed there is nothing
			// more to do.
			again := Replicas(applySet(in, got))
			if !Empty(again) {
				t.Fatalf("feeding the result back gives more changes: %+v", again)
			}
		})
	}
}

func withHostPort(s state.Service, port int) state.Service {
	s.Spec.Spec.Ports = []manifest.Port{{Name: "http", Port: port, HostPort: port}}
	return s
}

// TestReplicasConverges runs the reconciler until it has nothing more to do over a mix
// of every kind of change, and checks the result: each service has its replicas at its
// revision, in distinct slots, on nodes that exist, and no node is over-committed.
func TestReplicasConverges(t *testing.T) {
	nodes := []scheduler.Node{node("n1", 1000, 512*mi), node("n2", 500, 512*mi), node("n3", 2000, 256*mi), dead(node("n5", 9000, 9000*mi))}
	in := ReplicaInput{
		Services: []state.Service{
			service("web", 3, 4, 100, 64*mi),
			service("db", 1, 1, 400, 300*mi),
			service("batch", 2, 2, 250, 32*mi),
		},
		Placements: []state.Placement{
			placed("web-old", "web", 2, "n1", 0),
			placed("web-x", "web", 3, "n1", 5),
			placed("gone-1", "gone", 1, "n2", 0),
			placed("batch-1", "batch", 2, "n4", 0),
			placed("batch-2", "batch", 2, "n2", 1),
			placed("batch-3", "batch", 2, "n3", 2),
			placed("web-y", "web", 3, "n5", 1),
		},
		Nodes: nodes,
		NewID: counter(),
	}
	for round := 0; ; round++ {
		set := Replicas(in)
		if Empty(set) {
			break
		}
		if round == 3 {
			t.Fatalf("still changing after %d rounds: %+v", round, set)
		}
		in = applySet(in, set)
	}
	caps := map[string]scheduler.Node{}
	for _, n := range nodes {
		caps[n.ID] = n
	}
	used := map[string][2]int64{}
	slots := map[string]map[int]bool{}
	count := map[string]int{}
	svcs := map[string]state.Service{}
	for _, s := range in.Services {
		svcs[s.Name] = s
		slots[s.Name] = map[int]bool{}
		if s.Unschedulable != "" {
			t.Errorf("service %s unschedulable: %s", s.Name, s.Unschedulable)
		}
	}
	for _, p := range in.Placements {
		s, ok := svcs[p.Service]
		if !ok || p.Revision != s.Revision {
			t.Fatalf("placement %+v is of no current revision", p)
		}
		if n, ok := caps[p.Node]; !ok || !n.Alive {
			t.Fatalf("placement %+v is on an unknown or dead node", p)
		}
		if slots[p.Service][p.Slot] {
			t.Fatalf("slot %d of %s placed twice", p.Slot, p.Service)
		}
		slots[p.Service][p.Slot] = true
		count[p.Service]++
		u := used[p.Node]
		u[0] += int64(s.Spec.Spec.Resources.CPU)
		u[1] += int64(s.Spec.Spec.Resources.Memory)
		used[p.Node] = u
	}
	for name, s := range svcs {
		if count[name] != s.Spec.Spec.Replicas {
			t.Errorf("service %s has %d replicas, want %d", name, count[name], s.Spec.Spec.Replicas)
		}
	}
	for id, u := range used {
		if u[0] > caps[id].CPU || u[1] > caps[id].Memory {
			t.Errorf("node %s over-committed: %d mCPU, %d bytes of %+v", id, u[0], u[1], caps[id])
		}
	}
}

// TestReplicasReasonStaysShort checks that the reason of a large set names a few depots
// per cause and a few causes, not every depot.
func TestReplicasReasonStaysShort(t *testing.T) {
	var services []state.Service
	var placements []state.Placement
	for i := range 10 {
		name := fmt.Sprintf("svc%d", i)
		services = append(services, service(name, 2, 0, 1, 1))
		for j := range 20 {
			placements = append(placements, placed(fmt.Sprintf("%s-%02d", name, j), name, 1, "n1", j))
		}
	}
	set := Replicas(ReplicaInput{Services: services, Placements: placements, Nodes: []scheduler.Node{node("n1", 1, 1)}, NewID: counter()})
	if len(set.Remove) != 200 {
		t.Fatalf("removed %d, want 200", len(set.Remove))
	}
	want := "svc0 revision 2 replaces svc0-00, svc0-01, svc0-02 and 17 more; "
	if !strings.HasPrefix(set.Reason, want) || !strings.HasSuffix(set.Reason, "; and 4 more causes") || len(set.Reason) > 500 {
		t.Fatalf("reason of a large set: %q", set.Reason)
	}
}

func TestSplitSet(t *testing.T) {
	small := ledger.PlacementSet{Remove: []string{"a"}, Add: []ledger.Placement{{ID: "b", Service: "s", Revision: 1, Node: "n", Slot: 0}}, Reason: "why"}
	if parts := SplitSet(small, 1<<20); len(parts) != 1 || !reflect.DeepEqual(parts[0], small) {
		t.Fatalf("a set that fits was split: %+v", parts)
	}
	if parts := SplitSet(ledger.PlacementSet{Unschedulable: map[string]string{"web": "x"}}, 10); len(parts) != 1 {
		t.Fatalf("a set of reasons only gives %d parts", len(parts))
	}

	big := ledger.PlacementSet{Reason: "node n1 is not alive: web-1 and 4999 more", Unschedulable: map[string]string{"db": "1 of 3 replicas unplaced: ..."}}
	for i := range 5000 {
		big.Remove = append(big.Remove, fmt.Sprintf("old-%08x", i))
	}
	for i := range 20000 {
		big.Add = append(big.Add, ledger.Placement{ID: fmt.Sprintf("web-%08x", i), Service: "web", Revision: 7, Node: fmt.Sprintf("%016x", i), Slot: i})
	}
	const limit = 100 << 10
	parts := SplitSet(big, limit)
	whole, _ := json.Marshal(big)
	if len(parts) < len(whole)/limit || len(parts) > len(whole)/limit+2 {
		t.Fatalf("%d parts for a set of %d bytes at %d bytes each", len(parts), len(whole), limit)
	}
	var again ledger.PlacementSet
	sawAdd := false
	for i, p := range parts {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > limit {
			t.Errorf("part %d is %d bytes, over %d", i, len(data), limit)
		}
		if len(data) < limit/3 && i < len(parts)-1 && !(len(p.Remove) > 0 && len(parts[i+1].Remove) == 0) {
			t.Errorf("part %d is only %d bytes: the split wastes transactions", i, len(data))
		}
		if p.Reason != big.Reason {
			t.Errorf("part %d has reason %q", i, p.Reason)
		}
		if (i == 0) != (p.Unschedulable != nil) {
			t.Errorf("part %d unschedulable = %v; only the first part carries it", i, p.Unschedulable)
		}
		if len(p.Remove) > 0 && sawAdd {
			t.Errorf("part %d removes depots after an earlier part added some", i)
		}
		sawAdd = sawAdd || len(p.Add) > 0
		again.Remove = append(again.Remove, p.Remove...)
		again.Add = append(again.Add, p.Add...)
	}
	if !reflect.DeepEqual(again.Remove, big.Remove) || !reflect.DeepEqual(again.Add, big.Add) {
		t.Fatalf("the parts do not add up to the set")
	}
}

// BenchmarkReplicas is one reconcile pass over 1,000 services of 1,000 replicas on
// 10,000 nodes: steady (nothing to do), and after 1% of the nodes died.
func BenchmarkReplicas(b *testing.B) {
	const nNodes, nServices, perService = 10000, 1000, 1000
	var nodes []scheduler.Node
	for i := range nNodes {
		nodes = append(nodes, node(fmt.Sprintf("%016x", i), 64000, 256<<30))
	}
	var services []state.Service
	for i := range nServices {
		services = append(services, service(fmt.Sprintf("svc%04d", i), 1, perService, 10, 4*mi))
	}
	ids := counter()
	first := Replicas(ReplicaInput{Services: services, Nodes: nodes, NewID: ids})
	if len(first.Add) != nServices*perService {
		b.Fatalf("placed %d", len(first.Add))
	}
	placements := make([]state.Placement, len(first.Add))
	for i, p := range first.Add {
		placements[i] = state.Placement{Placement: p}
	}
	for _, tc := range []struct {
		name string
		dead int
	}{{"steady", 0}, {"1pct-nodes-dead", nNodes / 100}} {
		b.Run(tc.name, func(b *testing.B) {
			ns := slices.Clone(nodes)
			for i := range tc.dead {
				ns[i*100].Alive = false
			}
			for b.Loop() {
				set := Replicas(ReplicaInput{Services: services, Placements: placements, Nodes: ns, NewID: ids})
				if (tc.dead == 0) != Empty(set) || len(set.Add) != len(set.Remove) {
					b.Fatalf("set of %d adds and %d removes", len(set.Add), len(set.Remove))
				}
			}
			b.ReportMetric(float64(len(placements)*b.N)/b.Elapsed().Seconds(), "placements/s")
		})
	}
}
