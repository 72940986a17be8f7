// Package scheduler decides where replicas run. It is a pure function of the nodes and
// what is already placed on them: no I/O, no clock, no randomness, so the same input
// always gives the same plan and it can be tested and simulated at any scale.
package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// Node is a node as the scheduler sees it.
type Node struct {
	ID string
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
// binding HostPorts on its node.
type Request struct {
	Service     string
	Count       int
	CPU, Memory int64
	HostPorts   []int
}

// Plan is where the requested replicas go. When not all fit, Unplaced says how many did
// not and Reason says why, node by node, as Kubernetes users know it:
// "0/5 nodes fit: 3 insufficient memory, 2 not alive".
type Plan struct {
	Nodes    []string
	Unplaced int
	Reason   string
}

type nodeLoad struct {
	Node
	cpu, mem int64        // reserved
	ports    map[int]bool // host ports bound
	mine     int          // replicas of the requesting service
}

// Place plans req onto nodes given what is placed already. Replicas are spread: each
// goes to a feasible node with the fewest replicas of the service, then the most free
// memory and CPU, then the lowest ID. A node is never over-committed.
func Place(nodes []Node, placed []Placement, req Request) Plan {
	loads := make(map[string]*nodeLoad, len(nodes))
	order := make([]*nodeLoad, 0, len(nodes))
	for _, n := range nodes {
		l := &nodeLoad{Node: n, ports: map[int]bool{}}
		loads[n.ID] = l
		order = append(order, l)
	}
	for _, p := range placed {
		l, ok := loads[p.Node]
		if !ok {
			continue
		}
		l.cpu += p.CPU
		l.mem += p.Memory
		for _, hp := range p.HostPorts {
			l.ports[hp] = true
		}
		if p.Service == req.Service {
			l.mine++
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].ID < order[j].ID })

	var plan Plan
	for range req.Count {
		var best *nodeLoad
		reasons := map[string]int{}
		for _, l := range order {
			if why := l.misfit(req); why != "" {
				reasons[why]++
				continue
			}
			if best == nil || better(l, best) {
				best = l
			}
		}
		if best == nil {
			plan.Unplaced = req.Count - len(plan.Nodes)
			plan.Reason = explain(len(order), reasons)
			break
		}
		best.cpu += req.CPU
		best.mem += req.Memory
		for _, hp := range req.HostPorts {
			best.ports[hp] = true
		}
		best.mine++
		plan.Nodes = append(plan.Nodes, best.ID)
	}
	return plan
}

func (l *nodeLoad) misfit(req Request) string {
	switch {
	case !l.Alive:
		return "node not alive"
	case l.CPU-l.cpu < req.CPU:
		return "insufficient cpu"
	case l.Memory-l.mem < req.Memory:
		return "insufficient memory"
	}
	for _, hp := range req.HostPorts {
		if l.ports[hp] {
			return fmt.Sprintf("host port %d taken", hp)
		}
	}
	return ""
}

func better(a, b *nodeLoad) bool {
	if a.mine != b.mine {
		return a.mine < b.mine
	}
	if fa, fb := a.Memory-a.mem, b.Memory-b.mem; fa != fb {
		return fa > fb
	}
	if fa, fb := a.CPU-a.cpu, b.CPU-b.cpu; fa != fb {
		return fa > fb
	}
	return a.ID < b.ID
}

func explain(total int, reasons map[string]int) string {
	if total == 0 {
		return "0/0 nodes fit: the network has no nodes"
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
	return fmt.Sprintf("0/%d nodes fit: %s", total, strings.Join(parts, ", "))
}
