// Package network gives each container of the oci driver a network of its own that the
// node can reach: a network namespace per container, joined to the node by a veth
// pair whose host end is attached to a bridge (qnet0, 10.88.0.0/16 by default), with an
// address of the bridge's subnet leased per container and a default route through the
// bridge's address. The host ports the agent assigns reach a container through
// Forward, a userspace TCP forwarder (see its comment for why not DNAT).
//
// Leases are files, one per address, shared by every agent on the machine that uses
// the same bridge (LeaseDir), so two agents never hand out one address; a lease whose
// namespace is gone (the agent was killed, the machine rebooted) is taken over.
//
// Containers reach the node (the bridge's address) and each other; traffic beyond the
// node is not routed or masqueraded, so a container has no way out to other networks
// unless the operator adds NAT on the bridge. The node's services (the VIPs and the
// DNS server, on the node's loopback) are served inside each namespace instead: the
// node opens sockets there (InNamespace) and the namespace's own nftables rules send
// the container's connections to them (Redirect, InstallRedirect, OriginalDest).
package network

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Defaults of Config.
const (
	DefaultBridge = "qnet0"
	DefaultSubnet = "10.88.0.0/16"
)

// Config says which bridge and subnet the node's containers use and where the
// network's state is kept.
type Config struct {
	// Bridge is the name of the host's bridge (created if missing).
	Bridge string
	// Subnet is the containers' IPv4 subnet; its first address is the bridge's (the
	// containers' gateway).
	Subnet netip.Prefix
	// NetnsDir holds one file per container, on which its network namespace is
	// mounted. It must survive agent restarts.
	NetnsDir string
	// LeaseDir holds the address leases; agents that share Bridge must share it.
	LeaseDir string
}

// DefaultConfig returns the default bridge and subnet, with network namespaces in
// netnsDir and the machine-wide leases of the default bridge in /run/qnet.
func DefaultConfig(netnsDir string) Config {
	return Config{
		Bridge:   DefaultBridge,
		Subnet:   netip.MustParsePrefix(DefaultSubnet),
		NetnsDir: netnsDir,
		LeaseDir: "/run/qnet/" + DefaultBridge + "-leases",
	}
}

var ifName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// Validate reports the first bad field of c.
func (c Config) Validate() error {
	switch {
	case !ifName.MatchString(c.Bridge):
		return fmt.Errorf("network: bridge %q: want 1 to 15 characters of [A-Za-z0-9_.-]", c.Bridge)
	case !c.Subnet.IsValid() || !c.Subnet.Addr().Is4():
		return fmt.Errorf("network: subnet %v: want an IPv4 prefix such as %s", c.Subnet, DefaultSubnet)
	case c.Subnet.Bits() < 8 || c.Subnet.Bits() > 29:
		return fmt.Errorf("network: subnet %v: want a prefix length from /8 to /29", c.Subnet)
	case c.Subnet.Masked() != c.Subnet:
		return fmt.Errorf("network: subnet %v has host bits set: want %v", c.Subnet, c.Subnet.Masked())
	case c.NetnsDir == "":
		return errors.New("network: NetnsDir is empty: want a directory that survives agent restarts")
	case c.LeaseDir == "":
		return errors.New("network: LeaseDir is empty: want a directory shared by the agents on this machine")
	}
	return nil
}

// Gateway returns the bridge's address, the containers' default gateway.
func (c Config) Gateway() netip.Addr { return c.Subnet.Addr().Next() }

// Endpoint is one container's attachment to the network. It is plain data, stored
// with the depot so that a restarted agent can detach it.
type Endpoint struct {
	ID string `json:"id"`
	// NetNS is the file the namespace is mounted on; the container joins it by path.
	NetNS string `json:"netns"`
	// HostVeth is the host end of the veth pair, attached to the bridge.
	HostVeth string `json:"hostVeth"`
	// Addr is the container's address with the subnet's length (10.88.0.7/16).
	Addr    netip.Prefix `json:"addr"`
	Gateway netip.Addr   `json:"gateway"`
	// Lease is the lease file of Addr.
	Lease string `json:"lease"`
}

// Redirect says where a container's connections to the node's services go inside its
// namespace. The node cannot answer them where the node's own processes reach them,
// on the node's loopback, which no packet leaves a namespace for; nor can it listen on
// every VIP:port in the container's namespace, since a listener there would take the
// port from the container (a server on :8080 could not start beside a service whose
// VIP port is 8080). So its listeners sit on ports of their own in the namespace, and
// destination NAT rules of the namespace (InstallRedirect) send the connections to
// them; the proxy learns what was dialled from OriginalDest.
type Redirect struct {
	// VIPs are the services' stable addresses: TCP to any of them goes to Proxy.
	VIPs netip.Prefix
	// Proxy is the node's listener for them, on the namespace's loopback.
	Proxy netip.AddrPort
	// DNS is the nameserver address containers are given: UDP and TCP to its port 53
	// go to DNSTarget, where the node's DNS server answers. Zero for no DNS.
	DNS       netip.Addr
	DNSTarget netip.AddrPort
}

// Validate reports the first bad field of r.
func (r Redirect) Validate() error {
	switch {
	case !r.VIPs.IsValid() || !r.VIPs.Addr().Is4():
		return fmt.Errorf("network: redirect VIPs %v: want an IPv4 prefix such as 127.64.0.0/10", r.VIPs)
	case !r.Proxy.IsValid() || !r.Proxy.Addr().Is4() || r.Proxy.Port() == 0:
		return fmt.Errorf("network: redirect proxy %v: want an IPv4 address and port", r.Proxy)
	case r.DNS.IsValid() && !r.DNS.Is4():
		return fmt.Errorf("network: redirect DNS %v: want an IPv4 address", r.DNS)
	case r.DNS.IsValid() && (!r.DNSTarget.IsValid() || !r.DNSTarget.Addr().Is4() || r.DNSTarget.Port() == 0):
		return fmt.Errorf("network: redirect DNS target %v: want an IPv4 address and port", r.DNSTarget)
	}
	return nil
}
