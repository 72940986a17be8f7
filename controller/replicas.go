// Package controller holds QNet's reconcilers: small, level-triggered loops that read
// the desired state (services) and the actual state (placements, nodes) afresh each time
// and propose the changes that bring one to the other. The decisions are pure functions;
// the Runner around them does the reading and the proposing, on the ordering leader only.
package controller

import (
	"fmt"
	"sort"
	"strings"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

// ReplicaInput is what the replica reconciler decides from.
type ReplicaInput struct {
	Services   []state.Service
	Placements []state.Placement
	Nodes      []scheduler.Node
	// NewID names a new depot of a service; it must not repeat.
	NewID func(service string) string
}

// Replicas decides the placement changes that give every service its desired number of
// replicas at its current revision: placements of services that are gone, of older
// revisions, on nodes that are gone or in excess are removed; missing replicas are placed
// by the scheduler. It returns an empty set when nothing is to change.
func Replicas(in ReplicaInput) ledger.PlacementSet {
	var set ledger.PlacementSet
	services := make(map[string]*state.Service, len(in.Services))
	for i := range in.Services {
		services[in.Services[i].Name] = &in.Services[i]
	}
	nodes := make(map[string]scheduler.Node, len(in.Nodes))
	for _, n := range in.Nodes {
		nodes[n.ID] = n
	}

	byService := map[string][]state.Placement{}
	var kept []scheduler.Placement
	var reasons []string
	for _, p := range in.Placements {
		svc, ok := services[p.Service]
		switch {
		case !ok:
			set.Remove = append(set.Remove, p.ID)
			reasons = append(reasons, fmt.Sprintf("%s: service deleted", p.ID))
			continue
		case p.Revision != svc.Revision:
			set.Remove = append(set.Remove, p.ID)
			reasons = append(reasons, fmt.Sprintf("%s: replaced by revision %d", p.ID, svc.Revision))
			continue
		}
		if _, ok := nodes[p.Node]; !ok {
			set.Remove = append(set.Remove, p.ID)
			reasons = append(reasons, fmt.Sprintf("%s: node %s is gone", p.ID, p.Node))
			continue
		}
		byService[p.Service] = append(byService[p.Service], p)
	}

	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	sort.Strings(names)

	// Excess replicas go first, so their resources are free for others' placements.
	for _, name := range names {
		svc := services[name]
		ps := byService[name]
		sort.Slice(ps, func(i, j int) bool { return ps[i].Slot < ps[j].Slot })
		desired := svc.Spec.Spec.Replicas
		if len(ps) > desired {
			for _, p := range ps[desired:] {
				set.Remove = append(set.Remove, p.ID)
				reasons = append(reasons, fmt.Sprintf("%s: scaled down to %d", p.ID, desired))
			}
			ps = ps[:desired]
			byService[name] = ps
		}
		for _, p := range ps {
			kept = append(kept, reserve(svc, p.ID, p.Node))
		}
	}

	unsched := map[string]string{}
	for _, name := range names {
		svc := services[name]
		ps := byService[name]
		missing := svc.Spec.Spec.Replicas - len(ps)
		reason := ""
		if missing > 0 {
			req := reserve(svc, "", "")
			plan := scheduler.Place(in.Nodes, kept, scheduler.Request{
				Service: name, Count: missing, CPU: req.CPU, Memory: req.Memory, HostPorts: req.HostPorts,
			})
			used := map[int]bool{}
			for _, p := range ps {
				used[p.Slot] = true
			}
			slot := 0
			for _, node := range plan.Nodes {
				for used[slot] {
					slot++
				}
				used[slot] = true
				id := in.NewID(name)
				set.Add = append(set.Add, ledger.Placement{ID: id, Service: name, Revision: svc.Revision, Node: node, Slot: slot})
				kept = append(kept, reserve(svc, id, node))
			}
			if plan.Unplaced > 0 {
				reason = fmt.Sprintf("%d of %d replicas unplaced: %s", plan.Unplaced, svc.Spec.Spec.Replicas, plan.Reason)
			}
		}
		if reason != svc.Unschedulable {
			unsched[name] = reason
		}
	}
	if len(unsched) > 0 {
		set.Unschedulable = unsched
	}
	if len(set.Add) > 0 {
		reasons = append(reasons, fmt.Sprintf("%d replica(s) placed", len(set.Add)))
	}
	if len(reasons) > 0 {
		if len(reasons) > 5 {
			reasons = append(reasons[:5], fmt.Sprintf("and %d more", len(reasons)-5))
		}
		set.Reason = strings.Join(reasons, "; ")
	}
	return set
}

// Empty reports whether a placement set changes nothing.
func Empty(s ledger.PlacementSet) bool {
	return len(s.Add) == 0 && len(s.Remove) == 0 && len(s.Unschedulable) == 0
}

func reserve(svc *state.Service, id, node string) scheduler.Placement {
	p := scheduler.Placement{
		ID: id, Service: svc.Name, Node: node,
		CPU: int64(svc.Spec.Spec.Resources.CPU), Memory: int64(svc.Spec.Spec.Resources.Memory),
	}
	for _, port := range svc.Spec.Spec.Ports {
		if port.HostPort != 0 {
			p.HostPorts = append(p.HostPorts, port.HostPort)
		}
	}
	return p
}
