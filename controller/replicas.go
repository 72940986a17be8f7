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
	var why reasons
	for _, p := range in.Placements {
		svc, ok := services[p.Service]
		switch {
		case !ok:
			set.Remove = append(set.Remove, p.ID)
			why.add(fmt.Sprintf("service %s was deleted:", p.Service), p.ID)
			continue
		case p.Revision != svc.Revision:
			set.Remove = append(set.Remove, p.ID)
			why.add(fmt.Sprintf("%s revision %d replaces", p.Service, svc.Revision), p.ID)
			continue
		}
		if _, ok := nodes[p.Node]; !ok {
			set.Remove = append(set.Remove, p.ID)
			why.add(fmt.Sprintf("node %s is gone:", p.Node), p.ID)
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
				why.add(fmt.Sprintf("%s scaled down to %d:", name, desired), p.ID)
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
				why.add(fmt.Sprintf("new replicas of %s:", name), id)
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
	set.Reason = why.String()
	return set
}

// reasons gathers why depots are removed and placed, grouped by cause, so a set reads
// "web revision 2 replaces web-1, web-2; new replicas of web: web-3, web-4" on the
// ledger and in each removal event, rather than one clause per depot.
type reasons struct {
	causes []string
	ids    map[string][]string
}

// add records that depot id is removed or placed for cause, which reads well when the
// depot IDs follow it ("web revision 2 replaces", "node n3 is gone:").
func (r *reasons) add(cause, id string) {
	if r.ids == nil {
		r.ids = map[string][]string{}
	}
	if _, ok := r.ids[cause]; !ok {
		r.causes = append(r.causes, cause)
	}
	r.ids[cause] = append(r.ids[cause], id)
}

// Bounds that keep a reason one readable line however large the set.
const (
	maxReasonCauses = 6
	maxReasonIDs    = 3
)

func (r *reasons) String() string {
	var parts []string
	for i, cause := range r.causes {
		if i == maxReasonCauses {
			parts = append(parts, fmt.Sprintf("and %d more causes", len(r.causes)-i))
			break
		}
		ids := r.ids[cause]
		list := strings.Join(ids[:min(len(ids), maxReasonIDs)], ", ")
		if len(ids) > maxReasonIDs {
			list += fmt.Sprintf(" and %d more", len(ids)-maxReasonIDs)
		}
		parts = append(parts, cause+" "+list)
	}
	return strings.Join(parts, "; ")
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
