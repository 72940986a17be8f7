package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/netsvc"
)

func TestConfigValidate(t *testing.T) {
	cat, d := newCatalog(nil), newDialer()
	tests := []struct {
		name string
		cfg  Config
		want string // part of the error; "" for none
	}{
		{"ok", Config{Catalog: cat, Dialer: d}, ""},
		{"no catalog", Config{Dialer: d}, "Catalog is nil"},
		{"no dialer", Config{Catalog: cat}, "Dialer is nil"},
		{"negative dial timeout", Config{Catalog: cat, Dialer: d, DialTimeout: -time.Second}, "DialTimeout is -1s"},
		{"negative grace", Config{Catalog: cat, Dialer: d, DrainGrace: -time.Second}, "DrainGrace is -1s"},
		{"negative attempts", Config{Catalog: cat, Dialer: d, MaxAttempts: -1}, "MaxAttempts is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultBind(t *testing.T) {
	if got := DefaultBind(webPort); got != "10.99.0.1:80" {
		t.Errorf("DefaultBind = %q, want 10.99.0.1:80", got)
	}
	v6 := webPort
	v6.VIP = netip.MustParseAddr("fd00::1")
	if got := DefaultBind(v6); got != "[fd00::1]:80" {
		t.Errorf("DefaultBind = %q, want [fd00::1]:80", got)
	}
	for _, sp := range []netsvc.ServicePort{{Number: 80}, {VIP: webPort.VIP}, {VIP: webPort.VIP, Number: 70000}} {
		if got := DefaultBind(sp); got != "" {
			t.Errorf("DefaultBind(%+v) = %q, want empty", sp, got)
		}
	}
}

func TestRunOnce(t *testing.T) {
	p, err := New(Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}), Dialer: newDialer(), Logger: quiet(),
		Bind: func(netsvc.ServicePort) string { return "127.0.0.1:0" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run with an ended context: %v, want nil", err)
	}
	if _, ok := p.Addr("web", "http"); ok {
		t.Fatal("a listener outlived Run")
	}
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run: %v, want an error that says Run was called twice", err)
	}
}

func TestProxiesAndHalfCloses(t *testing.T) {
	a := newBackend(t, "a")
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, a.endpoint(true)), Dialer: newDialer()})
	c := connect(t, r.addr(t, "web", "http"))
	if c.backend != "a" {
		t.Fatalf("greeting %q, want a", c.backend)
	}
	if err := c.echo("ping"); err != nil {
		t.Fatal(err)
	}
	// The client ends its side; the backend must see EOF through the proxy, and what it
	// sends after that must still arrive.
	if _, err := io.WriteString(c, "last words"); err != nil {
		t.Fatal(err)
	}
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatalf("read after half close: %v", err)
	}
	if string(rest) != "last words" {
		t.Fatalf("after half close read %q, want %q", rest, "last words")
	}
	waitFor(t, "connection counted closed", func() bool {
		es := r.endpoint("a")
		return es.Total == 1 && es.Active == 0
	})
	if ps := r.port("web", "http"); ps.Accepted != 1 || ps.Addr == "" {
		t.Fatalf("port stats %+v, want 1 accepted and an address", ps)
	}
}

func TestLocalPreferred(t *testing.T) {
	local, r1, r2 := newBackend(t, "local"), newBackend(t, "remote1"), newBackend(t, "remote2")
	cat := newCatalog([]netsvc.ServicePort{webPort}, r1.endpoint(false), local.endpoint(true), r2.endpoint(false))
	d := newDialer()
	r := start(t, Config{Catalog: cat, Dialer: d})
	addr := r.addr(t, "web", "http")
	for range 20 {
		c := connect(t, addr)
		if c.backend != "local" {
			t.Fatalf("connection went to %s while a local endpoint is ready", c.backend)
		}
		c.Close()
	}
	if n := d.remoteCount(); n != 0 {
		t.Fatalf("%d dials to remote endpoints while a local one is ready", n)
	}

	// Without a local endpoint, the remote ones take the traffic.
	cat.setEndpoints(r1.endpoint(false), r2.endpoint(false))
	waitFor(t, "remote endpoints used", func() bool {
		c, err := tryConnect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.backend != "local"
	})
	if d.remoteCount() == 0 {
		t.Fatal("no remote dial after the local endpoint left")
	}
}

