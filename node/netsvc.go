package node

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/netsvc/dgram"
	"qnet.dev/qnet/netsvc/dns"
	"qnet.dev/qnet/netsvc/proxy"
	"qnet.dev/qnet/netsvc/receipt"
)

// svcStream is the mesh service that carries a connection to a replica on another
// node: the proxy of the node the client is on opens a stream to the node that runs
// the replica, which dials it locally.
const svcStream = "svc"

// svcHello opens a svc stream: which replica's port the stream is for. Protocol is
// "udp" for a udp port, whose datagrams the stream carries as dgram frames, and empty
// for a tcp one (as nodes that know no UDP send it).
type svcHello struct {
	Service  string `json:"service"`
	Port     string `json:"port"`
	Depot    string `json:"depot"`
	Protocol string `json:"protocol,omitempty"`
}

// maxSvcHello bounds the opening line of a svc stream.
const maxSvcHello = 4 << 10

// startNetServices starts the catalog, the proxy and the DNS server; their goroutines
// end with ctx and are waited for by n.wg.
func (n *Node) startNetServices(ctx context.Context) error {
	n.catalog = newCatalog(n.store, n.id, n.cfg.Host)
	n.catalog.rebuild()
	n.wg.Go(func() { n.catalog.run(ctx) })
	n.mesh.Handle(svcStream, false, n.serveSvc)
	n.mesh.HandleRPC("receipts", false, n.serveReceipts)
	if err := n.openReceipts(); err != nil {
		return err
	}
	n.wg.Go(func() { n.commitReceipts(ctx) })

	// The ingress dials services through the proxy too (Proxy.DialService): one
	// balancer sees all of the node's connections to a service.
	pcfg := proxy.Config{Catalog: n.catalog, Dialer: n, Logger: n.log.With("part", "proxy"), Listen: listenShared,
		ListenPacket: listenPacketShared, Flows: n.checkFlow, UDPIdleTimeout: n.cfg.UDPIdleTimeout}
	if n.cfg.ProxyBind != nil {
		pcfg.Bind = n.cfg.ProxyBind
	}
	p, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	n.proxy = p
	n.wg.Go(func() {
		if err := p.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("proxy stopped", "err", err)
		}
	})

	if n.cfg.DNSAddr != "" {
		d, err := dns.New(dns.Config{Catalog: n.catalog, Addr: n.cfg.DNSAddr, Logger: n.log.With("part", "dns"),
			Upstream: hostResolvers(hostResolvConf, n.cfg.DNSAddr, n.log)})
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		n.dns = d
		n.wg.Go(func() {
			if err := d.Serve(ctx); err != nil {
				n.log.Error("DNS server stopped", "err", err)
			}
		})
	}
	if n.oci != nil {
		// Containers cannot reach the node's loopback, where the VIPs and the DNS
		// server answer: the node serves them inside each container's namespace.
		cs := newContainerServices(ctx, n)
		n.wg.Go(func() { cs.run(ctx) })
		n.oci.SetServices(cs)
	}
	if err := n.startIngress(ctx); err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	return nil
}

// hostResolvConf is the node's resolver configuration, whose servers the node's DNS
// server forwards names outside .qnet to.
const hostResolvConf = "/etc/resolv.conf"

// hostResolvers returns the name servers of the resolv.conf at path as host:port, less
// the node's own DNS address (self), so that containers, whose resolv.conf names the
// node's DNS server alone, resolve other names as the node does. None when the file
// cannot be read: such names are then refused.
func hostResolvers(path, self string, log *slog.Logger) []string {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		log.Debug("DNS: no upstream resolvers", "file", path, "err", err)
		return nil
	}
	selfHost, selfPort, _ := net.SplitHostPort(self)
	selfIP, _ := netip.ParseAddr(selfHost)
	var out []string
	for _, srv := range cc.Servers {
		if cc.Port == selfPort {
			// Itself (a query would go round forever): the same address, or any when
			// the node listens on all of them.
			ip, _ := netip.ParseAddr(srv)
			if srv == selfHost || selfHost == "" || selfIP.IsUnspecified() || (ip.IsValid() && ip.Unmap() == selfIP.Unmap()) {
				continue
			}
		}
		out = append(out, net.JoinHostPort(srv, cc.Port))
	}
	return out
}

