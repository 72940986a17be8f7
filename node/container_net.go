package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"qnet.dev/qnet/driver/oci"
	"qnet.dev/qnet/driver/oci/network"
	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/state"
)

// Where the node's services answer inside a container's network namespace.
var (
	// containerDNS is the nameserver a container is given: a loopback address of its
	// own (the one Docker's embedded server uses), on port 53, the only port
	// /etc/resolv.conf can name.
	containerDNS = netip.MustParseAddrPort("127.0.0.11:53")
	// containerProxy is the address of the proxy's listener in the namespace; its
	// port is any free one.
	containerProxy = netip.MustParseAddr("127.0.0.1")
)

// containerServices offers the node's services inside the network namespace of each of
// the node's containers (it is the oci driver's Services). In each namespace it opens
// a TCP listener for the proxy and UDP and TCP sockets for the DNS server, on free
// ports of the namespace's loopback, and installs destination NAT rules there
// (network.Redirect): TCP to any VIP goes to the listener, and DNS to containerDNS to
// the DNS server's sockets. A connection the listener takes is checked against the
// depot's flows.allow and handed to the proxy's balancer for the service port it was
// dialled at (from the connection tracking of the namespace).
//
// Why this and not the alternatives:
//   - The VIPs and the node's DNS answer on the node's loopback, and 127.0.0.0/8 never
//     leaves a namespace. Routing it over the bridge takes route_localnet on the
//     bridge, which opens every service bound to the node's loopback (its API among
//     them) to every container, so a firewall must stand beside it; host NAT rules to
//     keep and clean up after crashes; and it cannot tell apart the several nodes that
//     share a machine's bridge (a testnet), each with its own proxy and DNS, whose
//     networks give their services the same VIPs.
//   - Listening on every VIP:port inside the namespace would take those ports from
//     the container: a server on :8080 could not start beside a service whose VIP
//     port is 8080.
//
// The sockets and rules here belong to the container's namespace alone: nothing on
// the node changes, they go with the namespace, and only that container can reach
// them, so a connection's depot is known for sure, without tracing sockets through
// /proc. The ports taken from the container are two free ones (like Docker's embedded
// DNS server).
type containerServices struct {
	n   *Node
	ctx context.Context // the node's: its end withdraws everything
	log *slog.Logger

	mu   sync.Mutex
	nets map[string]*containerNet // by depot ID
	done bool
}

var _ oci.Services = (*containerServices)(nil)

// containerNet is what the node serves in one container's namespace.
type containerNet struct {
	depot  string
	ctx    context.Context
	cancel context.CancelFunc
	proxy  net.Listener
	wg     sync.WaitGroup // the accept loop, its connections and the DNS server
}

func newContainerServices(ctx context.Context, n *Node) *containerServices {
	return &containerServices{n: n, ctx: ctx, log: n.log.With("part", "container-services"), nets: map[string]*containerNet{}}
}

// run withdraws every container's services when ctx ends (the node stops; the
// containers keep running, and the next start of the node offers them again).
func (s *containerServices) run(ctx context.Context) {
	<-ctx.Done()
	s.mu.Lock()
	s.done = true
	nets := s.nets
	s.nets = map[string]*containerNet{}
	s.mu.Unlock()
	for _, cn := range nets {
		cn.stop()
	}
}