func TestSpreadsLoad(t *testing.T) {
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	// A frozen clock makes every dial take no time, so only the open connections
	// tell the endpoints apart: what is tested is that load spreads.
	frozen := time.Unix(1e9, 0)
	bal := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(7, 7), Now: func() time.Time { return frozen }})
	cat := newCatalog([]netsvc.ServicePort{webPort}, bs[0].endpoint(true), bs[1].endpoint(true), bs[2].endpoint(true))
	r := start(t, Config{Catalog: cat, Dialer: newDialer(), Balancer: bal})
	addr := r.addr(t, "web", "http")
	const n = 60
	got := map[string]int{}
	for range n {
		got[connect(t, addr).backend]++ // held open
	}
	for _, b := range bs {
		if got[b.name] < n/5 {
			t.Errorf("backend %s got %d of %d connections, want at least %d: %v", b.name, got[b.name], n, n/5, got)
		}
	}
	for _, b := range bs {
		if es := r.endpoint(b.name); es.Active != got[b.name] {
			t.Errorf("stats of %s: %d active, want %d", b.name, es.Active, got[b.name])
		}
	}
}

func TestSlowBackendGetsFewerPicks(t *testing.T) {
	fast1, fast2, slow := newBackend(t, "fast1"), newBackend(t, "fast2"), newBackend(t, "slow")
	d := newDialer()
	d.clock = newClock()
	d.delay["slow"] = 30 * time.Millisecond
	d.delay["fast1"] = 100 * time.Microsecond
	d.delay["fast2"] = 100 * time.Microsecond
	bal := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(1, 2), Now: d.clock.now})
	cat := newCatalog([]netsvc.ServicePort{webPort}, fast1.endpoint(true), slow.endpoint(true), fast2.endpoint(true))
	r := start(t, Config{Catalog: cat, Dialer: d, Balancer: bal})
	addr := r.addr(t, "web", "http")
	const n = 30
	got := map[string]int{}
	for range n {
		c := connect(t, addr)
		got[c.backend]++
		c.Close()
	}
	if got["slow"] > 3 || got["fast1"] < got["slow"] || got["fast2"] < got["slow"] {
		t.Fatalf("picks %v: want the slow backend picked at most 3 times and less than each fast one", got)
	}
	if es := r.endpoint("slow"); es.Total > 0 && es.Latency != 30*time.Millisecond {
		t.Fatalf("slow endpoint's latency estimate is %s, want the 30ms its dials took", es.Latency)
	}
	if es := r.endpoint("fast1"); es.Latency != 100*time.Microsecond {
		t.Fatalf("fast endpoint's latency estimate is %s, want the 100µs its dials took", es.Latency)
	}
}

func TestDialFailureFallsOver(t *testing.T) {
	good := newBackend(t, "good")
	// A real endpoint whose port refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := netsvc.Endpoint{Service: "web", Port: "http", Depot: "dead", Node: "n", Local: true, Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Ready: true}
	ln.Close()

	d := newDialer()
	bal := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(1, 2), Penalty: time.Hour})
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, dead, good.endpoint(true)), Dialer: d, Balancer: bal})
	addr := r.addr(t, "web", "http")
	accepted := uint64(0)
	for i := 0; i < 10 || d.count("dead") == 0; i++ {
		if i == 100 {
			t.Fatal("the dead endpoint was never tried in 100 connections")
		}
		c := connect(t, addr)
		accepted++
		if c.backend != "good" {
			t.Fatalf("connection went to %s", c.backend)
		}
		c.Close()
	}
	// After its failure the dead endpoint is set aside for its penalty, and not
	// tried again.
	if n := d.count("dead"); n != 1 {
		t.Fatalf("%d dials to the dead endpoint, want 1 (then a penalty)", n)
	}
	es := r.endpoint("dead")
	if es.Failures != 1 || !es.PenaltyUntil.After(time.Now()) {
		t.Fatalf("dead endpoint stats %+v, want 1 failure and a penalty running", es)
	}
	if ps := r.port("web", "http"); ps.Unreachable != 0 || ps.Accepted != accepted {
		t.Fatalf("port stats %+v, want %d accepted, none unreachable", ps, accepted)
	}

	// When every endpoint fails, the connection is closed and counted.
	d.mu.Lock()
	d.fail["good"] = errors.New("tunnel down")
	d.mu.Unlock()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := closedByPeer(nc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unreachable counted", func() bool { return r.port("web", "http").Unreachable == 1 })
}

