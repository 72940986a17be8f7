package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/netsvc/dgram"
)

// dnsPort is the udp service port the UDP tests use.
var dnsPort = netsvc.ServicePort{Service: "dns", Port: "dns", Protocol: "udp", VIP: netip.MustParseAddr("10.99.0.2"), Number: 53}

// udpBackend is a real UDP server that answers each datagram with its name, a space
// and the datagram.
type udpBackend struct {
	name string
	pc   net.PacketConn
	done chan struct{}
}

func newUDPBackend(t testing.TB, name string) *udpBackend {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("UDP backend %s: %v", name, err)
	}
	b := &udpBackend{name: name, pc: pc, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-b.done
	})
	return b
}

// endpoint returns the backend as a ready endpoint of dnsPort.
func (b *udpBackend) endpoint(local bool) netsvc.Endpoint {
	return netsvc.Endpoint{Service: dnsPort.Service, Port: dnsPort.Port, Depot: b.name, Node: "node-" + b.name, Local: local,
		Addr: b.pc.LocalAddr().(*net.UDPAddr).AddrPort(), Protocol: "udp", Ready: true}
}

// dialTunnelled is what a node does for a remote udp endpoint, on one host: a TCP
// stream stands for the tunnel, its far end turns frames into datagrams to addr and
// back (as Node.serveSvc does), and the near end is framed by dgram.Conn.
func dialTunnelled(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	var d net.Dialer
	near, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	far, err := ln.Accept()
	if err != nil {
		near.Close()
		return nil, err
	}
	replica, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		near.Close()
		far.Close()
		return nil, err
	}
	stream := dgram.NewConn(far)
	go func() { // frames to datagrams, until the near end ends its side
		buf := make([]byte, dgram.MaxPayload)
		for {
			n, err := stream.Read(buf)
			if err != nil {
				replica.Close()
				return
			}
			replica.Write(buf[:n])
		}
	}()
	go func() { // datagrams to frames, until the replica's socket is closed
		buf := make([]byte, dgram.MaxPayload)
		for {
			n, err := replica.Read(buf)
			if err != nil {
				stream.CloseWrite()
				stream.Close()
				return
			}
			if _, err := stream.Write(buf[:n]); err != nil {
				replica.Close()
			}
		}
	}()
	return dgram.NewConn(near), nil
}

// udpClient is a client socket that talks to the proxy's udp port.
type udpClient struct {
	net.Conn
}

func dialUDP(t testing.TB, addr string) *udpClient {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{c}
}

// ask sends msg until an answer comes (UDP may drop the first datagrams while the
// session dials), and returns the answering backend's name.
func (c *udpClient) ask(msg string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // resend interval
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return "", err
		}
		name, got, _ := strings.Cut(string(buf[:n]), " ")
		if got != msg {
			return "", fmt.Errorf("answer %q to %q: not its own", buf[:n], msg)
		}
		return name, nil
	}
	return "", fmt.Errorf("no answer to %q in 10s", msg)
}

// silent reports an error when an answer comes to msg within d.
func (c *udpClient) silent(msg string, d time.Duration) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err == nil {
		return fmt.Errorf("got answer %q, want none", buf[:n])
	}
	return nil
}

func TestUDPSessions(t *testing.T) {
	a, b := newUDPBackend(t, "a"), newUDPBackend(t, "b")
	d := newDialer()
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true), b.endpoint(true)), Dialer: d})
	addr := r.addr(t, "dns", "dns")

	const clients = 6
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := dialUDP(t, addr)
		wg.Go(func() {
			var first string
			for j := range 5 {
				name, err := c.ask(fmt.Sprintf("client %d message %d", i, j))
				if err != nil {
					errs <- err
					return
				}
				if first == "" {
					first = name
				} else if name != first {
					errs <- fmt.Errorf("client %d: answered by %s, then by %s: want one backend per session", i, first, name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ps := r.port("dns", "dns")
	if ps.Protocol != "udp" || ps.Accepted != clients {
		t.Errorf("port stats %+v: want protocol udp and %d sessions accepted", ps, clients)
	}
	if got := d.count("a") + d.count("b"); got != clients {
		t.Errorf("%d dials for %d sessions, want one each", got, clients)
	}
	if d.count("a") == 0 || d.count("b") == 0 {
		t.Errorf("dials a=%d b=%d: want the sessions spread over both", d.count("a"), d.count("b"))
	}
}

func TestUDPRemoteEndpoint(t *testing.T) {
	far := newUDPBackend(t, "far")
	d := newDialer()
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, far.endpoint(false)), Dialer: d})
	c := dialUDP(t, r.addr(t, "dns", "dns"))
	for i := range 3 {
		name, err := c.ask(fmt.Sprintf("through the tunnel %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if name != "far" {
			t.Fatalf("answered by %s", name)
		}
	}
	// A datagram as large as UDP allows goes through the framing whole.
	big := strings.Repeat("z", dgram.MaxPayload-len("far "))
	if _, err := c.ask(big); err != nil {
		t.Fatal(err)
	}
	if d.remoteCount() != 1 {
		t.Fatalf("%d remote dials, want 1 for the one session", d.remoteCount())
	}
}

func TestUDPIdleSessionEnds(t *testing.T) {
	a := newUDPBackend(t, "a")
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true)), Dialer: newDialer(),
		UDPIdleTimeout: 50 * time.Millisecond})
	c := dialUDP(t, r.addr(t, "dns", "dns"))
	if _, err := c.ask("hello"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle session to end", func() bool { return r.endpoint("a").Active == 0 })
	// The client's next datagram starts a new session.
	if _, err := c.ask("again"); err != nil {
		t.Fatal(err)
	}
	if ps := r.port("dns", "dns"); ps.Accepted != 2 {
		t.Fatalf("%d sessions accepted, want 2 (one ended idle)", ps.Accepted)
	}
}

