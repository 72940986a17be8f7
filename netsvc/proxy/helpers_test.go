package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"qnet.dev/qnet/internal/leakcheck"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"qnet.dev/qnet/netsvc"
)

// TestMain fails the run if goroutines of the package outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m, "netsvc/proxy.") }

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	const d = 10 * time.Second
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval
	}
}

// quiet is a logger for tests; set PROXY_TEST_LOG to see its lines.
func quiet() *slog.Logger {
	if os.Getenv("PROXY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeCatalog is a Catalog the test sets at will.
type fakeCatalog struct {
	mu    sync.Mutex
	ports []netsvc.ServicePort
	eps   []netsvc.Endpoint
	ch    chan struct{}
}

func newCatalog(ports []netsvc.ServicePort, eps ...netsvc.Endpoint) *fakeCatalog {
	return &fakeCatalog{ports: ports, eps: eps, ch: make(chan struct{})}
}

func (c *fakeCatalog) Network() string { return "testnet" }

func (c *fakeCatalog) Ports() []netsvc.ServicePort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]netsvc.ServicePort(nil), c.ports...)
}

func (c *fakeCatalog) Endpoints(service, port string) []netsvc.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netsvc.Endpoint
	for _, e := range c.eps {
		if e.Service == service && (port == "" || e.Port == port) {
			out = append(out, e)
		}
	}
	return out
}

func (c *fakeCatalog) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// set replaces the catalog's contents and wakes its watchers.
func (c *fakeCatalog) set(ports []netsvc.ServicePort, eps ...netsvc.Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ports, c.eps = ports, eps
	close(c.ch)
	c.ch = make(chan struct{})
}

// setEndpoints replaces the endpoints only.
func (c *fakeCatalog) setEndpoints(eps ...netsvc.Endpoint) { c.set(c.Ports(), eps...) }

// webPort is the service port most tests use.
var webPort = netsvc.ServicePort{Service: "web", Port: "http", Protocol: "tcp", VIP: netip.MustParseAddr("10.99.0.1"), Number: 80}

// backend is a real TCP server: it greets each connection with its name and a
// newline, then echoes what it reads until the client half-closes, then closes.
type backend struct {
	name     string
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &backend{name: name, ln: ln}
	b.wg.Go(b.serve)
	t.Cleanup(b.close)
	return b
}

func (b *backend) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accepted.Add(1)
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		b.wg.Go(func() {
			defer c.Close()
			if _, err := io.WriteString(c, b.name+"\n"); err != nil {
				return
			}
			io.Copy(c, c)
		})
	}
}

func (b *backend) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *backend) addr() netip.AddrPort {
	return b.ln.Addr().(*net.TCPAddr).AddrPort()
}

// endpoint returns the backend as a ready endpoint of webPort.
func (b *backend) endpoint(local bool) netsvc.Endpoint {
	return netsvc.Endpoint{Service: webPort.Service, Port: webPort.Port, Depot: b.name, Node: "node-" + b.name, Local: local, Addr: b.addr(), Ready: true}
}

// dialer dials Endpoint.Addr directly and counts dials per depot, remote dials apart
// (a remote endpoint would go through a tunnel). It can fail the dials of chosen
// depots, and make them slow: a delay moves the fake clock that the proxy's balancer
// reads, so the proxy measures it without the test waiting for it.
type dialer struct {
	mu     sync.Mutex
	dials  map[string]int
	remote int
	fail   map[string]error
	delay  map[string]time.Duration
	clock  *clock
}

func newDialer() *dialer {
	return &dialer{dials: map[string]int{}, fail: map[string]error{}, delay: map[string]time.Duration{}}
}

func (d *dialer) DialEndpoint(ctx context.Context, e netsvc.Endpoint) (net.Conn, error) {
	d.mu.Lock()
	d.dials[e.Depot]++
	if !e.Local {
		d.remote++
	}
	err, delay := d.fail[e.Depot], d.delay[e.Depot]
	d.mu.Unlock()
	if delay > 0 {
		d.clock.advance(delay) // a slow network path to this endpoint
	}
	if err != nil {
		return nil, err
	}
	if e.Protocol == "udp" && !e.Local {
		return dialTunnelled(ctx, e.Addr)
	}
	network := "tcp"
	if e.Protocol == "udp" {
		network = "udp"
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, e.Addr.String())
}

func (d *dialer) count(depot string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[depot]
}

func (d *dialer) remoteCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remote
}

// running is a proxy whose Run goroutine the test owns.
type running struct {
	*Proxy
	cancel context.CancelFunc
	done   chan error
}

// start runs a proxy on cfg with test defaults (listen on 127.0.0.1:0, seeded
// balancer, quiet logs) and stops it at the end of the test.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	if cfg.Bind == nil {
		cfg.Bind = func(netsvc.ServicePort) string { return "127.0.0.1:0" }
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.Balancer == nil {
		cfg.Balancer = mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(1, 2)})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Proxy: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and waits for it.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// addr waits for the proxy to listen on service/port and returns the address.
func (r *running) addr(t testing.TB, service, port string) string {
	t.Helper()
	var a string
	waitFor(t, "proxy listening on "+service+"/"+port, func() bool {
		var ok bool
		a, ok = r.Addr(service, port)
		return ok
	})
	return a
}

func (r *running) port(service, port string) PortStats {
	for _, ps := range r.Stats().Ports {
		if ps.Service == service && ps.Port == port {
			return ps
		}
	}
	return PortStats{}
}

func (r *running) endpoint(depot string) EndpointStats {
	for _, es := range r.Stats().Endpoints {
		if es.Key.Depot == depot {
			return es
		}
	}
	return EndpointStats{}
}

func mustBalancer(t testing.TB, cfg BalancerConfig) *Balancer {
	t.Helper()
	b, err := NewBalancer(cfg)
	if err != nil {
		t.Fatalf("NewBalancer: %v", err)
	}
	return b
}

// client is a connection through the proxy that has read its backend's greeting.
type client struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

// connect opens a connection to addr and reads the greeting, which names the backend.
func connect(t testing.TB, addr string) *client {
	t.Helper()
	c, err := tryConnect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tryConnect(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{Conn: nc, r: bufio.NewReader(nc)}
	line, err := c.r.ReadString('\n')
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read greeting through the proxy: %w", err)
	}
	c.backend = strings.TrimSuffix(line, "\n")
	return c, nil
}

// echo sends msg and reads it back.
func (c *client) echo(msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q, want %q", buf, msg)
	}
	return nil
}

// closedByPeer reads until the connection ends and reports whether it ended without
// data and before the deadline set on it.
func closedByPeer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n > 0 {
		return errors.New("read data, want the connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("connection still open after 5s")
	}
	return nil
}

// tcpPair returns both ends of a loopback TCP connection, closed when the test ends.
func tcpPair(t testing.TB) (dialed, accepted *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}