func TestDialAttemptsBounded(t *testing.T) {
	var eps []netsvc.Endpoint
	d := newDialer()
	for i := range 6 {
		name := string(rune('a' + i))
		d.fail[name] = errors.New("refused")
		eps = append(eps, netsvc.Endpoint{Service: "web", Port: "http", Depot: name, Local: true, Addr: netip.MustParseAddrPort("127.0.0.1:9"), Ready: true})
	}
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, eps...), Dialer: d, MaxAttempts: 2})
	nc, err := net.Dial("tcp", r.addr(t, "web", "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := closedByPeer(nc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unreachable counted", func() bool { return r.port("web", "http").Unreachable == 1 })
	total := 0
	for _, e := range eps {
		total += d.count(e.Depot)
	}
	if total != 2 {
		t.Fatalf("%d dials, want MaxAttempts=2", total)
	}
}

func TestNoEndpoint(t *testing.T) {
	unready := newBackend(t, "unready")
	e := unready.endpoint(true)
	e.Ready = false
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, e), Dialer: newDialer()})
	nc, err := net.Dial("tcp", r.addr(t, "web", "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := closedByPeer(nc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no endpoint counted", func() bool { return r.port("web", "http").NoEndpoint == 1 })
	if n := unready.accepted.Load(); n != 0 {
		t.Fatalf("an unready endpoint got %d connections", n)
	}
}

func TestFlowsRefuse(t *testing.T) {
	a := newBackend(t, "a")
	db := netsvc.ServicePort{Service: "db", Port: "pg", Protocol: "tcp", VIP: netip.MustParseAddr("10.99.0.2"), Number: 5432}
	dbEp := a.endpoint(true)
	dbEp.Service, dbEp.Port = "db", "pg"

	type call struct {
		from netip.AddrPort
		sp   netsvc.ServicePort
	}
	var mu sync.Mutex
	var calls []call
	flows := func(from netip.AddrPort, sp netsvc.ServicePort) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{from, sp})
		if sp.Service == "db" {
			return errors.New("flows.allow of the caller does not name db")
		}
		return nil
	}
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort, db}, a.endpoint(true), dbEp), Dialer: newDialer(), Flows: flows})

	c := connect(t, r.addr(t, "web", "http"))
	if c.backend != "a" {
		t.Fatalf("allowed flow went to %q", c.backend)
	}

	nc, err := net.Dial("tcp", r.addr(t, "db", "pg"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := closedByPeer(nc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal counted", func() bool { return r.port("db", "pg").Refused == 1 })
	if n := a.accepted.Load(); n != 1 {
		t.Fatalf("backend accepted %d connections, want only the allowed one", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("Flows called %d times, want 2", len(calls))
	}
	last := calls[1]
	if last.sp != db || last.from != nc.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Fatalf("Flows got (%v, %+v), want (%v, %+v)", last.from, last.sp, nc.LocalAddr(), db)
	}
}

// TestServeConn serves connections that arrived on a socket of their own (as a
// container's do) through the proxy: proxied to the backend and counted with the
// port's own, refused and counted when allow says no, cut when their context ends,
// and turned away for a port the proxy does not have.
func TestServeConn(t *testing.T) {
	a := newBackend(t, "a")
	r := start(t, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, a.endpoint(true)), Dialer: newDialer()})
	r.addr(t, "web", "http") // the port is up
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// serveOne makes a connection the test's side of which it returns, and serves the
	// other side with ServeConn, whose result goes to done.
	serveOne := func(sp netsvc.ServicePort, allow func() error) (*client, chan error) {
		nc, sc := tcpPair(t)
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		done := make(chan error, 1)
		go func() { done <- r.ServeConn(ctx, sp, sc, allow) }()
		return &client{Conn: nc, r: bufio.NewReader(nc)}, done
	}

	c, done := serveOne(webPort, nil)
	if line, err := c.r.ReadString('\n'); err != nil || line != "a\n" {
		t.Fatalf("greeting through ServeConn: %q, %v", line, err)
	}
	if err := c.echo("ping"); err != nil {
		t.Fatal(err)
	}
	if got := r.port("web", "http").Accepted; got != 1 {
		t.Errorf("accepted %d, want 1", got)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	c, done = serveOne(webPort, func() error { return errors.New("not in flows.allow") })
	if err := closedByPeer(c); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.port("web", "http"); st.Accepted != 2 || st.Refused != 1 {
		t.Errorf("after a refusal: accepted %d, refused %d; want 2 and 1", st.Accepted, st.Refused)
	}
	if n := a.accepted.Load(); n != 1 {
		t.Errorf("backend accepted %d connections, want only the allowed one", n)
	}

	// The context ends a connection in the middle.
	c, done = serveOne(webPort, nil)
	if _, err := c.r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := closedByPeer(c); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	c, done = serveOne(netsvc.ServicePort{Service: "nope", Port: "http"}, nil)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "no TCP service port nope/http") {
		t.Fatalf("ServeConn to an unknown port: %v", err)
	}
	if err := closedByPeer(c); err != nil {
		t.Fatal(err)
	}
}

