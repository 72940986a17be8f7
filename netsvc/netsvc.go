// Package netsvc holds what the network services of a node share: the endpoints of
// services as the ledger and the nodes' reports have them. Its subpackages answer DNS
// (dns), proxy and balance connections to a service's ready replicas (proxy), take
// traffic from outside on every node (ingress), account for every byte that crosses
// between nodes (receipt) and carry UDP datagrams over the tunnels' streams (dgram).
package netsvc

import (
	"context"
	"net"
	"net/netip"
)

// Endpoint is one ready replica's port of a service: where a connection to that port
// of the service can go.
type Endpoint struct {
	// Service is the service's name; Port the port's name in its spec.ports.
	Service string
	Port    string
	// Depot is the replica's depot (placement) ID, unique in the network.
	Depot string
	// Node is the ID of the node that runs the replica.
	Node string
	// Local reports whether the replica runs on this node.
	Local bool
	// Addr is where the replica answers on its own node (host and host port), which
	// only that node can reach: other nodes go through a tunnel to that node.
	Addr netip.AddrPort
	// Protocol is the port's protocol, tcp or udp ("" is tcp): a Dialer opens a
	// stream to a tcp endpoint and a connected datagram socket (one Read, one
	// datagram) to a udp one.
	Protocol string
	// Ready is always true for endpoints a Catalog hands out; it is here for the
	// builders that see unready ones too.
	Ready bool
}

// ServicePort is a port of a service as the network offers it: its stable address on
// every node.
type ServicePort struct {
	Service  string
	Port     string
	Protocol string // tcp or udp
	// VIP is the service's stable address, the same on every node; Number its port.
	VIP    netip.Addr
	Number int
	// Expose reports whether the port answers on every node's ingress.
	Expose bool
}

// Catalog is the network's services and their ready endpoints as this node sees them.
// Implementations are safe for concurrent use.
type Catalog interface {
	// Network is the network's name, the second label of SERVICE.NETWORK.qnet.
	Network() string
	// Ports returns every port of every service.
	Ports() []ServicePort
	// Endpoints returns the ready endpoints of a service's port; port "" means all
	// its ports.
	Endpoints(service, port string) []Endpoint
	// Changed returns a channel closed at the next change of the catalog.
	Changed() <-chan struct{}
}

// Dialer opens connections to endpoints: directly to a local one, through a tunnel to
// the node of a remote one. A connection to a udp endpoint carries datagrams: each
// Write sends one, each Read returns one (see package dgram for how a tunnel carries
// them).
type Dialer interface {
	DialEndpoint(ctx context.Context, e Endpoint) (net.Conn, error)
}
