package node

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/state"
)

// catalog is the network's services and their ready replicas as this node's replica
// of the state has them (netsvc.Catalog). It is rebuilt whenever the state changes, so
// the DNS server, the proxy and the ingress read a consistent snapshot without
// touching the store on every query or connection.
type catalog struct {
	store *state.Store
	self  string
	host  netip.Addr // where this node's depots listen

	mu      sync.RWMutex
	network string
	ports   []netsvc.ServicePort
	eps     map[string][]netsvc.Endpoint // by service
	// restricted: some service limits where its depots may connect (spec.flows).
	restricted bool
	changed    chan struct{}
}

func newCatalog(store *state.Store, self, host string) *catalog {
	h, err := netip.ParseAddr(host)
	if err != nil {
		h = netip.MustParseAddr("127.0.0.1")
	}
	return &catalog{store: store, self: self, host: h, eps: map[string][]netsvc.Endpoint{}, changed: make(chan struct{})}
}

// run rebuilds the catalog at every change of the state until ctx ends.
func (c *catalog) run(ctx context.Context) {
	for {
		_, ch := c.store.Watch()
		c.rebuild()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// rebuild reads the state once and replaces the catalog's snapshot.
func (c *catalog) rebuild() {
	tip, _, _ := c.store.Tip()
	svcs, err := c.store.Services()
	if err != nil {
		return
	}
	nodes, err := c.store.Nodes()
	if err != nil {
		return
	}
	placements, err := c.store.Placements(nil)
	if err != nil {
		return
	}
	nodeHost := map[string]netip.Addr{}
	for _, n := range nodes {
		nodeHost[n.ID] = hostOf(n.Addr)
	}
	var ports []netsvc.ServicePort
	specs := map[string]*state.Service{}
	restricted := false
	for i := range svcs {
		s := &svcs[i]
		specs[s.Name] = s
		restricted = restricted || s.Spec.Spec.Flows != nil
		vip, _ := netip.ParseAddr(s.VIP)
		for _, p := range s.Spec.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "tcp"
			}
			ports = append(ports, netsvc.ServicePort{Service: s.Name, Port: p.Name, Protocol: proto, VIP: vip, Number: p.Port, Expose: p.Expose})
		}
	}
	eps := map[string][]netsvc.Endpoint{}
	for _, p := range placements {
		s := specs[p.Service]
		if s == nil || p.Status == nil || !p.Status.Ready {
			continue
		}
		host := nodeHost[p.Node]
		if p.Node == c.self {
			host = c.host
		}
		for _, sp := range s.Spec.Spec.Ports {
			port, ok := p.Status.Ports[sp.Name]
			if !ok {
				continue
			}
			proto := sp.Protocol
			if proto == "" {
				proto = "tcp"
			}
			eps[p.Service] = append(eps[p.Service], netsvc.Endpoint{
				Service: p.Service, Port: sp.Name, Depot: p.ID, Node: p.Node, Local: p.Node == c.self,
				Addr: netip.AddrPortFrom(host, uint16(port)), Protocol: proto, Ready: true,
			})
		}
	}
	for _, e := range eps {
		slices.SortFunc(e, func(a, b netsvc.Endpoint) int { return strings.Compare(a.Depot+"/"+a.Port, b.Depot+"/"+b.Port) })
	}
	c.mu.Lock()
	c.network, c.ports, c.eps, c.restricted = tip.Name, ports, eps, restricted
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// hostOf is the address a node's depots answer on, from its advertised address.
func hostOf(addr string) netip.Addr {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		if a, err := netip.ParseAddr(h); err == nil && !a.IsUnspecified() {
			return a
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}

// Network implements netsvc.Catalog.
func (c *catalog) Network() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.network
}

// Ports implements netsvc.Catalog.
func (c *catalog) Ports() []netsvc.ServicePort {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.ports)
}

// Endpoints implements netsvc.Catalog.
func (c *catalog) Endpoints(service, port string) []netsvc.Endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []netsvc.Endpoint
	for _, e := range c.eps[service] {
		if port == "" || e.Port == port {
			out = append(out, e)
		}
	}
	return out
}

// Restricted reports whether some service limits the services its depots may reach.
func (c *catalog) Restricted() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.restricted
}

// Changed implements netsvc.Catalog.
func (c *catalog) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

var _ netsvc.Catalog = (*catalog)(nil)