func TestDrainKeepsExistingConnections(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cat := newCatalog([]netsvc.ServicePort{webPort}, a.endpoint(true))
	r := start(t, Config{Catalog: cat, Dialer: newDialer(), DrainGrace: time.Hour})
	addr := r.addr(t, "web", "http")
	old := connect(t, addr)
	if old.backend != "a" {
		t.Fatalf("first connection went to %s", old.backend)
	}

	cat.setEndpoints(b.endpoint(true))
	waitFor(t, "connection to a draining", func() bool { return r.draining() == 1 })
	for range 10 {
		c := connect(t, addr)
		if c.backend != "b" {
			t.Fatalf("new connection went to %s, which left the catalog", c.backend)
		}
		c.Close()
	}
	if err := old.echo("still here"); err != nil {
		t.Fatalf("connection to a draining endpoint broke within its grace: %v", err)
	}

	// The endpoint comes back before the grace ends: its connection is kept.
	cat.setEndpoints(a.endpoint(true), b.endpoint(true))
	waitFor(t, "drain called off", func() bool { return r.draining() == 0 })
	if err := old.echo("and still"); err != nil {
		t.Fatal(err)
	}

	// Stopping the proxy closes every connection.
	r.stop(t)
	if err := closedByPeer(old); err != nil {
		t.Fatalf("after Run returned: %v", err)
	}
}

// draining counts the connections in their drain grace.
func (r *running) draining() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c := range r.conns {
		if c.drain != nil {
			n++
		}
	}
	return n
}

func TestDrainClosesAfterGrace(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cat := newCatalog([]netsvc.ServicePort{webPort}, a.endpoint(true))
	const grace = 50 * time.Millisecond
	r := start(t, Config{Catalog: cat, Dialer: newDialer(), DrainGrace: grace})
	addr := r.addr(t, "web", "http")
	old := connect(t, addr)

	// a turns unready (the catalog a real node builds drops it; this one shows it
	// with Ready false, which the proxy must treat the same).
	unready := a.endpoint(true)
	unready.Ready = false
	left := time.Now()
	cat.setEndpoints(unready, b.endpoint(true))
	if err := closedByPeer(old); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(left); took < grace {
		t.Fatalf("connection closed %s after its endpoint left, before the %s grace", took, grace)
	}
	waitFor(t, "drain counted", func() bool { return r.port("web", "http").Drained == 1 })
	if c := connect(t, addr); c.backend != "b" {
		t.Fatalf("new connection went to %s", c.backend)
	}
}

