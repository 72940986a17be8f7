package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	"qnet.dev/qnet/netsvc"
)

// fakeCatalog is a Catalog whose services a test sets. Unlike a real one it hands out
// unready endpoints too, so the tests see that the server filters on Ready itself.
type fakeCatalog struct {
	network string

	mu        sync.Mutex
	ports     []netsvc.ServicePort
	endpoints []netsvc.Endpoint
	changed   chan struct{}
}

func newFakeCatalog(network string) *fakeCatalog {
	return &fakeCatalog{network: network, changed: make(chan struct{})}
}

func (c *fakeCatalog) Network() string { return c.network }

func (c *fakeCatalog) Ports() []netsvc.ServicePort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ports)
}

func (c *fakeCatalog) Endpoints(service, port string) []netsvc.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netsvc.Endpoint
	for _, e := range c.endpoints {
		if e.Service == service && (port == "" || e.Port == port) {
			out = append(out, e)
		}
	}
	return out
}

func (c *fakeCatalog) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// change runs f on the catalog's contents under its lock and signals the change.
func (c *fakeCatalog) change(f func(c *fakeCatalog)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
	close(c.changed)
	c.changed = make(chan struct{})
}

// addPort adds a port of a service.
func (c *fakeCatalog) addPort(service, port, proto, vip string, number int) {
	c.change(func(c *fakeCatalog) {
		c.ports = append(c.ports, netsvc.ServicePort{Service: service, Port: port, Protocol: proto,
			VIP: netip.MustParseAddr(vip), Number: number})
	})
}

// addEndpoint adds a replica's port.
func (c *fakeCatalog) addEndpoint(service, port, depot string, local, ready bool, addr string) {
	c.change(func(c *fakeCatalog) {
		c.endpoints = append(c.endpoints, netsvc.Endpoint{Service: service, Port: port, Depot: depot,
			Node: "node-" + strings.ToLower(depot), Local: local, Addr: netip.MustParseAddrPort(addr), Ready: ready})
	})
}

// setReady marks every endpoint of depot ready or not.
func (c *fakeCatalog) setReady(depot string, ready bool) {
	c.change(func(c *fakeCatalog) {
		for i := range c.endpoints {
			if c.endpoints[i].Depot == depot {
				c.endpoints[i].Ready = ready
			}
		}
	})
}

// testCatalog is the network most tests query:
//
//   - web: VIP 10.96.0.5, ports http (tcp 80) and metrics (tcp 9090), replicas web-a
//     (local, 127.0.0.1) and web-b (remote, 192.0.2.7) ready, web-c not ready.
//   - dns: VIP 10.96.0.6, port dns (udp 53), replica dns-a ready.
//   - idle: VIP 10.96.0.7, port http, no replica ready.
//   - six: VIP fd00::6, port http, replica six-a ready at [fd00::1:2].
func testCatalog() *fakeCatalog {
	c := newFakeCatalog("testnet")
	c.addPort("web", "http", "tcp", "10.96.0.5", 80)
	c.addPort("web", "metrics", "tcp", "10.96.0.5", 9090)
	c.addEndpoint("web", "http", "web-a", true, true, "127.0.0.1:20001")
	c.addEndpoint("web", "metrics", "web-a", true, true, "127.0.0.1:20002")
	c.addEndpoint("web", "http", "web-b", false, true, "192.0.2.7:20011")
	c.addEndpoint("web", "metrics", "web-b", false, true, "192.0.2.7:20012")
	c.addEndpoint("web", "http", "web-c", true, false, "127.0.0.1:20021")
	c.addPort("dns", "dns", "udp", "10.96.0.6", 53)
	c.addEndpoint("dns", "dns", "dns-a", true, true, "127.0.0.1:20031")
	c.addPort("idle", "http", "tcp", "10.96.0.7", 80)
	c.addEndpoint("idle", "http", "idle-a", true, false, "127.0.0.1:20041")
	c.addPort("six", "http", "", "fd00::6", 80)
	c.addEndpoint("six", "http", "six-a", true, true, "[fd00::1:2]:20051")
	return c
}
