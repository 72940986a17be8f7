package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"qnet.dev/qnet/manifest"
)

const mi = 1 << 20

// labels builds a label map from "k=v" pairs.
func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return m
}

func cons(t testing.TB, texts ...string) []manifest.Constraint {
	t.Helper()
	var out []manifest.Constraint
	for _, s := range texts {
		c, err := manifest.ParseConstraint(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestPlace(t *testing.T) {
	three := []Node{
		{ID: "a", CPU: 2000, Memory: 1024 * mi, Alive: true},
		{ID: "b", CPU: 2000, Memory: 512 * mi, Alive: true},
		{ID: "c", CPU: 2000, Memory: 4096 * mi, Alive: false},
	}
	// Five nodes: three small arm64 boards and two amd64 servers.
	mixed := []Node{
		{ID: "n1", Name: "board-1", OS: "linux", Arch: "arm64", CPU: 1000, Memory: 256 * mi, Alive: true, Labels: labels("zone=eu-west-1", "tier=edge")},
		{ID: "n2", Name: "board-2", OS: "linux", Arch: "arm64", CPU: 1000, Memory: 256 * mi, Alive: true, Labels: labels("zone=eu-west-2", "tier=edge", "gpu=")},
		{ID: "n3", Name: "board-3", OS: "linux", Arch: "arm64", CPU: 1000, Memory: 256 * mi, Alive: true, Labels: labels("zone=eu-west-2")},
		{ID: "n4", Name: "server-1", OS: "linux", Arch: "amd64", CPU: 8000, Memory: 8192 * mi, Alive: true, Labels: labels("zone=eu-west-1", "tier=core", "gpu=a100")},
		{ID: "n5", Name: "server-2", OS: "darwin", Arch: "amd64", CPU: 8000, Memory: 8192 * mi, Alive: true, Labels: labels("tier=core")},
	}
	// Zones: z1 holds a and b, z2 holds c, d has no zone label. All nodes are alike.
	zoned := []Node{
		{ID: "a", CPU: 4000, Memory: 4096 * mi, Alive: true, Labels: labels("zone=z1")},
		{ID: "b", CPU: 4000, Memory: 4096 * mi, Alive: true, Labels: labels("zone=z1")},
		{ID: "c", CPU: 4000, Memory: 4096 * mi, Alive: true, Labels: labels("zone=z2")},
		{ID: "d", CPU: 4000, Memory: 4096 * mi, Alive: true},
	}
	// Bin-packing: c is the fullest that fits, then a, then b.
	packable := []Node{
		{ID: "a", CPU: 4000, Memory: 1024 * mi, Alive: true},
		{ID: "b", CPU: 4000, Memory: 2048 * mi, Alive: true},
		{ID: "c", CPU: 4000, Memory: 512 * mi, Alive: true},
	}
	binpack := manifest.Placement{Strategy: manifest.StrategyBinpack}
	byZone := manifest.Placement{Strategy: manifest.StrategySpread, SpreadBy: "zone"}
	cases := []struct {
		name   string
		nodes  []Node
		placed []Placement
		req    Request
		want   Plan
	}{
		{
			name:  "spread over alive nodes, most free memory first",
			nodes: three,
			req:   Request{Service: "web", Count: 3, CPU: 100, Memory: 64 * mi},
			want:  Plan{Nodes: []string{"a", "b", "a"}},
		},
		{
			name:   "spread counts existing replicas",
			nodes:  three,
			placed: []Placement{{ID: "x", Service: "web", Node: "a", CPU: 100, Memory: 64 * mi}},
			req:    Request{Service: "web", Count: 1, CPU: 100, Memory: 64 * mi},
			want:   Plan{Nodes: []string{"b"}},
		},
		{
			name:  "never over-commits",
			nodes: three,
			req:   Request{Service: "big", Count: 3, CPU: 100, Memory: 600 * mi},
			want:  Plan{Nodes: []string{"a"}, Unplaced: 2, Reason: "0/3 nodes fit: 2 insufficient memory, 1 node not alive"},
		},
		{
			name:  "cpu",
			nodes: three,
			req:   Request{Service: "hot", Count: 1, CPU: 3000, Memory: mi},
			want:  Plan{Unplaced: 1, Reason: "0/3 nodes fit: 2 insufficient cpu, 1 node not alive"},
		},
		{
			name:   "host ports",
			nodes:  three,
			placed: []Placement{{ID: "x", Service: "other", Node: "a", HostPorts: []int{8080}}},
			req:    Request{Service: "web", Count: 2, CPU: 1, Memory: 1, HostPorts: []int{8080}},
			want:   Plan{Nodes: []string{"b"}, Unplaced: 1, Reason: "0/3 nodes fit: 2 host port 8080 taken, 1 node not alive"},
		},
		{
			name: "no nodes",
			req:  Request{Service: "web", Count: 1},
			want: Plan{Unplaced: 1, Reason: "0/0 nodes fit: the network has no nodes"},
		},
		{
			name:  "nothing asked, nothing planned",
			nodes: three,
			req:   Request{Service: "web", Count: 0, CPU: 1, Memory: 1},
			want:  Plan{},
		},
		{
			name:  "each node counts under its first failed check",
			nodes: mixed,
			req:   Request{Service: "ml", Count: 1, CPU: 100, Memory: 512 * mi, Placement: manifest.Placement{Constraints: cons(t, "arch == arm64")}},
			want:  Plan{Unplaced: 1, Reason: "0/5 nodes fit: 3 insufficient memory, 2 arch == arm64 not met"},
		},
		{
			name: "a dead node is not alive whatever else it fails",
			nodes: append(slices.Clone(mixed[:4]),
				Node{ID: "n6", Arch: "amd64", CPU: 1, Memory: 1, Alive: false}),
			req:  Request{Service: "ml", Count: 1, CPU: 100, Memory: 512 * mi, Placement: manifest.Placement{Constraints: cons(t, "arch == arm64")}},
			want: Plan{Unplaced: 1, Reason: "0/5 nodes fit: 3 insufficient memory, 1 arch == arm64 not met, 1 node not alive"},
		},
		{
			name:  "the first constraint a node fails names it",
			nodes: mixed,
			req: Request{Service: "x", Count: 1, CPU: 1, Memory: 1,
				Placement: manifest.Placement{Constraints: cons(t, "os == linux", "label.tier == core", "label.gpu exists")}},
			want: Plan{Nodes: []string{"n4"}},
		},
		{
			name:  "the first constraint a node fails names it, when none fits",
			nodes: mixed,
			req: Request{Service: "x", Count: 1, CPU: 1, Memory: 1,
				Placement: manifest.Placement{Constraints: cons(t, "os == linux", "label.tier == edge", "label.gpu == a100")}},
			want: Plan{Unplaced: 1, Reason: "0/5 nodes fit: 2 label.gpu == a100 not met, 2 label.tier == edge not met, 1 os == linux not met"},
		},
		{
			name:  "in and not in",
			nodes: mixed,
			req: Request{Service: "x", Count: 3, CPU: 1, Memory: 1,
				Placement: manifest.Placement{Constraints: cons(t, "label.tier in (edge, core)", "name not in (board-1, server-2)")}},
			want: Plan{Nodes: []string{"n4", "n2", "n4"}},
		},
		{
			name:  "!= and not in pass nodes without the label; exists needs it, even empty",
			nodes: mixed,
			req: Request{Service: "x", Count: 2, CPU: 600, Memory: 1,
				Placement: manifest.Placement{Constraints: cons(t, "label.zone != eu-west-1", "label.gpu exists")}},
			want: Plan{Nodes: []string{"n2"}, Unplaced: 1, Reason: "0/5 nodes fit: 2 label.gpu exists not met, 2 label.zone != eu-west-1 not met, 1 insufficient cpu"},
		},
		{
			name:  "not exists, id",
			nodes: mixed,
			req: Request{Service: "x", Count: 2, CPU: 1, Memory: 1,
				Placement: manifest.Placement{Constraints: cons(t, "label.gpu not exists", "id != n1")}},
			want: Plan{Nodes: []string{"n5", "n3"}},
		},
		{
			name:  "binpack fills the fullest node that fits, then the next",
			nodes: packable,
			req:   Request{Service: "x", Count: 5, CPU: 100, Memory: 256 * mi, Placement: binpack},
			want:  Plan{Nodes: []string{"c", "c", "a", "a", "a"}},
		},
		{
			name:   "binpack counts what is reserved",
			nodes:  packable,
			placed: []Placement{{ID: "o", Service: "other", Node: "b", Memory: 1800 * mi}},
			req:    Request{Service: "x", Count: 2, CPU: 100, Memory: 200 * mi, Placement: binpack},
			want:   Plan{Nodes: []string{"b", "c"}},
		},
		{
			name: "binpack breaks ties on free memory by free cpu, then ID",
			nodes: []Node{
				{ID: "a", CPU: 2000, Memory: 1024 * mi, Alive: true},
				{ID: "b", CPU: 1000, Memory: 1024 * mi, Alive: true},
				{ID: "c", CPU: 1000, Memory: 1024 * mi, Alive: true},
			},
			req:  Request{Service: "x", Count: 3, CPU: 1000, Memory: mi, Placement: binpack},
			want: Plan{Nodes: []string{"b", "c", "a"}},
		},
		{
			name:  "binpack with a host port spreads, one per node",
			nodes: packable,
			req:   Request{Service: "x", Count: 4, CPU: 1, Memory: mi, HostPorts: []int{80}, Placement: binpack},
			want:  Plan{Nodes: []string{"c", "a", "b"}, Unplaced: 1, Reason: "0/3 nodes fit: 3 host port 80 taken"},
		},
		{
			name:  "spread by zone evens out the zones, not the nodes; unlabelled nodes are a zone",
			nodes: zoned,
			req:   Request{Service: "web", Count: 6, CPU: 100, Memory: 64 * mi, Placement: byZone},
			want:  Plan{Nodes: []string{"a", "c", "d", "b", "c", "d"}},
		},
		{
			name:   "spread by zone counts the replicas already in each zone",
			nodes:  zoned,
			placed: []Placement{{Service: "web", Node: "a"}, {Service: "web", Node: "c"}, {Service: "db", Node: "d"}},
			req:    Request{Service: "web", Count: 2, CPU: 100, Memory: 64 * mi, Placement: byZone},
			want:   Plan{Nodes: []string{"d", "b"}},
		},
		{
			name:  "spread by zone with a constraint leaves out the nodes it refuses",
			nodes: zoned,
			req: Request{Service: "web", Count: 4, CPU: 100, Memory: 64 * mi,
				Placement: manifest.Placement{SpreadBy: "zone", Constraints: cons(t, "label.zone exists")}},
			want: Plan{Nodes: []string{"a", "c", "b", "c"}},
		},
		{
			name:  "spread by zone moves on when a zone is full",
			nodes: zoned,
			placed: []Placement{
				{Service: "big", Node: "c", Memory: 4000 * mi},
			},
			req:  Request{Service: "web", Count: 3, CPU: 100, Memory: 512 * mi, Placement: byZone},
			want: Plan{Nodes: []string{"a", "d", "b"}},
		},
		{
			name: "a repeated node ID counts once, the first",
			nodes: []Node{
				{ID: "a", CPU: 1000, Memory: 64 * mi, Alive: true},
				{ID: "a", CPU: 9000, Memory: 9000 * mi, Alive: true},
			},
			req:  Request{Service: "x", Count: 2, CPU: 100, Memory: 64 * mi},
			want: Plan{Nodes: []string{"a"}, Unplaced: 1, Reason: "0/1 nodes fit: 1 insufficient memory"},
		},
		{
			name:   "placements on unknown nodes reserve nothing",
			nodes:  three[:1],
			placed: []Placement{{Service: "web", Node: "zz", CPU: 5000, Memory: 5000 * mi}},
			req:    Request{Service: "web", Count: 1, CPU: 2000, Memory: 1024 * mi},
			want:   Plan{Nodes: []string{"a"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Place(c.nodes, c.placed, c.req)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
			// The same input in any order gives the same plan.
			r := rand.New(rand.NewPCG(1, 2))
			nodes, placed := slices.Clone(c.nodes), slices.Clone(c.placed)
			r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
			r.Shuffle(len(placed), func(i, j int) { placed[i], placed[j] = placed[j], placed[i] })
			if c.name != "a repeated node ID counts once, the first" {
				if again := Place(nodes, placed, c.req); !reflect.DeepEqual(again, got) {
					t.Fatalf("shuffled input gives another plan:\n%+v\n%+v", again, got)
				}
			}
		})
	}
}

// A Scheduler keeps what each Place reserved: later requests see it.
func TestSchedulerKeepsReservations(t *testing.T) {
	s := New([]Node{
		{ID: "a", CPU: 1000, Memory: 1024 * mi, Alive: true},
		{ID: "b", CPU: 1000, Memory: 1024 * mi, Alive: true},
	})
	if !s.Reserve(Placement{Service: "db", Node: "a", CPU: 500, Memory: 512 * mi}) {
		t.Fatal("Reserve on a known node reported false")
	}
	if s.Reserve(Placement{Service: "db", Node: "zz", CPU: 500}) {
		t.Fatal("Reserve on an unknown node reported true")
	}
	if p := s.Place(Request{Service: "web", Count: 2, CPU: 400, Memory: 400 * mi}); !reflect.DeepEqual(p.Nodes, []string{"b", "a"}) {
		t.Fatalf("first plan %+v", p)
	}
	// a has 100m and 112Mi left, b 600m and 624Mi: web's third replica fits on b only,
	// and the first two count for its spread.
	if p := s.Place(Request{Service: "web", Count: 2, CPU: 400, Memory: 400 * mi}); !reflect.DeepEqual(p, Plan{Nodes: []string{"b"}, Unplaced: 1, Reason: "0/2 nodes fit: 2 insufficient cpu"}) {
		t.Fatalf("second plan %+v", p)
	}
}

// naive is the scheduler's rules written as plainly as possible: for each replica, look
// at every node. The real scheduler must choose exactly the same nodes.
func naive(nodes []Node, placed []Placement, req Request) []string {
	type load struct {
		Node
		cpu, mem int64
		ports    []int
		mine     int
	}
	var ls []*load
	byID := map[string]*load{}
	for _, n := range nodes {
		if byID[n.ID] == nil {
			l := &load{Node: n, cpu: n.CPU, mem: n.Memory}
			ls = append(ls, l)
			byID[n.ID] = l
		}
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].ID < ls[j].ID })
	domainOf := func(l *load) string { return l.Labels[req.Placement.SpreadBy] }
	byLabel := req.Placement.Strategy != manifest.StrategyBinpack && req.Placement.SpreadBy != "" && req.Placement.SpreadBy != manifest.SpreadByNode
	inDomain := map[string]int{}
	take := func(l *load, svc string, cpu, mem int64, ports []int) {
		l.cpu -= cpu
		l.mem -= mem
		l.ports = append(l.ports, ports...)
		if svc == req.Service {
			l.mine++
			inDomain[domainOf(l)]++
		}
	}
	for _, p := range placed {
		if l := byID[p.Node]; l != nil {
			take(l, p.Service, p.CPU, p.Memory, p.HostPorts)
		}
	}
	ok := func(l *load) bool {
		if !l.Alive || l.cpu < req.CPU || l.mem < req.Memory {
			return false
		}
		for _, c := range req.Placement.Constraints {
			var v string
			present := true
			switch c.Attr {
			case "arch":
				v = l.Arch
			case "os":
				v = l.OS
			case "name":
				v = l.Name
			case "id":
				v = l.ID
			default:
				v, present = l.Labels[strings.TrimPrefix(c.Attr, "label.")]
			}
			if !c.Match(v, present) {
				return false
			}
		}
		for _, hp := range req.HostPorts {
			if slices.Contains(l.ports, hp) {
				return false
			}
		}
		return true
	}
	better := func(a, b *load) bool {
		if req.Placement.Strategy == manifest.StrategyBinpack {
			if a.mem != b.mem {
				return a.mem < b.mem
			}
			if a.cpu != b.cpu {
				return a.cpu < b.cpu
			}
			return a.ID < b.ID
		}
		if byLabel && inDomain[domainOf(a)] != inDomain[domainOf(b)] {
			return inDomain[domainOf(a)] < inDomain[domainOf(b)]
		}
		if a.mine != b.mine {
			return a.mine < b.mine
		}
		if a.mem != b.mem {
			return a.mem > b.mem
		}
		if a.cpu != b.cpu {
			return a.cpu > b.cpu
		}
		return a.ID < b.ID
	}
	var out []string
	for range req.Count {
		var best *load
		for _, l := range ls {
			if ok(l) && (best == nil || better(l, best)) {
				best = l
			}
		}
		if best == nil {
			break
		}
		take(best, req.Service, req.CPU, req.Memory, req.HostPorts)
		out = append(out, best.ID)
	}
	return out
}

// randomCluster makes n nodes of mixed sizes, architectures, zones and tiers, some dead,
// with placements of a few services already on them.
func randomCluster(r *rand.Rand, n int) ([]Node, []Placement) {
	archs := []string{"amd64", "arm64", "arm"}
	var nodes []Node
	for i := range n {
		nd := Node{
			ID: fmt.Sprintf("n%04d", r.IntN(10*n)), Name: fmt.Sprintf("host-%d", i), OS: "linux", Arch: archs[r.IntN(3)],
			CPU: int64(500 * (1 + r.IntN(8))), Memory: int64(256*(1+r.IntN(16))) * mi, Alive: r.IntN(10) > 0,
			Labels: map[string]string{},
		}
		if r.IntN(5) > 0 {
			nd.Labels["zone"] = fmt.Sprintf("z%d", r.IntN(4))
		}
		if r.IntN(3) == 0 {
			nd.Labels["tier"] = []string{"edge", "core"}[r.IntN(2)]
		}
		nodes = append(nodes, nd)
	}
	var placed []Placement
	for i := range n * 2 {
		p := Placement{ID: fmt.Sprint(i), Service: fmt.Sprintf("s%d", r.IntN(4)), Node: nodes[r.IntN(len(nodes))].ID,
			CPU: int64(50 * r.IntN(10)), Memory: int64(32*r.IntN(10)) * mi}
		if r.IntN(10) == 0 {
			p.HostPorts = []int{8080}
		}
		placed = append(placed, p)
	}
	return nodes, placed
}

func randomRequest(t testing.TB, r *rand.Rand) Request {
	req := Request{Service: fmt.Sprintf("s%d", r.IntN(5)), Count: r.IntN(40), CPU: int64(50 * r.IntN(8)), Memory: int64(32*r.IntN(16)) * mi}
	if r.IntN(4) == 0 {
		req.HostPorts = []int{8080}
	}
	switch r.IntN(3) {
	case 0:
		req.Placement.Strategy = manifest.StrategyBinpack
	case 1:
		req.Placement.Strategy, req.Placement.SpreadBy = manifest.StrategySpread, "zone"
	}
	pool := []string{"arch == arm64", "arch != arm", "label.tier in (edge, core)", "label.zone not in (z0)", "label.tier not exists", "label.zone exists"}
	for range r.IntN(3) {
		req.Placement.Constraints = append(req.Placement.Constraints, cons(t, pool[r.IntN(len(pool))])...)
	}
	return req
}

// TestPlaceMatchesNaive checks the heap-based scheduler against the plain rules on random
// clusters and requests, and that no plan over-commits a node.
func TestPlaceMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for round := range 300 {
		nodes, placed := randomCluster(r, 1+r.IntN(60))
		s := New(nodes)
		for _, p := range placed {
			s.Reserve(p)
		}
		planned := map[string]bool{}
		// Several requests on one scheduler: each sees what the ones before reserved.
		for range 3 {
			req := randomRequest(t, r)
			want := naive(nodes, placed, req)
			got := s.Place(req)
			if !slices.Equal(got.Nodes, want) {
				t.Fatalf("round %d: %+v\nplanned %v\nnaive   %v", round, req, got.Nodes, want)
			}
			if got.Unplaced != req.Count-len(want) {
				t.Fatalf("round %d: unplaced %d of %d with %d placed", round, got.Unplaced, req.Count, len(want))
			}
			if got.Unplaced > 0 {
				sum := 0
				_, list, _ := strings.Cut(got.Reason, "fit: ")
				for part := range strings.SplitSeq(list, ", ") {
					var k int
					fmt.Sscanf(part, "%d", &k)
					sum += k
				}
				if sum != len(s.nodes) {
					t.Fatalf("round %d: reason %q counts %d nodes of %d", round, got.Reason, sum, len(s.nodes))
				}
			}
			for _, id := range got.Nodes {
				planned[id] = true
				placed = append(placed, Placement{Service: req.Service, Node: id, CPU: req.CPU, Memory: req.Memory, HostPorts: req.HostPorts})
			}
		}
		// A node that took a planned replica had room for it, and only planned
		// replicas came after: it ends with nothing over-committed.
		for i := range s.nodes {
			n := &s.nodes[i]
			if planned[n.ID] && (n.cpu < 0 || n.mem < 0) {
				t.Fatalf("round %d: node %s over-committed: %d mCPU, %d bytes free", round, n.ID, n.cpu, n.mem)
			}
		}
	}
}

// BenchmarkPlace places 1000 replicas of a service on 10,000 nodes (a new service each
// time, on one scheduler).
func BenchmarkPlace(b *testing.B) {
	s := New(benchNodes(10000))
	for i := 0; b.Loop(); i++ {
		if p := s.Place(Request{Service: fmt.Sprint("web", i), Count: 1000, CPU: 10, Memory: mi}); p.Unplaced != 0 {
			b.Fatal(p.Reason)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkNew builds a scheduler over 10,000 nodes.
func BenchmarkNew(b *testing.B) {
	nodes := benchNodes(10000)
	for b.Loop() {
		New(nodes)
	}
}

// BenchmarkPlaceMillion places 1,000 services of 1,000 replicas on 10,000 nodes, a third
// of them spread by zone, a third bin-packed, some with constraints.
func BenchmarkPlaceMillion(b *testing.B) {
	nodes := benchNodes(10000)
	arm := cons(b, "arch == arm64")
	for b.Loop() {
		s := New(nodes)
		for i := range 1000 {
			req := Request{Service: fmt.Sprintf("svc%04d", i), Count: 1000, CPU: 10, Memory: 4 * mi}
			switch i % 3 {
			case 1:
				req.Placement.SpreadBy = "zone"
			case 2:
				req.Placement.Strategy = manifest.StrategyBinpack
			}
			if i%10 == 0 {
				req.Placement.Constraints = arm
			}
			if p := s.Place(req); p.Unplaced != 0 {
				b.Fatal(p.Reason)
			}
		}
	}
	b.ReportMetric(float64(b.N*1000*1000)/b.Elapsed().Seconds(), "placements/s")
}

func benchNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		arch := "amd64"
		if i%2 == 0 {
			arch = "arm64"
		}
		nodes[i] = Node{ID: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Name: fmt.Sprintf("n%d", i), OS: "linux", Arch: arch,
			CPU: 64000, Memory: 256 << 30, Alive: true, Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%10)}}
	}
	return nodes
}
