// Package controller holds QNet's reconcilers: small, level-triggered loops that read
// the desired state (services) and the actual state (placements, nodes) afresh each time
// and propose the changes that bring one to the other. The decisions are pure functions;
// the Runner around them does the reading and the proposing, on the ordering leader only.
package controller

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

// ReplicaInput is what the replica reconciler decides from.
type ReplicaInput struct {
	// Services are the services on the ledger. The Spec of each must be the spec of the
	// revision its replicas are driven to (state.Service.RunRevision): the runner puts
	// the stable revision's spec in place when a failed rollout was reverted.
	Services   []state.Service
	Placements []state.Placement
	// Nodes are the nodes on the ledger, with Alive saying whether each is up now.
	Nodes []scheduler.Node
	// NewID names a new depot of a service; it must not repeat.
	NewID func(service string) string
	// Now is the time canary windows and progress deadlines are measured against; the
	// zero time lets neither pass.
	Now time.Time
	// Equivalent reports whether revision rev of service runs the same thing as
	// revision target: their specs differ in nothing but replicas and rollout, so a
	// change of the replica count alone does not replace running replicas. Nil means
	// only a revision is equivalent to itself.
	Equivalent func(service string, rev, target uint64) bool
}

// Decision is what one pass of the replica reconciler decided: the placements to change
// and the rollouts whose phase ends (complete, failed or reverted).
type Decision struct {
	Set      ledger.PlacementSet
	Rollouts []ledger.RolloutStatus
}

// Replicas is Reconcile without the rollout reports: the placement changes only.
func Replicas(in ReplicaInput) ledger.PlacementSet { return Reconcile(in).Set }

// Reconcile decides the placement changes that give every service its desired number
// of replicas at the revision it is driven to, on live nodes, and how its rollout
// stands. Placements of services that are gone, or on nodes that are gone or not alive,
// are removed at once. Placements of another revision are replaced by a rolling update
// (see planService): new replicas are added up to replicas+maxSurge, and old ones are
// removed only while replicas-maxUnavailable stay ready. Missing replicas are placed by
// the scheduler, as each service's placement spec says, in the same set. The set is
// empty when nothing is to change.
//
// It is called on every change of the state, so it costs one pass over the placements
// and one scheduler view for all services: O(placements + services x nodes they may use).
func Reconcile(in ReplicaInput) Decision {
	var d Decision
	set := &d.Set
	services := make(map[string]*state.Service, len(in.Services))
	run := make(map[string]uint64, len(in.Services))
	for i := range in.Services {
		services[in.Services[i].Name] = &in.Services[i]
		run[in.Services[i].Name] = in.Services[i].RunRevision()
	}
	alive := make(map[string]bool, len(in.Nodes))
	for _, n := range in.Nodes {
		if _, dup := alive[n.ID]; !dup {
			alive[n.ID] = n.Alive
		}
	}

	groups := make(map[string]*serviceGroup, len(services))
	group := func(name string) *serviceGroup {
		g, ok := groups[name]
		if !ok {
			g = &serviceGroup{}
			groups[name] = g
		}
		return g
	}
	var why reasons
	remove := func(cause, id string) {
		set.Remove = append(set.Remove, id)
		why.add(cause, id)
	}
	for i := range in.Placements {
		p := &in.Placements[i]
		if _, ok := services[p.Service]; !ok {
			remove(fmt.Sprintf("service %s was deleted:", p.Service), p.ID)
			continue
		}
		g := group(p.Service)
		switch up, known := alive[p.Node]; {
		case !known:
			remove(fmt.Sprintf("node %s is gone:", p.Node), p.ID)
			g.dead = append(g.dead, p)
		case !up:
			remove(fmt.Sprintf("node %s is not alive:", p.Node), p.ID)
			g.dead = append(g.dead, p)
		default:
			if r := run[p.Service]; p.Revision == r || (in.Equivalent != nil && in.Equivalent(p.Service, p.Revision, r)) {
				g.cur = append(g.cur, p)
			} else {
				g.old = append(g.old, p)
			}
		}
	}

	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	sort.Strings(names)

	// Removals go first, so their resources are free for others' placements; what
	// stays is reserved in one scheduler view shared by every service's placement.
	sched := scheduler.New(in.Nodes)
	plans := make(map[string]servicePlan, len(names))
	for _, name := range names {
		svc := services[name]
		plan := planService(svc, group(name), in.Now)
		plans[name] = plan
		for _, r := range plan.remove {
			remove(r.cause, r.id)
		}
		res := reserve(svc, "", "")
		for _, p := range plan.keep {
			res.Node = p.Node
			sched.Reserve(res)
		}
		if plan.status != nil {
			d.Rollouts = append(d.Rollouts, *plan.status)
		}
	}

	unsched := map[string]string{}
	for _, name := range names {
		svc := services[name]
		plan := plans[name]
		reason := ""
		for _, want := range plan.add {
			res := reserve(svc, "", "")
			sp := scheduler.Request{
				Service: name, Count: len(want.slots), CPU: res.CPU, Memory: res.Memory, HostPorts: res.HostPorts,
				Placement: svc.Spec.Spec.Placement,
			}
			placed := sched.Place(sp)
			for i, node := range placed.Nodes {
				id := in.NewID(name)
				set.Add = append(set.Add, ledger.Placement{ID: id, Service: name, Revision: want.revision, Node: node, Slot: want.slots[i]})
				why.add(fmt.Sprintf("new replicas of %s:", name), id)
			}
			if placed.Unplaced > 0 && reason == "" {
				reason = fmt.Sprintf("%d of %d replicas unplaced: %s", placed.Unplaced, svc.Spec.Spec.Replicas, placed.Reason)
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
	return d
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
