// Package dns is the DNS server every QNet node runs, so that depots (and anything else
// on the node) find services by name. It answers for the zone NETWORK.qnet., where
// NETWORK is the network's name; names match case-insensitively.
//
// The names answered:
//
//   - SERVICE.NETWORK.qnet. A or AAAA: the service's VIP, its stable address that is
//     the same on every node. The VIP is answered only while the service has at least
//     one ready replica; otherwise the answer is NODATA (no records, the zone's SOA in
//     authority) so that a client fails fast instead of connecting to nothing. An
//     unknown service is NXDOMAIN.
//   - _PORT._tcp.SERVICE.NETWORK.qnet. SRV (_udp for udp ports): one record per ready
//     replica of that port, its target DEPOT.SERVICE.NETWORK.qnet. and its port the
//     replica's host port; the additional section holds the targets' addresses.
//     SERVICE.NETWORK.qnet. SRV gives the same for every port of the service.
//   - DEPOT.SERVICE.NETWORK.qnet. A or AAAA: the host address of a ready replica; a
//     replica that is not ready is NXDOMAIN.
//
// Why A gives the VIP and not the replicas' addresses: a replica's address is
// reachable only from its own node; replicas on other nodes are reached through the
// node's proxy, which carries the connection through a tunnel to the replica's node.
// The VIP lands on that proxy on every node, so a client that only knows how to
// resolve a name and connect works wherever the replicas run. Clients that want to
// pick replicas themselves ask SRV, whose depot A records give each replica's address:
// local replicas (SRV priority 0) can be dialled directly, remote ones (priority 1)
// only where their node's network is reachable.
//
// Names outside .qnet. are forwarded to the configured upstream resolvers, or refused
// when there are none. The answers are built afresh from the Catalog on every query,
// so a replica that stops being ready leaves the answers at once; the short TTL keeps
// caches from holding it for long.
package dns