// DialEndpoint implements netsvc.Dialer: a local replica directly, a remote one through
// a stream of the tunnel to its node. For a udp endpoint, the connection to a local
// replica is a connected UDP socket, and the stream to a remote one carries dgram
// frames, under the receipt layer.
func (n *Node) DialEndpoint(ctx context.Context, e netsvc.Endpoint) (net.Conn, error) {
	udp := e.Protocol == "udp"
	if e.Local {
		network := "tcp"
		if udp {
			network = "udp"
		}
		var d net.Dialer
		return d.DialContext(ctx, network, e.Addr.String())
	}
	conn, err := n.mesh.Open(ctx, e.Node, svcStream)
	if err != nil {
		return nil, fmt.Errorf("tunnel to node %s: %w", e.Node, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	h := svcHello{Service: e.Service, Port: e.Port, Depot: e.Depot}
	if udp {
		h.Protocol = "udp"
	}
	hello, _ := json.Marshal(h)
	br := bufio.NewReader(conn)
	if _, err := conn.Write(append(hello, '\n')); err == nil {
		var line string
		if line, err = br.ReadString('\n'); err == nil {
			if line = strings.TrimSpace(line); line != "ok" {
				err = errors.New(strings.TrimPrefix(line, "error: "))
			}
		}
		if err == nil {
			var cfg receipt.Config
			var rc *receipt.Conn
			if cfg, err = n.receiptConfig(e.Node); err == nil {
				// Every byte of the flow is counted and hashed both ways, and the two
				// ends co-sign its receipt when it closes.
				rc, err = receipt.WrapDialer(ctx, &bufferedConn{Conn: conn, r: br}, cfg, receipt.Target{Service: e.Service, Port: e.Port, Depot: e.Depot})
			}
			if err == nil {
				conn.SetDeadline(time.Time{})
				fc := &flowConn{Conn: rc, n: n}
				if udp {
					return dgram.NewConn(fc), nil
				}
				return fc, nil
			}
		}
	}
	conn.Close()
	return nil, fmt.Errorf("replica %s on node %s: %w", e.Depot, e.Node, err)
}

// serveSvc takes a svc stream from another node's proxy: it checks that the replica
// runs here and is ready, dials it and splices the two.
func (n *Node) serveSvc(ctx context.Context, conn net.Conn, peer mesh.Peer) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, maxSvcHello) // ReadSlice fails on a longer line
	line, err := br.ReadSlice('\n')
	var h svcHello
	if err == nil {
		err = json.Unmarshal(line, &h)
	}
	if err != nil {
		fmt.Fprintf(conn, "error: bad stream opening: %v\n", err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	target := n.localEndpoint(ctx, h)
	if target == nil || cmp.Or(target.Protocol, "tcp") != cmp.Or(h.Protocol, "tcp") {
		reason := fmt.Sprintf("no ready replica %s of %s (port %s) on node %s", h.Depot, h.Service, h.Port, n.id)
		if target != nil {
			reason = fmt.Sprintf("port %s of %s is %s here, not %s", h.Port, h.Service, cmp.Or(target.Protocol, "tcp"), cmp.Or(h.Protocol, "tcp"))
		}
		rf := receipt.Refusal{Node: n.id, FromNode: peer.NodeID, ToService: h.Service, ToPort: h.Port, At: time.Now().UTC(), Reason: reason}
		if err := n.receipts.AppendRefusal(rf); err != nil {
			n.log.Warn("refused flow not recorded", "err", err)
		}
		fmt.Fprintf(conn, "error: %s\n", reason)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	backend, err := n.DialEndpoint(dctx, *target)
	cancel()
	if err != nil {
		fmt.Fprintf(conn, "error: %v\n", err)
		return
	}
	defer backend.Close()
	if _, err := io.WriteString(conn, "ok\n"); err != nil {
		return
	}
	cfg, err := n.receiptConfig(peer.NodeID)
	if err != nil {
		return
	}
	cfg.PeerKey = peer.Key // as the tunnel's handshake proved it
	// What the peer sent after its opening line is in br's buffer.
	rc, err := receipt.WrapAcceptor(ctx, &bufferedConn{Conn: conn, r: br}, cfg)
	if err != nil {
		n.log.Warn("flow refused: bad opening", "peer", peer.NodeID, "err", err)
		return
	}
	if h.Protocol == "udp" {
		relayDatagrams(ctx, dgram.NewConn(rc), backend)
	} else {
		splice(ctx, rc, backend)
	}
	n.keep(rc)
}

// relayDatagrams carries frames from stream to datagrams on replica (a connected UDP
// socket) and back, until the stream's far end ends its side or ctx ends; then it
// closes replica and ends the stream's sending side, so the flow's receipt counts
// every byte either way.
func relayDatagrams(ctx context.Context, stream *dgram.Conn, replica net.Conn) {
	stop := context.AfterFunc(ctx, func() {
		stream.SetDeadline(time.Now()) // frees a Read and a Write held up by the tunnel
		replica.Close()
	})
	defer stop()
	toStream := make(chan struct{})
	go func() { // owned by relayDatagrams, which waits for it
		defer close(toStream)
		buf := make([]byte, dgram.MaxPayload)
		for {
			n, err := replica.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP refusal of an earlier datagram: that one was lost
			}
			if err != nil {
				return // replica closed below
			}
			if _, err := stream.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, dgram.MaxPayload)
	for {
		n, err := stream.Read(buf)
		if err != nil {
			break // the far end's END, or a broken stream
		}
		// A replica that is not listening (yet) refuses with ICMP, which fails a later
		// Write on a connected socket: datagrams are dropped, the session goes on.
		replica.Write(buf[:n])
	}
	replica.Close()
	<-toStream
	stream.CloseWrite()
}

// localEndpoint finds the ready replica a svc stream asks for. The asking node may have
// applied the block that made it ready a moment before this one: a replica not (yet)
// ready here is waited for, briefly.
func (n *Node) localEndpoint(ctx context.Context, h svcHello) *netsvc.Endpoint {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		changed := n.catalog.Changed()
		for _, e := range n.catalog.Endpoints(h.Service, h.Port) {
			if e.Depot == h.Depot && e.Local {
				return &e
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// bufferedConn is a conn whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite passes a half-close on when the conn can do one.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// splice copies both ways until both directions ended (or ctx ends), passing each
// half-close on.
func splice(ctx context.Context, a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	for left := 2; left > 0; left-- {
		select {
		case <-done:
		case <-ctx.Done():
			// Close alone half-closes a tunnel stream; a past deadline ends its reads.
			now := time.Now()
			a.SetDeadline(now)
			b.SetDeadline(now)
			a.Close()
			b.Close()
			for ; left > 0; left-- {
				<-done
			}
			return
		}
	}
}

// Catalog returns the node's view of the network's services and ready replicas.
func (n *Node) Catalog() netsvc.Catalog { return n.catalog }

// Proxy returns the node's service proxy.
func (n *Node) Proxy() *proxy.Proxy { return n.proxy }

// DNSAddr returns where the node answers DNS ("" when it does not).
func (n *Node) DNSAddr() string {
	if n.dns == nil {
		return ""
	}
	return n.dns.Addr()
}