// closeCountingListener records that it was closed.
type closeCountingListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeCountingListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func TestListenersFollowCatalog(t *testing.T) {
	a := newBackend(t, "a")
	var mu sync.Mutex
	opened := map[string]*closeCountingListener{}
	fails := 1
	listen := func(network, addr string) (net.Listener, error) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(addr, "127.0.0.2") && fails > 0 {
			fails--
			return nil, errors.New("address not available yet")
		}
		ln, err := net.Listen(network, "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		cl := &closeCountingListener{Listener: ln, closed: make(chan struct{})}
		opened[addr] = cl
		return cl, nil
	}
	bind := func(sp netsvc.ServicePort) string { return DefaultBind(sp) }
	udp := netsvc.ServicePort{Service: "dns", Port: "dns", Protocol: "udp", VIP: netip.MustParseAddr("127.0.0.1"), Number: 53}
	web := webPort
	web.VIP = netip.MustParseAddr("127.0.0.1")
	cat := newCatalog([]netsvc.ServicePort{web, udp}, a.endpoint(true))
	var udpBinds []string
	listenPacket := func(network, addr string) (net.PacketConn, error) {
		mu.Lock()
		udpBinds = append(udpBinds, network+" "+addr)
		mu.Unlock()
		return net.ListenPacket(network, "127.0.0.1:0")
	}
	r := start(t, Config{Catalog: cat, Dialer: newDialer(), Listen: listen, ListenPacket: listenPacket, Bind: bind})

	addr := r.addr(t, "web", "http")
	if c := connect(t, addr); c.backend != "a" {
		t.Fatalf("went to %s", c.backend)
	}
	// A udp port is offered on a datagram socket at the same VIP:port rule.
	r.addr(t, "dns", "dns")
	mu.Lock()
	if len(udpBinds) != 1 || udpBinds[0] != "udp 127.0.0.1:53" {
		t.Errorf("UDP sockets opened: %q, want one udp socket at 127.0.0.1:53", udpBinds)
	}
	mu.Unlock()
	if ps := r.port("dns", "dns"); ps.Protocol != "udp" {
		t.Errorf("dns port stats say protocol %q, want udp", ps.Protocol)
	}

	// A new port whose address is not there at first: the failure shows in Stats and
	// the listener is opened on a retry.
	api := netsvc.ServicePort{Service: "api", Port: "grpc", Protocol: "", VIP: netip.MustParseAddr("127.0.0.2"), Number: 9000}
	apiEp := a.endpoint(true)
	apiEp.Service, apiEp.Port = "api", "grpc"
	cat.set([]netsvc.ServicePort{web, udp, api}, a.endpoint(true), apiEp)
	waitFor(t, "listen failure reported", func() bool {
		ps := r.port("api", "grpc")
		return strings.Contains(ps.ListenErr, "address not available yet") || ps.Addr != ""
	})
	apiAddr := r.addr(t, "api", "grpc")
	if c := connect(t, apiAddr); c.backend != "a" {
		t.Fatalf("went to %s", c.backend)
	}
	if ps := r.port("api", "grpc"); ps.ListenErr != "" || ps.Addr != apiAddr {
		t.Fatalf("api port stats %+v after the retry", ps)
	}

	// A moved VIP means a new listener; a removed port closes its listener.
	moved := web
	moved.Number = 8080
	cat.set([]netsvc.ServicePort{moved}, a.endpoint(true))
	mu.Lock()
	webLn, apiLn := opened["127.0.0.1:80"], opened["127.0.0.2:9000"]
	mu.Unlock()
	for name, ln := range map[string]*closeCountingListener{"web": webLn, "api": apiLn} {
		select {
		case <-ln.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("listener of %s not closed", name)
		}
	}
	waitFor(t, "listener on the new port", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return opened["127.0.0.1:8080"] != nil
	})
	if _, ok := r.Addr("api", "grpc"); ok {
		t.Fatal("Addr reports a removed port")
	}
	if c := connect(t, r.addr(t, "web", "http")); c.backend != "a" {
		t.Fatalf("went to %s", c.backend)
	}
}

func TestNoTrafficBeforeCatalog(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	d := newDialer()
	cat := newCatalog([]netsvc.ServicePort{webPort}, a.endpoint(true))
	r := start(t, Config{Catalog: cat, Dialer: d})
	addr := r.addr(t, "web", "http")
	// b is up and listening, but not (yet) in the catalog.
	for range 10 {
		if c := connect(t, addr); c.backend != "a" {
			t.Fatalf("went to %s", c.backend)
		}
	}
	if d.count("b") != 0 || b.accepted.Load() != 0 {
		t.Fatal("an endpoint got traffic before it was in the catalog")
	}
	cat.setEndpoints(a.endpoint(true), b.endpoint(true))
	waitFor(t, "b taking traffic once in the catalog", func() bool {
		c, err := tryConnect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.backend == "b"
	})
}

// TestCopyConnSmallThenBulk sends small messages, each read on its own, then a bulk
// stream that fills the copy buffer (from which on the copy is io.Copy's), then small
// messages again, and checks that all arrive in order and that a clean end is no
// error.
func TestCopyConnSmallThenBulk(t *testing.T) {
	in, src := tcpPair(t)
	dst, out := tcpPair(t)
	out.SetReadDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		err := copyConn(dst, src)
		dst.CloseWrite()
		done <- err
	}()
	r := rand.New(rand.NewPCG(5, 6))
	send := func(n int) {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		errc := make(chan error, 1)
		go func() { _, err := in.Write(p); errc <- err }()
		got := make([]byte, n)
		if _, err := io.ReadFull(out, got); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("%d bytes arrived changed", n)
		}
	}
	for _, n := range []int{10, 100, 1000, 3 * copyBuf, 1 << 20, 7, 1000} {
		send(n)
	}
	in.CloseWrite()
	if n, err := out.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d bytes, %v; want EOF", n, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("copyConn after a clean end: %v", err)
	}
}
