// Package controller holds QNet's reconcilers: small, level-triggered loops that read
// the desired state (services) and the actual state (placements, nodes) afresh each time
// and propose the changes that bring one to the other. The decisions are pure functions;
// the Runner around them does the reading and the proposing, on the ordering leader only.
package controller

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

// ReplicaInput is what the replica reconciler decides from.
type ReplicaInput struct {
	Services   []state.Service
	Placements []state.Placement
	// Nodes are the nodes on the ledger, with Alive saying whether each is up now.
	Nodes []scheduler.Node
	// NewID names a new depot of a service; it must not repeat.
	NewID func(service string) string
}

// Replicas decides the placement changes that give every service its desired number of
// replicas at its current revision, on live nodes: placements of services that are gone,
// of older revisions, on nodes that are gone or not alive, or in excess are removed;
// missing replicas (a dead node's among them, in the slots they held) are placed by the
// scheduler, as each service's placement spec says, in the same set. It returns an empty
// set when nothing is to change.
//
// It is called on every change of the state, so it costs one pass over the placements
// and one scheduler view for all services: O(placements + services x nodes they may use).
func Replicas(in ReplicaInput) ledger.PlacementSet {
	var set ledger.PlacementSet
	services := make(map[string]*state.Service, len(in.Services))
	for i := range in.Services {
		services[in.Services[i].Name] = &in.Services[i]
	}
	alive := make(map[string]bool, len(in.Nodes))
	for _, n := range in.Nodes {
		if _, dup := alive[n.ID]; !dup {
			alive[n.ID] = n.Alive
		}
	}

	byService := make(map[string][]*state.Placement, len(services))
	var why reasons
	remove := func(cause, id string) {
		set.Remove = append(set.Remove, id)
		why.add(cause, id)
	}
	for i := range in.Placements {
		p := &in.Placements[i]
		svc, ok := services[p.Service]
		if !ok {
			remove(fmt.Sprintf("service %s was deleted:", p.Service), p.ID)
			continue
		}
		if p.Revision != svc.Revision {
			remove(fmt.Sprintf("%s revision %d replaces", p.Service, svc.Revision), p.ID)
			continue
		}
		switch up, known := alive[p.Node]; {
		case !known:
			remove(fmt.Sprintf("node %s is gone:", p.Node), p.ID)
		case !up:
			remove(fmt.Sprintf("node %s is not alive:", p.Node), p.ID)
		default:
			byService[p.Service] = append(byService[p.Service], p)
		}
	}

	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	sort.Strings(names)

	// Excess replicas go first, so their resources are free for others' placements; what
	// stays is reserved in one scheduler view shared by every service's placement.
	sched := scheduler.New(in.Nodes)
	for _, name := range names {
		svc := services[name]
		ps := byService[name]
		bySlot := func(a, b *state.Placement) int {
			if a.Slot != b.Slot {
				return a.Slot - b.Slot
			}
			return strings.Compare(a.ID, b.ID)
		}
		if !slices.IsSortedFunc(ps, bySlot) {
			slices.SortFunc(ps, bySlot)
		}
		desired := svc.Spec.Spec.Replicas
		if len(ps) > desired {
			for _, p := range ps[desired:] {
				remove(fmt.Sprintf("%s scaled down to %d:", name, desired), p.ID)
			}
			ps = ps[:desired]
			byService[name] = ps
		}
		res := reserve(svc, "", "")
		for _, p := range ps {
			res.Node = p.Node
			sched.Reserve(res)
		}
	}

	unsched := map[string]string{}
	for _, name := range names {
		svc := services[name]
		ps := byService[name]
		missing := svc.Spec.Spec.Replicas - len(ps)
		reason := ""
		if missing > 0 {
			res := reserve(svc, "", "")
			plan := sched.Place(scheduler.Request{
				Service: name, Count: missing, CPU: res.CPU, Memory: res.Memory, HostPorts: res.HostPorts,
				Placement: svc.Spec.Spec.Placement,
			})
			used := make(map[int]bool, len(ps))
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
// ledger and in each removal event, rather than one clause per depot. It keeps only the
// IDs it shows and a count of the rest: a set may hold a million depots.
type reasons struct {
	causes []string
	ids    map[string]*causeIDs
}

type causeIDs struct {
	first []string
	n     int
}

// add records that depot id is removed or placed for cause, which reads well when the
// depot IDs follow it ("web revision 2 replaces", "node n3 is gone:").
func (r *reasons) add(cause, id string) {
	if r.ids == nil {
		r.ids = map[string]*causeIDs{}
	}
	c, ok := r.ids[cause]
	if !ok {
		c = &causeIDs{}
		r.ids[cause] = c
		r.causes = append(r.causes, cause)
	}
	if len(c.first) < maxReasonIDs {
		c.first = append(c.first, id)
	}
	c.n++
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
		c := r.ids[cause]
		list := strings.Join(c.first, ", ")
		if c.n > len(c.first) {
			list += fmt.Sprintf(" and %d more", c.n-len(c.first))
		}
		parts = append(parts, cause+" "+list)
	}
	return strings.Join(parts, "; ")
}

// SplitSet cuts a placement set into sets whose JSON stays under maxBytes, so each fits
// in one transaction (ledger.MaxPayloadSize) however many depots change at once. The
// parts keep the order the ledger must apply them in: every removal before any addition,
// so resources are freed before they are taken again; the first part carries the
// unschedulable reasons and every part the reason. Applied in order, the parts do what
// the whole set does. A set that fits is returned as it is.
func SplitSet(set ledger.PlacementSet, maxBytes int) []ledger.PlacementSet {
	str := jsonStringLen
	head := len(`{"add":[],"remove":[],"reason":,"unschedulable":{}}`) + str(set.Reason)
	for name, why := range set.Unschedulable {
		head += str(name) + str(why) + 2
	}
	removeSize := func(id string) int { return str(id) + 1 }
	addSize := func(p ledger.Placement) int {
		return len(`{"id":,"service":,"revision":,"node":,"slot":},`) + str(p.ID) + str(p.Service) + str(p.Node) +
			len(strconv.FormatUint(p.Revision, 10)) + len(strconv.Itoa(p.Slot))
	}
	total := head
	for _, id := range set.Remove {
		total += removeSize(id)
	}
	for _, p := range set.Add {
		total += addSize(p)
	}
	if total <= maxBytes {
		return []ledger.PlacementSet{set}
	}
	var parts []ledger.PlacementSet
	cur := ledger.PlacementSet{Reason: set.Reason, Unschedulable: set.Unschedulable}
	size := head
	flush := func() {
		parts = append(parts, cur)
		cur = ledger.PlacementSet{Reason: set.Reason}
		size = len(`{"add":[],"remove":[],"reason":}`) + str(set.Reason)
	}
	for _, id := range set.Remove {
		if n := removeSize(id); size+n > maxBytes && len(cur.Remove) > 0 {
			flush()
		}
		cur.Remove = append(cur.Remove, id)
		size += removeSize(id)
	}
	for _, p := range set.Add {
		if n := addSize(p); size+n > maxBytes && (len(cur.Add) > 0 || len(cur.Remove) > 0) {
			flush()
		}
		cur.Add = append(cur.Add, p)
		size += addSize(p)
	}
	if len(cur.Add) > 0 || len(cur.Remove) > 0 || len(parts) == 0 {
		parts = append(parts, cur)
	}
	return parts
}

// jsonStringLen bounds the length of s as a JSON string the way the ledger encodes it
// (encoding/json: quotes, escapes, HTML-safe): exact for plain text, never short.
func jsonStringLen(s string) int {
	n := 2 + len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n++
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 5 // \u00XX
		case c >= 0x80:
			n += 5 // invalid UTF-8 and U+2028/U+2029 grow to \ufffd, \u2028: at most 6 per byte
		}
	}
	return n
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