func TestUDPSessionEndsWhenEndpointLeaves(t *testing.T) {
	a, b := newUDPBackend(t, "a"), newUDPBackend(t, "b")
	cat := newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true))
	r := start(t, Config{Catalog: cat, Dialer: newDialer(), DrainGrace: 20 * time.Millisecond})
	c := dialUDP(t, r.addr(t, "dns", "dns"))
	if name, err := c.ask("before"); err != nil || name != "a" {
		t.Fatalf("ask = %s, %v; want a", name, err)
	}
	cat.setEndpoints(b.endpoint(true))
	waitFor(t, "the session to drain", func() bool {
		return r.port("dns", "dns").Drained == 1 && r.endpoint("a").Active == 0
	})
	// The session is gone: the same client now gets the endpoint that is left.
	if name, err := c.ask("after"); err != nil || name != "b" {
		t.Fatalf("ask = %s, %v; want b", name, err)
	}
}

func TestUDPSessionLimit(t *testing.T) {
	a := newUDPBackend(t, "a")
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true)), Dialer: newDialer(), MaxUDPSessions: 1})
	addr := r.addr(t, "dns", "dns")
	first, second := dialUDP(t, addr), dialUDP(t, addr)
	if _, err := first.ask("one"); err != nil {
		t.Fatal(err)
	}
	if err := second.silent("two", 100*time.Millisecond); err != nil {
		t.Fatalf("second client over the limit: %v", err)
	}
	if ps := r.port("dns", "dns"); ps.OverLimit == 0 || ps.Accepted != 1 {
		t.Fatalf("port stats %+v: want the second client's datagram dropped and counted", ps)
	}
	if _, err := first.ask("still here"); err != nil {
		t.Fatalf("first client after the limit was hit: %v", err)
	}
}

func TestUDPFlowRefused(t *testing.T) {
	a := newUDPBackend(t, "a")
	d := newDialer()
	var asked []netsvc.ServicePort
	var mu sync.Mutex
	flows := func(from netip.AddrPort, sp netsvc.ServicePort) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, sp)
		return errors.New("not in flows.allow")
	}
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true)), Dialer: d, Flows: flows})
	c := dialUDP(t, r.addr(t, "dns", "dns"))
	for i := range 3 {
		if err := c.silent(fmt.Sprint("refused ", i), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the datagrams counted as dropped", func() bool { return r.port("dns", "dns").Dropped == 3 })
	ps := r.port("dns", "dns")
	mu.Lock()
	defer mu.Unlock()
	if ps.Refused != 1 || len(asked) != 1 || asked[0].Protocol != "udp" {
		t.Fatalf("refused %d, policy asked %v: want one udp session refused once", ps.Refused, asked)
	}
	if d.count("a") != 0 {
		t.Fatal("a refused session dialled its endpoint")
	}
}

// TestUDPStopEndsSessions: stopping the proxy ends open sessions (the leak check of
// TestMain fails the run if a session's goroutine outlives Run).
func TestUDPStopEndsSessions(t *testing.T) {
	a := newUDPBackend(t, "a")
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{dnsPort}, a.endpoint(true)), Dialer: newDialer()})
	c := dialUDP(t, r.addr(t, "dns", "dns"))
	if _, err := c.ask("open"); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	if r.endpoint("a").Active != 0 {
		t.Fatalf("endpoint a still has %d sessions after Run returned", r.endpoint("a").Active)
	}
}
