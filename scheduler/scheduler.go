// Package scheduler decides where replicas run. It is a pure function of the nodes and
// what is already placed on them: no I/O, no clock, no randomness, so the same input
// always gives the same plan and it can be tested and simulated at any scale.
//
// A replica may go to a node that is alive, meets every placement constraint of its
// service, has the CPU and memory it reserves free (a node is never over-committed) and
// none of its host ports bound. Among those, strategy spread picks the node whose
// spreadBy domain (the node itself, or the nodes sharing a label value such as a zone)
// holds the fewest replicas of the service, then the node with the fewest, then the one
// with the most free memory and CPU; strategy binpack picks the node with the least free
// memory and CPU that still fits. Ties go to the lowest node ID.
//
// A Scheduler keeps what is reserved on each node across requests, so one reconcile pass
// plans every service against one view, and placing k replicas costs one pass over the
// nodes the service may use plus k heap steps, not k passes over all nodes.
package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"qnet.dev/qnet/manifest"
)

// Node is a node as the scheduler sees it.
type Node struct {
	ID   string
	Name string
	// OS and Arch are Go's names (linux, arm64), as constraints test them.
	OS, Arch string
	Labels   map[string]string
	// CPU (millicores) and Memory (bytes) the node offers to depots.
	CPU, Memory int64
	// Alive is false for nodes that failed their health checks; nothing is placed there.
	Alive bool
}

// Placement is a replica already placed, with what it reserves.
type Placement struct {
	ID, Service, Node string
	CPU, Memory       int64
	HostPorts         []int
}

// Request asks for Count more replicas of Service, each reserving CPU and Memory and
// binding HostPorts on its node, placed as Placement says (zero values mean spread by
// node with no constraints).
type Request struct {
	Service     string
	Count       int
	CPU, Memory int64
	HostPorts   []int
	Placement   manifest.Placement
}

// Plan is where the requested replicas go. When not all fit, Unplaced says how many did
// not and Reason says why, counting each node under the first check it fails, as
// Kubernetes users know it: "0/5 nodes fit: 3 insufficient memory, 2 arch == arm64 not
// met". The checks run in this order: alive, constraints (in the manifest's order), cpu,
// memory, host ports.
type Plan struct {
	Nodes    []string
	Unplaced int
	Reason   string
}

// Place plans req onto nodes given what is placed already: New, Reserve and
// Scheduler.Place in one call.
func Place(nodes []Node, placed []Placement, req Request) Plan {
	s := New(nodes)
	for _, p := range placed {
		s.Reserve(p)
	}
	return s.Place(req)
}

// Scheduler plans placements against nodes and what is reserved on them. Each Place
// reserves what it plans, so later requests see it. It is not safe for concurrent use.
type Scheduler struct {
	nodes []nodeState // sorted by ID: an index order is an ID order
	byID  map[string]int32
	// services holds, per service, the node of each of its replicas reserved here.
	services map[string][]int32
	// Feasibility that depends only on the nodes and a service's constraints, cached by
	// the constraints' text, and the spreadBy domains of those nodes.
	static  map[string]*static
	domains map[string]*domainSet
	// Scratch reused by every request.
	mine   []int32 // replicas of the requesting service per node
	heaps  []nodeHeap
	counts []int64
	buf    []int32
}

type nodeState struct {
	Node
	cpu, mem int64 // free
	ports    []int // host ports bound
}

// Reasons a node fails a check, as Plan.Reason counts them.
const (
	reasonDead   = "node not alive"
	reasonCPU    = "insufficient cpu"
	reasonMemory = "insufficient memory"
)

// New returns a scheduler over nodes with nothing reserved. When two nodes share an ID
// the first one counts.
func New(nodes []Node) *Scheduler {
	s := &Scheduler{
		byID:     make(map[string]int32, len(nodes)),
		services: map[string][]int32{},
		static:   map[string]*static{},
		domains:  map[string]*domainSet{},
	}
	// Sort positions rather than the nodes themselves, which are large to move.
	order := make([]int32, len(nodes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return strings.Compare(nodes[a].ID, nodes[b].ID) })
	s.nodes = make([]nodeState, 0, len(nodes))
	for _, i := range order {
		n := &nodes[i]
		if len(s.nodes) > 0 && s.nodes[len(s.nodes)-1].ID == n.ID {
			continue // a repeated ID: the first one counts
		}
		s.nodes = append(s.nodes, nodeState{Node: *n, cpu: n.CPU, mem: n.Memory})
	}
	for i := range s.nodes {
		s.byID[s.nodes[i].ID] = int32(i)
	}
	s.mine = make([]int32, len(s.nodes))
	return s
}

