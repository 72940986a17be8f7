package controller

import (
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

func TestReplicas(t *testing.T) {
	two := []scheduler.Node{node("n1", 1000, 1024*mi), node("n2", 1000, 1024*mi)}
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
	nodes := []scheduler.Node{node("n1", 1000, 512*mi), node("n2", 500, 512*mi), node("n3", 2000, 256*mi)}
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
		if _, ok := caps[p.Node]; !ok {
			t.Fatalf("placement %+v is on an unknown node", p)
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
