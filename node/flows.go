package node

import (
	"cmp"
	"fmt"
	"net/netip"
	"time"

	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/netsvc/receipt"
)

// checkFlow is the proxy's flows hook: a connection (or UDP session) from a depot of
// this node to a service its manifest's flows.allow does not list is refused, and the refusal is
// recorded in the receipt log (qnet audit lists it). Connections from anything that
// is not a depot (the node's own users) pass.
func (n *Node) checkFlow(from netip.AddrPort, sp netsvc.ServicePort) error {
	if !n.catalog.Restricted() {
		return nil // no service limits its flows: nothing to trace
	}
	roots := map[int]string{}
	for id, st := range n.agent.Depots() {
		if st.PID > 0 {
			roots[st.PID] = id
		}
	}
	depot, ok := socketOwnerDepot(cmp.Or(sp.Protocol, "tcp"), from, roots)
	if !ok {
		return nil
	}
	return n.checkDepotFlow(depot, sp)
}

// checkContainerFlow is checkFlow for a connection taken inside the network namespace
// of a container depot (see containerServices): there the depot is known from the
// socket the connection came to, which only that container can reach, so nothing
// needs tracing.
func (n *Node) checkContainerFlow(depot string, sp netsvc.ServicePort) error {
	if !n.catalog.Restricted() {
		return nil
	}
	return n.checkDepotFlow(depot, sp)
}

// checkDepotFlow refuses, and records the refusal of, a connection from depot to sp
// when the depot's service does not list sp's service in spec.flows.allow.
func (n *Node) checkDepotFlow(depot string, sp netsvc.ServicePort) error {
	pl, ok, err := n.store.Placement(depot)
	if err != nil || !ok {
		return nil // a depot the ledger no longer has is being stopped
	}
	svc, ok, err := n.store.Service(pl.Service)
	if err != nil || !ok || svc.Spec.Spec.Flows.Allows(sp.Service) {
		return nil
	}
	reason := fmt.Sprintf("service %s may not connect to %s: not in its spec.flows.allow", pl.Service, sp.Service)
	rf := receipt.Refusal{Node: n.id, FromNode: n.id, FromService: pl.Service, FromDepot: depot,
		ToService: sp.Service, ToPort: sp.Port, At: time.Now().UTC(), Reason: reason}
	if err := n.receipts.AppendRefusal(rf); err != nil {
		n.log.Warn("refused flow not recorded", "err", err)
	}
	return fmt.Errorf("flow refused: %s", reason)
}