// Reserve records a placement that exists: its resources and host ports are taken on
// its node and it counts toward its service's spread. It reports false (and records
// nothing) when the node is unknown.
func (s *Scheduler) Reserve(p Placement) bool {
	i, ok := s.byID[p.Node]
	if !ok {
		return false
	}
	s.take(i, p.Service, p.CPU, p.Memory, p.HostPorts)
	return true
}

func (s *Scheduler) take(i int32, service string, cpu, mem int64, ports []int) {
	n := &s.nodes[i]
	n.cpu -= cpu
	n.mem -= mem
	if len(ports) > 0 {
		n.ports = append(n.ports, ports...)
	}
	s.services[service] = append(s.services[service], i)
}

// fits reports whether one more replica of req fits on node i now (the checks that
// change as replicas are placed).
func (s *Scheduler) fits(i int32, req *Request) bool {
	return s.dynamicMisfit(i, req) == ""
}

func (s *Scheduler) dynamicMisfit(i int32, req *Request) string {
	n := &s.nodes[i]
	switch {
	case n.cpu < req.CPU:
		return reasonCPU
	case n.mem < req.Memory:
		return reasonMemory
	}
	for _, hp := range req.HostPorts {
		for _, bound := range n.ports {
			if bound == hp {
				return fmt.Sprintf("host port %d taken", hp)
			}
		}
	}
	return ""
}

// static is what a set of constraints makes of the nodes: which pass, and for each that
// does not, the first check it fails.
type static struct {
	texts []string // per constraint: "<constraint> not met"
	// fail is, per node, notAlive, passes, or the index of its first failed constraint.
	fail []int16
	ok   []int32 // the nodes that pass, in ID order
}

const (
	passes   = -1
	notAlive = -2
)