// Offer implements oci.Services: it opens the sockets in the namespace of depot id,
// installs the redirects to them and starts serving them.
func (s *containerServices) Offer(ctx context.Context, id string, ep network.Endpoint) (oci.Offer, error) {
	if err := ctx.Err(); err != nil {
		return oci.Offer{}, err
	}
	s.Withdraw(id) // a restarted depot of the same ID: its old namespace is gone
	d := s.n.dns
	var (
		proxy net.Listener
		udp   net.PacketConn
		tcp   net.Listener
	)
	closeAll := func() {
		for _, c := range []io.Closer{proxy, udp, tcp} {
			if c != nil {
				c.Close()
			}
		}
	}
	err := network.InNamespace(ep.NetNS, func() error {
		var err error
		if proxy, err = net.Listen("tcp4", net.JoinHostPort(containerProxy.String(), "0")); err != nil {
			return fmt.Errorf("proxy listener: %w", err)
		}
		if d != nil {
			if udp, tcp, err = listenDNS(containerDNS.Addr()); err != nil {
				return fmt.Errorf("DNS server: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		closeAll()
		return oci.Offer{}, fmt.Errorf("the node's services in the container's network: %w", err)
	}
	r := network.Redirect{VIPs: state.VIPPrefix, Proxy: proxy.Addr().(*net.TCPAddr).AddrPort()}
	if d != nil {
		r.DNS, r.DNSTarget = containerDNS.Addr(), udp.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	if err := network.InstallRedirect(ep.NetNS, r); err != nil {
		// A kernel without nftables NAT: the container runs, as it would on a node
		// without these services, rather than not at all.
		closeAll()
		s.log.Warn("the container cannot reach the node's services (VIPs, DNS): its network takes no redirect", "depot", id, "err", err)
		return oci.Offer{}, nil
	}

	cctx, cancel := context.WithCancel(s.ctx)
	cn := &containerNet{depot: id, ctx: cctx, cancel: cancel, proxy: proxy}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		cancel()
		closeAll()
		return oci.Offer{}, errors.New("the node is stopping")
	}
	s.nets[id] = cn
	s.mu.Unlock()
	cn.wg.Go(func() { s.accept(cn) })
	var offer oci.Offer
	if d != nil {
		cn.wg.Go(func() {
			if err := d.ServeOn(cctx, udp, tcp); err != nil && cctx.Err() == nil {
				s.log.Warn("DNS server in a container's network stopped", "depot", id, "err", err)
			}
		})
		offer = oci.Offer{DNS: containerDNS, Search: []string{s.n.catalog.Network() + ".qnet"}}
	}
	return offer, nil
}

// listenDNS opens UDP and TCP sockets on the same free port of addr.
func listenDNS(addr netip.Addr) (net.PacketConn, net.Listener, error) {
	const attempts = 10
	for i := 0; ; i++ {
		udp, err := net.ListenPacket("udp4", net.JoinHostPort(addr.String(), "0"))
		if err != nil {
			return nil, nil, err
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp4", net.JoinHostPort(addr.String(), strconv.Itoa(port)))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if i == attempts-1 {
			return nil, nil, err
		}
	}
}

// Withdraw implements oci.Services: it closes every socket and connection of depot
// id's namespace and waits for their goroutines. The redirect rules stay with the
// namespace, which is about to go (or is given new ones by the next Offer).
func (s *containerServices) Withdraw(id string) {
	s.mu.Lock()
	cn := s.nets[id]
	delete(s.nets, id)
	s.mu.Unlock()
	if cn != nil {
		cn.stop()
	}
}

// stop closes cn's sockets, ends its connections and waits for its goroutines.
func (cn *containerNet) stop() {
	cn.cancel() // ends the DNS server, which closes its sockets, and the connections
	cn.proxy.Close()
	cn.wg.Wait()
}

// accept serves the connections of a container's proxy listener until it is closed.
func (s *containerServices) accept(cn *containerNet) {
	for {
		c, err := cn.proxy.Accept()
		if err != nil {
			var ne net.Error
			if cn.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed: the container is going, or the node stopping
		}
		cn.wg.Go(func() { s.serve(cn, c.(*net.TCPConn)) })
	}
}

// serve proxies one connection of depot cn.depot: to the service port whose VIP and
// port it dialled, refused when the depot's flows.allow does not list the service,
// otherwise to a ready replica the proxy's balancer picks (on this node or through a
// tunnel). A connection to no service port is reset, as the node's loopback would.
func (s *containerServices) serve(cn *containerNet, c *net.TCPConn) {
	defer c.Close()
	dst, err := network.OriginalDest(c)
	sp, ok := netsvc.ServicePort{}, false
	if err == nil {
		sp, ok = s.servicePort(dst)
	}
	if !ok {
		c.SetLinger(0)
		s.log.Debug("connection from a container to no service port", "depot", cn.depot, "to", dst, "err", err)
		return
	}
	allow := func() error { return s.n.checkContainerFlow(cn.depot, sp) }
	if err := s.n.proxy.ServeConn(cn.ctx, sp, c, allow); err != nil {
		s.log.Debug("connection from a container closed", "depot", cn.depot, "service", sp.Service, "port", sp.Port, "err", err)
	}
}

// servicePort finds the TCP service port at a VIP and port.
func (s *containerServices) servicePort(dst netip.AddrPort) (netsvc.ServicePort, bool) {
	for _, sp := range s.n.catalog.Ports() {
		if sp.VIP == dst.Addr() && sp.Number == int(dst.Port()) && (sp.Protocol == "tcp" || sp.Protocol == "") {
			return sp, true
		}
	}
	return netsvc.ServicePort{}, false
}