func constraintsKey(cons []manifest.Constraint) string {
	if len(cons) == 0 {
		return ""
	}
	var b strings.Builder
	for _, c := range cons {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// staticFor evaluates constraints against every node, once per distinct set.
func (s *Scheduler) staticFor(key string, cons []manifest.Constraint) *static {
	if st, ok := s.static[key]; ok {
		return st
	}
	st := &static{fail: make([]int16, len(s.nodes))}
	for _, c := range cons {
		st.texts = append(st.texts, c.String()+" not met")
	}
	for i := range s.nodes {
		n := &s.nodes[i]
		st.fail[i] = passes
		if !n.Alive {
			st.fail[i] = notAlive
			continue
		}
		for ci, c := range cons {
			if !c.Match(n.attr(c.Attr)) {
				st.fail[i] = int16(ci)
				break
			}
		}
		if st.fail[i] == passes {
			st.ok = append(st.ok, int32(i))
		}
	}
	s.static[key] = st
	return st
}

// attr is the value of a constraint's attribute on the node; present is false for a
// label the node does not have.
func (n *nodeState) attr(attr string) (value string, present bool) {
	switch attr {
	case manifest.AttrArch:
		return n.Arch, true
	case manifest.AttrOS:
		return n.OS, true
	case manifest.AttrName:
		return n.Name, true
	case manifest.AttrID:
		return n.ID, true
	}
	key, ok := strings.CutPrefix(attr, manifest.LabelPrefix)
	if !ok {
		return "", false
	}
	v, ok := n.Labels[key]
	return v, ok
}

// domainSet groups the nodes that pass a set of constraints by the value of a label.
type domainSet struct {
	key     string           // the label key
	of      map[string]int32 // label value -> domain
	members [][]int32        // per domain, its nodes in ID order
}

func (s *Scheduler) domainsFor(staticKey string, st *static, label string) *domainSet {
	key := staticKey + "\x00" + label
	if ds, ok := s.domains[key]; ok {
		return ds
	}
	values := map[string]bool{}
	for _, i := range st.ok {
		values[s.nodes[i].Labels[label]] = true // nodes without the label: domain ""
	}
	names := make([]string, 0, len(values))
	for v := range values {
		names = append(names, v)
	}
	sort.Strings(names)
	ds := &domainSet{key: label, of: make(map[string]int32, len(names)), members: make([][]int32, len(names))}
	for d, v := range names {
		ds.of[v] = int32(d)
	}
	for _, i := range st.ok {
		d := ds.of[s.nodes[i].Labels[label]]
		ds.members[d] = append(ds.members[d], i)
	}
	s.domains[key] = ds
	return ds
}

// Place plans req and reserves what it plans, so later requests see it.
func (s *Scheduler) Place(req Request) Plan {
	if req.Count <= 0 {
		return Plan{}
	}
	cons := req.Placement.Constraints
	skey := constraintsKey(cons)
	st := s.staticFor(skey, cons)
	binpack := req.Placement.Strategy == manifest.StrategyBinpack
	spreadBy := req.Placement.SpreadBy
	if spreadBy == "" {
		spreadBy = manifest.SpreadByNode
	}

	// Replicas of the service per node, for the spread; reset when done.
	mine := s.mine
	for _, i := range s.services[req.Service] {
		mine[i]++
	}
	defer func() {
		for _, i := range s.services[req.Service] {
			mine[i] = 0
		}
	}()

	// The nodes the replicas may go to, grouped into spread domains: the nodes sharing
	// a label value, or all nodes in one group when spreading by node or bin-packing.
	groups := [][]int32{st.ok}
	var ds *domainSet
	if !binpack && spreadBy != manifest.SpreadByNode {
		ds = s.domainsFor(skey, st, spreadBy)
		groups = ds.members
	}
	counts := s.counts[:0]
	for range groups {
		counts = append(counts, 0)
	}
	s.counts = counts
	if ds != nil {
		for _, i := range s.services[req.Service] {
			if d, ok := ds.of[s.nodes[i].Labels[ds.key]]; ok {
				counts[d]++
			}
		}
	}

	nodeLess := func(a, b int32) bool {
		na, nb := &s.nodes[a], &s.nodes[b]
		if binpack {
			if na.mem != nb.mem {
				return na.mem < nb.mem
			}
			if na.cpu != nb.cpu {
				return na.cpu < nb.cpu
			}
			return a < b
		}
		if mine[a] != mine[b] {
			return mine[a] < mine[b]
		}
		if na.mem != nb.mem {
			return na.mem > nb.mem
		}
		if na.cpu != nb.cpu {
			return na.cpu > nb.cpu
		}
		return a < b
	}

	// One heap of fitting nodes per domain, and a heap of the domains keyed by the
	// replicas they hold, then by their best node: its top is the best node overall.
	if cap(s.buf) < len(st.ok) {
		s.buf = make([]int32, 0, len(st.ok))
	}
	buf := s.buf[:0] // never grows past its capacity: the heaps below share it
	heaps := s.heaps[:0]
	for _, g := range groups {
		start := len(buf)
		for _, i := range g {
			if s.fits(i, &req) {
				buf = append(buf, i)
			}
		}
		heaps = append(heaps, nodeHeap{items: buf[start:len(buf):len(buf)], less: nodeLess})
	}
	s.buf, s.heaps = buf, heaps
	domains := nodeHeap{less: func(a, b int32) bool {
		if counts[a] != counts[b] {
			return counts[a] < counts[b]
		}
		return nodeLess(heaps[a].items[0], heaps[b].items[0])
	}}
	for d := range heaps {
		if len(heaps[d].items) > 0 {
			heaps[d].init()
			domains.items = append(domains.items, int32(d))
		}
	}
	domains.init()

	var plan Plan
	for len(plan.Nodes) < req.Count {
		if len(domains.items) == 0 {
			plan.Unplaced = req.Count - len(plan.Nodes)
			plan.Reason = s.explain(st, &req)
			break
		}
		d := domains.items[0]
		h := &heaps[d]
		i := h.items[0]
		s.take(i, req.Service, req.CPU, req.Memory, req.HostPorts)
		mine[i]++
		counts[d]++
		plan.Nodes = append(plan.Nodes, s.nodes[i].ID)
		// Placing only makes node i's key worse (spread) or keeps it best (binpack), and
		// domain d's key worse: sifting the tops down restores both heaps.
		if s.fits(i, &req) {
			h.down(0)
		} else {
			h.pop()
		}
		if len(h.items) == 0 {
			domains.pop()
		} else {
			domains.down(0)
		}
	}
	return plan
}

// explain counts every node under the first check it fails for req.
func (s *Scheduler) explain(st *static, req *Request) string {
	if len(s.nodes) == 0 {
		return "0/0 nodes fit: the network has no nodes"
	}
	reasons := map[string]int{}
	for i := range s.nodes {
		switch f := st.fail[i]; {
		case f == notAlive:
			reasons[reasonDead]++
		case f >= 0:
			reasons[st.texts[f]]++
		default:
			if why := s.dynamicMisfit(int32(i), req); why != "" {
				reasons[why]++
			}
		}
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if reasons[keys[i]] != reasons[keys[j]] {
			return reasons[keys[i]] > reasons[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", reasons[k], k)
	}
	return fmt.Sprintf("0/%d nodes fit: %s", len(s.nodes), strings.Join(parts, ", "))
}

// nodeHeap is a binary min-heap of indexes under less. The scheduler only ever replaces
// or removes the top, so it needs no position index.
type nodeHeap struct {
	items []int32
	less  func(a, b int32) bool
}

func (h *nodeHeap) init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *nodeHeap) down(i int) {
	items := h.items
	n := len(items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(items[r], items[l]) {
			m = r
		}
		if !h.less(items[m], items[i]) {
			return
		}
		items[i], items[m] = items[m], items[i]
		i = m
	}
}

// pop removes the top.
func (h *nodeHeap) pop() {
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	if last > 0 {
		h.down(0)
	}
}
